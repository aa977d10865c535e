use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "orders", has_many(OrderLine, on_delete = "nullify"))]
pub struct Order {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

#[derive(Debug, Clone, Model)]
#[model(table = "order_lines")]
pub struct OrderLine {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub order_id: i64,
}

fn main() {}
