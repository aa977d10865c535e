use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users", primary_key)]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

fn main() {}
