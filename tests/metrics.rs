//! Counters and histograms go through the `metrics` facade.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::RetryPolicy;
use earn::prelude::*;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Sums every counter and counts histogram samples, by key with labels.
#[derive(Default)]
struct Totals {
    values: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

struct Sum(Arc<AtomicU64>);

impl CounterFn for Sum {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl HistogramFn for Sum {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn label(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

impl Totals {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        self.values
            .lock()
            .unwrap()
            .entry(label(key))
            .or_default()
            .clone()
    }
    fn get(&self, name: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }
}

struct Shared(Arc<Totals>);

impl Recorder for Shared {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Sum(self.0.slot(key))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Sum(self.0.slot(key))))
    }
}

#[tokio::test]
async fn emit_publish_retries_and_dead_letters_are_counted() {
    let totals = Arc::new(Totals::default());
    metrics::set_global_recorder(Shared(totals.clone()))
        .expect("the only recorder of this test binary");

    let bus = EventBus::builder()
        .without_registered_handlers()
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            jitter: 0.0,
        })
        .build()
        .unwrap();
    bus.subscribe_sync("m.ok", 0, |_: &Event| ()).unwrap();
    bus.subscribe_sync("m.fail", 0, |_: &Event| {
        Err::<(), _>(HandlerError::msg("no"))
    })
    .unwrap();
    bus.subscribe("m.slow", 0, |_: Event| async {}).unwrap();

    bus.emit(Event::new("m.ok", &1).unwrap()).await;
    bus.emit(Event::new("m.slow", &1).unwrap()).await;
    bus.publish(Event::new("m.fail", &1).unwrap())
        .await
        .unwrap();
    bus.wait_idle().await;

    assert_eq!(totals.get("earn_events_emitted_total"), 2);
    assert_eq!(totals.get("earn_events_published_total"), 1);
    assert_eq!(totals.get("earn_handler_calls_total{outcome=ok}"), 2);
    assert_eq!(
        totals.get("earn_handler_calls_total{outcome=error}"),
        2,
        "the first attempt and its retry"
    );
    assert_eq!(totals.get("earn_handler_retries_total"), 1);
    assert_eq!(totals.get("earn_dead_letters_total"), 1);
    assert_eq!(
        totals.get("earn_handler_duration_seconds"),
        1,
        "one async handler call timed"
    );
}
