use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table)]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

fn main() {}
