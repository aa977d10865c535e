use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
#[field(rename_all = "lowercase")]
enum Status {
    Pending,
    #[field(rename = "pending")]
    Waiting,
    Done,
}

fn main() {}
