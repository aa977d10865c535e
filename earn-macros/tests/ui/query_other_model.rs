use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

#[derive(Debug, Clone, Model)]
#[model(table = "orders")]
pub struct Order {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

fn main() {
    let _ = User::query().filter(Order::ID.eq(1));
}
