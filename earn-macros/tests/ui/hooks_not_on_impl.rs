use earn::prelude::*;

#[hooks]
fn normalize(name: &str) -> String {
    name.trim().to_owned()
}

fn main() {}
