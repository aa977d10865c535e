use earn::prelude::*;

#[event_handler("User.created")]
fn welcome(_event: &Event) {}

fn main() {}
