use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
#[field(integer)]
#[repr(u64)]
enum Flags {
    None = 0,
    All = u64::MAX,
}

fn main() {}
