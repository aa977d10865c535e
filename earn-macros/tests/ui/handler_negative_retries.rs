use earn::prelude::*;

#[event_handler("user.created", retries = -1)]
fn welcome(_event: &Event) {}

fn main() {}
