use earn::prelude::*;

#[derive(Debug, Clone, Model)]
struct Product {
    #[model(primary_key, version)]
    id: i64,
}

fn main() {}
