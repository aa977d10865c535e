use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key)]
    pub email: String,
    #[model(auto)]
    pub counter: Option<i64>,
}

fn main() {}
