use earn::prelude::*;

#[derive(Clone, Copy, Field)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
