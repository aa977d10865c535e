use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, autoo)]
    pub id: Option<i64>,
    #[model(colum = "full_name", jsn)]
    pub name: String,
}

fn main() {}
