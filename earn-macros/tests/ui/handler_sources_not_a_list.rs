use earn::prelude::*;

#[event_handler("payment.*", sources = "billing")]
fn charge(_event: &Event) {}

fn main() {}
