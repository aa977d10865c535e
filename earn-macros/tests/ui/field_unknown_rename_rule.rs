use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
#[field(rename_all = "snakecase")]
enum Status {
    Open,
    Closed,
}

fn main() {}
