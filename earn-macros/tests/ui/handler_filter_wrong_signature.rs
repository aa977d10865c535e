use earn::prelude::*;

fn is_vip(event: &Event, vip: &str) -> bool {
    event.name() == vip
}

#[event_handler("user.created", filter = is_vip)]
fn welcome(_event: &Event) {}

fn main() {}
