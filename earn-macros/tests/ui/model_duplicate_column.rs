use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub email: String,
    #[model(column = "email")]
    pub contact: String,
}

fn main() {}
