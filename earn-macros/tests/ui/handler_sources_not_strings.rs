use earn::prelude::*;

#[event_handler("payment.*", sources = ["billing", billing, ""])]
fn charge(_event: &Event) {}

fn main() {}
