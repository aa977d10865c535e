use earn::prelude::*;

#[derive(Clone, Copy, Model)]
pub union Bits {
    pub int: i64,
    pub float: f64,
}

fn main() {}
