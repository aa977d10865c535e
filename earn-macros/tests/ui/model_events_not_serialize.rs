use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users", events = "user")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub name: String,
}

fn main() {}
