use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
enum Never {}

fn main() {}
