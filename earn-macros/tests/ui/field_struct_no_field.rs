use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
struct Nothing;

fn main() {}
