use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "orders")]
pub struct Order {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

#[derive(Debug, Clone, Model)]
#[model(table = "order_lines")]
pub struct OrderLine {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    #[model(belongs_to = Order)]
    pub order: i64,
}

fn main() {}
