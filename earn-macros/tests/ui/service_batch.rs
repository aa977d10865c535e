use earn::prelude::*;

struct Metrics;

#[service]
impl Metrics {
    #[event_handler("metric.*", batch = 100)]
    async fn record(&self, _events: Vec<Event>) {}
}

fn main() {}
