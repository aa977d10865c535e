use earn::prelude::*;

#[event_handler("metric.*", batch = 10)]
async fn record(events: Vec<Event>) -> usize {
    events.len()
}

fn main() {}
