use earn::prelude::*;

#[event_handler("user.created", retry = 3)]
fn welcome(_event: &Event) {}

fn main() {}
