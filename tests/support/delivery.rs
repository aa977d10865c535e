//! What the broker transports' tests share, included by their
//! `tests/common/mod.rs` (`#[path]`): a bus with the test's handlers only,
//! a record of what they saw, and waiting for a condition.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earn::{Event, EventBus};

/// A bus with the test's handlers only (its retry policy is not used for
/// what a broker delivers: the broker redelivers).
pub fn bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .workers(2)
        .build()
        .unwrap()
}

/// Every event the handlers saw (successful or not), in order.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<Event>>>);

impl Seen {
    pub fn push(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }

    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn ids(&self) -> Vec<uuid::Uuid> {
        self.events().iter().map(Event::id).collect()
    }
}

/// A bus whose handler of `pattern` records each event and succeeds.
pub fn recording_bus(pattern: &str) -> (EventBus, Seen) {
    let bus = bus();
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe_sync(pattern, 0, move |event: &Event| sink.push(event))
        .unwrap();
    (bus, seen)
}

/// Waits until `done` holds, failing the test with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`wait_until`] with an async condition.
pub async fn wait_until_async<F, Fut>(what: &str, timeout: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` events named `name`, payload their index.
pub fn events(name: &str, n: usize) -> Vec<Event> {
    (0..n).map(|i| Event::new(name, &i).unwrap()).collect()
}
