use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub enum Status {
    Active,
    Banned,
}

fn main() {}
