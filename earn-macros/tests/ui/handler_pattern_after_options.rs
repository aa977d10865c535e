use earn::prelude::*;

#[event_handler(priority = 10)]
fn welcome(_event: &Event) {}

fn main() {}
