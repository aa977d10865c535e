use earn::prelude::*;

#[event_handler("metric.*")]
async fn record(_events: Vec<Event>) {}

fn main() {}
