use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
struct Money(i64, String);

fn main() {}
