use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, auto, table = "users")]
    pub id: Option<i64>,
}

fn main() {}
