use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key)]
    pub email: Option<String>,
}

fn main() {}
