use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
#[field(rename = "state")]
enum State {
    #[field(integer)]
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Field)]
#[field(integer)]
struct Cents(i64);

fn main() {}
