use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    #[model(column = full_name)]
    pub name: String,
}

fn main() {}
