use earn::prelude::*;

#[event_handler("metric.*", batch = 0)]
async fn record(_events: Vec<Event>) {}

fn main() {}
