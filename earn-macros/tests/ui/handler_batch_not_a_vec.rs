use earn::prelude::*;

#[event_handler("metric.*", batch = 100, linger_ms = 50)]
async fn record(_event: &Event) {}

fn main() {}
