use earn::prelude::*;

#[derive(Debug, Clone, Model)]
struct Product {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(version)]
    version: String,
}

fn main() {}
