//! The transport's counters, labelled with the stream and the group.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::{Event, HandlerError};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// Sums counters by `name{stream=…}`.
#[derive(Default)]
struct Totals(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

struct Sum(Arc<AtomicU64>);

impl CounterFn for Sum {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

struct Shared(Arc<Totals>);

impl Recorder for Shared {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let slot = self.0.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(Arc::new(Sum(slot)))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Totals {
    fn get(&self, name: &str, labels: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(&format!("{name}{{{labels}}}"))
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_acked_retried_and_dead_lettered_are_counted() {
    let totals = Arc::new(Totals::default());
    metrics::set_global_recorder(Shared(totals.clone())).unwrap();
    let stream = common::unique_stream();
    let settings = common::settings(&stream).max_deliveries(2);
    let Some((streams, _cleanup)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    bus.subscribe_sync("job.*", 0, move |event: &Event| {
        if event.name().as_str() == "job.bad" {
            Err(HandlerError::msg("nope"))
        } else {
            Ok(())
        }
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    for event in common::events("job.good", 5) {
        streams.publish(&event).await.unwrap();
    }
    streams
        .publish(&Event::new("job.bad", &0).unwrap())
        .await
        .unwrap();
    let group = format!("stream={stream},group=workers");
    common::wait_until("the dead letter", Duration::from_secs(10), || {
        totals.get("earn_nats_dead_letters_total", &group) == 1
    })
    .await;
    assert_eq!(
        totals.get("earn_nats_published_total", &format!("stream={stream}")),
        6
    );
    assert_eq!(totals.get("earn_nats_acked_total", &group), 5);
    assert_eq!(
        totals.get("earn_nats_retried_total", &group),
        1,
        "the failed message, once"
    );
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
