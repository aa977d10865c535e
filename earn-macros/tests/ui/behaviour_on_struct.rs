use earn::prelude::*;

#[behaviour]
pub struct Audited;

fn main() {}
