use earn::prelude::*;

#[derive(Debug, Clone, serde::Serialize, Model)]
#[model(table = "users", events = "User")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub name: String,
}

fn main() {}
