use earn::prelude::*;

#[event_handler("user.created")]
fn welcome() {}

fn main() {}
