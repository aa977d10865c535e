use earn::prelude::*;

pub struct Warehouse {
    pub id: i64,
}

#[derive(Debug, Clone, Model)]
#[model(table = "stock")]
pub struct Stock {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    #[model(belongs_to = Warehouse)]
    pub warehouse_id: i64,
}

fn main() {}
