use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
#[field(integer)]
enum Level {
    Low = 1,
    #[field(rename = "high")]
    High = 10,
}

#[derive(Debug, Clone, PartialEq, Field)]
#[field(integer, rename_all = "lowercase")]
enum Size {
    Small,
    Large,
}

fn main() {}
