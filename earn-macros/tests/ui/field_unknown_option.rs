use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
#[field(integr)]
enum Level {
    Low,
    High,
}

#[derive(Debug, Clone, PartialEq, Field)]
enum Status {
    #[field(name = "open")]
    Open,
    Closed,
}

fn main() {}
