use earn::prelude::*;

#[event_handler("user.created")]
struct Welcome;

fn main() {}
