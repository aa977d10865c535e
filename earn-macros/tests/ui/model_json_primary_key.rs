use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, json)]
    pub id: Vec<String>,
}

fn main() {}
