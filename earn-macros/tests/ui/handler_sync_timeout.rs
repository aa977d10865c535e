use earn::prelude::*;

#[event_handler("user.created", timeout_ms = 50)]
fn welcome(_event: &Event) {
    std::thread::sleep(std::time::Duration::from_millis(400));
}

fn main() {}
