use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, skip)]
    pub id: i64,
}

fn main() {}
