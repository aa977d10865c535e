use earn::prelude::*;

#[event_handler("user.created")]
fn welcome(_event: &Event) -> i32 {
    0
}

fn main() {}
