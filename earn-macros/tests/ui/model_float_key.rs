use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key)]
    pub score: f64,
}

fn main() {}
