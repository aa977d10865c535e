use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct Wrapper<T> {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub value: T,
}

fn main() {}
