use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, auto)]
    pub id: i64,
}

fn main() {}
