use earn::prelude::*;

#[event_handler("payment.*", sources = [])]
fn charge(_event: &Event) {}

fn main() {}
