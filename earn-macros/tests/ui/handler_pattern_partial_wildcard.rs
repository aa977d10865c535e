use earn::prelude::*;

#[event_handler("us*r.created")]
fn welcome(_event: &Event) {}

fn main() {}
