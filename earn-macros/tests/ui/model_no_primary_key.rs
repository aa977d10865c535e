use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    pub id: i64,
    pub name: String,
}

fn main() {}
