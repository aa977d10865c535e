use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary, auto)]
    pub id: Option<i64>,
}

fn main() {}
