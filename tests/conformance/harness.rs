//! What every transport offers the conformance suite, and the bookkeeping
//! that checks no event id goes missing.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::{Event, HandlerError};
use uuid::Uuid;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A handler of one consumer group in one process.
pub type Handler = Arc<dyn Fn(Event) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// What a transport promises, so each test asserts exactly that.
#[derive(Debug, Clone, Copy)]
pub struct Promises {
    /// An event may be handled more than once (a crash or a lost ack
    /// redelivers it): duplicates are counted and reported, not failures.
    pub at_least_once: bool,
}

/// A consumer process started by a test: a bus with the groups' handlers,
/// fed by the transport.
pub trait Process: Send {
    /// Stops consuming gracefully: what it took is finished and acknowledged.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// One transport under test.
pub trait Transport: Send + Sync {
    fn name(&self) -> String;
    fn promises(&self) -> Promises;
    /// Publishes (commits) one event; panics if the transport refuses it.
    fn publish(&self, event: Event) -> BoxFuture<'_, ()>;
    /// Publishes (commits) a batch at once (`publish_all`, or one
    /// transaction raising them all); panics if the transport refuses it.
    fn publish_all(&self, events: Vec<Event>) -> BoxFuture<'_, ()>;
    /// Starts a consumer process named `process` that serves `groups`.
    /// With `ordered`, it is set up to keep publish order (one worker).
    fn start<'a>(
        &'a self,
        process: &'a str,
        groups: Vec<(&'a str, Handler)>,
        ordered: bool,
    ) -> BoxFuture<'a, Box<dyn Process>>;
}

/// Every delivery a test's handlers saw: (group, process) → event ids, in
/// order of handling.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<Delivery>>>);

#[derive(Clone, Debug)]
pub struct Delivery {
    pub group: String,
    pub process: String,
    pub id: Uuid,
    pub payload: serde_json::Value,
}

impl Seen {
    /// A handler that records what it gets, after `before` (which may fail
    /// the delivery or hold it).
    pub fn handler<F, Fut>(&self, group: &str, process: &str, before: F) -> Handler
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let seen = self.clone();
        let group = group.to_owned();
        let process = process.to_owned();
        let before = Arc::new(before);
        Arc::new(move |event: Event| {
            let seen = seen.clone();
            let group = group.clone();
            let process = process.clone();
            let before = before.clone();
            Box::pin(async move {
                before(event.clone()).await?;
                seen.0.lock().unwrap().push(Delivery {
                    group,
                    process,
                    id: event.id(),
                    payload: event.payload_json().clone(),
                });
                Ok(())
            })
        })
    }

    /// A handler that only records.
    pub fn recorder(&self, group: &str, process: &str) -> Handler {
        self.handler(group, process, |_| async { Ok(()) })
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.0.lock().unwrap().clone()
    }

    pub fn of_group(&self, group: &str) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| d.group == group)
            .collect()
    }

    /// Waits until `group` has seen every id in `ids` (at most `timeout`),
    /// then checks that none is missing and counts duplicates: allowed
    /// only for an at-least-once transport, and reported either way.
    /// Returns the number of duplicates.
    pub async fn expect_all(
        &self,
        transport: &dyn Transport,
        group: &str,
        ids: &[Uuid],
        timeout: Duration,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let missing = missing(&self.of_group(group), ids);
            if missing.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{}: group `{group}` is missing {} of {} events after {timeout:?}, e.g. {:?}",
                    transport.name(),
                    missing.len(),
                    ids.len(),
                    &missing[..missing.len().min(5)],
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let deliveries = self.of_group(group);
        let mut counts: HashMap<Uuid, usize> = HashMap::new();
        for delivery in &deliveries {
            *counts.entry(delivery.id).or_default() += 1;
        }
        let unexpected: Vec<_> = counts.keys().filter(|id| !ids.contains(id)).collect();
        assert!(
            unexpected.is_empty(),
            "{}: group `{group}` got events nobody published: {unexpected:?}",
            transport.name()
        );
        let duplicates: usize = counts.values().map(|n| n - 1).sum();
        eprintln!(
            "{}: group `{group}`: {} events, {} deliveries, {duplicates} duplicated",
            transport.name(),
            ids.len(),
            deliveries.len()
        );
        if !transport.promises().at_least_once {
            assert_eq!(
                duplicates,
                0,
                "{}: group `{group}` got duplicates from an exactly-once transport",
                transport.name()
            );
        }
        duplicates
    }
}

fn missing(deliveries: &[Delivery], ids: &[Uuid]) -> Vec<Uuid> {
    let seen: std::collections::HashSet<Uuid> = deliveries.iter().map(|d| d.id).collect();
    ids.iter()
        .filter(|id| !seen.contains(id))
        .copied()
        .collect()
}

/// A numbered test event.
pub fn event(n: usize) -> Event {
    Event::new("conformance.tick", &serde_json::json!({ "n": n })).unwrap()
}

/// Publishes `count` numbered events one after the other; returns their ids.
pub async fn publish_many(transport: &dyn Transport, count: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let event = event(n);
        ids.push(event.id());
        transport.publish(event).await;
    }
    ids
}
