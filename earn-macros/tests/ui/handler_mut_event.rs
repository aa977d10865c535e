use earn::prelude::*;

#[event_handler("user.created")]
fn welcome(_event: &mut Event) {}

fn main() {}
