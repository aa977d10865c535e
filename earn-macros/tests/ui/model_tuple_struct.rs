use earn::prelude::*;

#[derive(Debug, Clone, Model)]
pub struct UserId(i64);

fn main() {}
