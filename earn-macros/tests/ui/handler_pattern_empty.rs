use earn::prelude::*;

#[event_handler("")]
fn welcome(_event: &Event) {}

fn main() {}
