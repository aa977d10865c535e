use earn::prelude::*;

#[event_handler("user.created", retries = 3, priority = 1, retries = 5)]
fn welcome(_event: &Event) {}

fn main() {}
