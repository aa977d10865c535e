use earn::prelude::*;

#[event_handler("user.created", priority = "high")]
fn welcome(_event: &Event) {}

fn main() {}
