//! A `metrics` recorder for the broker transports' tests, included by
//! their `tests/metrics.rs` (`#[path]`): it sums each counter by its name
//! and labels.

#![allow(unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// Sums counters by `name{stream=…}`.
#[derive(Default)]
pub struct Totals(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

struct Sum(Arc<AtomicU64>);

impl CounterFn for Sum {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

pub struct Shared(pub Arc<Totals>);

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
    /// The sum of `name{labels}`, labels as `key=value,…` in order.
    pub fn get(&self, name: &str, labels: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(&format!("{name}{{{labels}}}"))
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }
}
