//! The transports under test: the in-memory bus, the transactional outbox
//! on each database, Redis Streams, NATS JetStream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::nats::{NatsSettings, NatsStreams};
use earn::redis::{RedisSettings, RedisStreams};
use earn::{Db, Event, EventBus, Outbox, OutboxMode, OutboxRelay, RetryPolicy, ShutdownReport};

use crate::harness::{BoxFuture, Handler, Process, Promises, Transport};

/// Quick retries, so "resend after error" takes milliseconds.
pub fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        jitter: 0.0,
    }
}

/// A process's own bus: no link-time handlers, only the test's.
fn process_bus(ordered: bool) -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .workers(if ordered { 1 } else { 2 })
        .retry(retry())
        .build()
        .unwrap()
}

fn subscribe(bus: &EventBus, handler: Handler) {
    bus.subscribe("**", 0, move |event: Event| handler(event))
        .unwrap();
}

// ---------------------------------------------------------------- memory

/// The in-process bus. One process holds it, so a "group" with several
/// consumers is served by them in turn, the way a broker shares a group.
pub struct Memory {
    bus: EventBus,
    groups: Arc<Mutex<HashMap<String, Members>>>,
    next_process: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Members {
    handlers: Vec<(u64, Handler)>,
    turn: usize,
}

impl Memory {
    pub fn new(ordered: bool) -> Memory {
        Memory {
            bus: process_bus(ordered),
            groups: Arc::default(),
            next_process: 0.into(),
        }
    }
}

struct MemoryProcess {
    id: u64,
    groups: Arc<Mutex<HashMap<String, Members>>>,
}

impl Process for MemoryProcess {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        for members in self.groups.lock().unwrap().values_mut() {
            members.handlers.retain(|(id, _)| *id != self.id);
        }
        Box::pin(async {})
    }
}

impl Transport for Memory {
    fn name(&self) -> String {
        "memory".into()
    }

    fn promises(&self) -> Promises {
        Promises {
            at_least_once: false,
        }
    }

    fn publish(&self, event: Event) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.bus.publish(event).await.unwrap() })
    }

    fn publish_all(&self, events: Vec<Event>) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.bus.publish_all(events).await.unwrap() })
    }

    fn start<'a>(
        &'a self,
        _process: &'a str,
        groups: Vec<(&'a str, Handler)>,
        _ordered: bool,
    ) -> BoxFuture<'a, Box<dyn Process>> {
        let id = self
            .next_process
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut known = self.groups.lock().unwrap();
        for (group, handler) in groups {
            let members = known.entry(group.to_owned()).or_insert_with(|| {
                let routes = self.groups.clone();
                let group = group.to_owned();
                self.bus
                    .subscribe("**", 0, move |event: Event| {
                        let handler = {
                            let mut routes = routes.lock().unwrap();
                            let members = routes.get_mut(&group).unwrap();
                            members.turn = members.turn.wrapping_add(1);
                            let at = members.turn % members.handlers.len().max(1);
                            members.handlers.get(at).map(|(_, h)| h.clone())
                        };
                        async move {
                            match handler {
                                Some(handler) => handler(event).await,
                                None => Ok(()),
                            }
                        }
                    })
                    .unwrap();
                Members::default()
            });
            members.handlers.push((id, handler));
        }
        let groups = self.groups.clone();
        Box::pin(async move { Box::new(MemoryProcess { id, groups }) as Box<dyn Process> })
    }
}

// ---------------------------------------------------------------- outbox

/// The transactional outbox: each event is committed in its own
/// transaction, and each consumer process runs a relay into its bus (the
/// committer does not publish, so only relays deliver).
pub struct OutboxTransport {
    name: &'static str,
    db: Db,
}

impl OutboxTransport {
    pub async fn new(name: &'static str, db: Db) -> OutboxTransport {
        let db = db.with_outbox(Outbox {
            mode: OutboxMode::Relay,
            ..Outbox::default()
        });
        db.install_outbox().await.unwrap();
        db.execute_unprepared("DELETE FROM earn_outbox")
            .await
            .unwrap();
        OutboxTransport { name, db }
    }
}

struct RelayProcess {
    bus: EventBus,
    stop: tokio::sync::oneshot::Sender<()>,
    relay: tokio::task::JoinHandle<()>,
}

impl Process for RelayProcess {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.stop.send(());
            self.relay.await.unwrap();
            let report = self.bus.shutdown(Duration::from_secs(10)).await;
            assert!(report.drained, "a relay's bus did not drain: {report:?}");
        })
    }
}

impl Transport for OutboxTransport {
    fn name(&self) -> String {
        format!("outbox on {}", self.name)
    }

    fn promises(&self) -> Promises {
        // A relay that dies after handing over and before deleting the
        // row redelivers it.
        Promises {
            at_least_once: true,
        }
    }

    fn publish(&self, event: Event) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut tx = self.db.begin().await.unwrap();
            tx.raise(event).unwrap();
            tx.commit().await.unwrap();
        })
    }

    fn publish_all(&self, events: Vec<Event>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut tx = self.db.begin().await.unwrap();
            for event in events {
                tx.raise(event).unwrap();
            }
            tx.commit().await.unwrap();
        })
    }

    fn start<'a>(
        &'a self,
        _process: &'a str,
        groups: Vec<(&'a str, Handler)>,
        ordered: bool,
    ) -> BoxFuture<'a, Box<dyn Process>> {
        Box::pin(async move {
            let bus = process_bus(ordered);
            for (_, handler) in groups {
                subscribe(&bus, handler);
            }
            let relay = OutboxRelay::new(self.db.clone(), bus.clone())
                .batch(if ordered { 1 } else { 20 })
                .poll_interval(Duration::from_millis(20));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let relay = tokio::spawn(async move { relay.run_until(stopped).await });
            Box::new(RelayProcess { bus, stop, relay }) as Box<dyn Process>
        })
    }
}

// ---------------------------------------------------------------- redis

/// Redis Streams: each group of a process is a consumer of that group with
/// a bus of its own, named after the process.
pub struct RedisTransport {
    url: String,
    stream: String,
    publisher: RedisStreams,
}

impl RedisTransport {
    pub async fn new(url: &str) -> RedisTransport {
        let stream = format!("earn:conformance:{}", uuid::Uuid::new_v4());
        let publisher =
            RedisStreams::connect(url, RedisSettings::new(stream.as_str(), "publisher"))
                .await
                .unwrap_or_else(|error| panic!("cannot reach redis at {url}: {error}"));
        RedisTransport {
            url: url.to_owned(),
            stream,
            publisher,
        }
    }

    fn settings(&self, group: &str, process: &str, ordered: bool) -> RedisSettings {
        RedisSettings::new(self.stream.as_str(), group)
            .consumer(process)
            .batch(if ordered { 1 } else { 10 })
            .block(Duration::from_millis(100))
            .claim_idle(Duration::from_secs(5))
    }
}

/// A process of a broker: per group, a way to shut its consumer down and
/// the bus it feeds.
struct BrokerProcess {
    consumers: Vec<(Shutdown, EventBus)>,
}

/// Shuts a broker's consumer down (`Consumer::shutdown` of either broker).
type Shutdown = Box<dyn FnOnce(Duration) -> BoxFuture<'static, ShutdownReport> + Send>;

impl Process for BrokerProcess {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            for (shutdown, bus) in self.consumers {
                shutdown(Duration::from_secs(10)).await;
                let report = bus.shutdown(Duration::from_secs(10)).await;
                assert!(report.drained, "a consumer's bus did not drain: {report:?}");
            }
        })
    }
}

impl Transport for RedisTransport {
    fn name(&self) -> String {
        "redis streams".into()
    }

    fn promises(&self) -> Promises {
        Promises {
            at_least_once: true,
        }
    }

    fn publish(&self, event: Event) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.publisher.publish(&event).await.unwrap();
        })
    }

    fn publish_all(&self, events: Vec<Event>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.publisher.publish_all(&events).await.unwrap();
        })
    }

    fn start<'a>(
        &'a self,
        process: &'a str,
        groups: Vec<(&'a str, Handler)>,
        ordered: bool,
    ) -> BoxFuture<'a, Box<dyn Process>> {
        Box::pin(async move {
            let mut consumers = Vec::new();
            for (group, handler) in groups {
                let bus = process_bus(ordered);
                subscribe(&bus, handler);
                let streams =
                    RedisStreams::connect(&self.url, self.settings(group, process, ordered))
                        .await
                        .unwrap();
                let consumer = streams.consume(bus.clone()).await.unwrap();
                let shutdown: Shutdown =
                    Box::new(move |deadline| Box::pin(consumer.shutdown(deadline)));
                consumers.push((shutdown, bus));
            }
            Box::new(BrokerProcess { consumers }) as Box<dyn Process>
        })
    }
}

// ------------------------------------------------------------------ nats

/// NATS JetStream: a stream of the test's own, a durable consumer per
/// group, a connection per process.
pub struct NatsTransport {
    url: String,
    stream: String,
    publisher: NatsStreams,
}

impl NatsTransport {
    pub async fn new(url: &str) -> NatsTransport {
        let stream = format!("earn-conformance-{}", uuid::Uuid::new_v4().simple());
        let publisher = NatsStreams::connect(url, NatsSettings::new(stream.as_str(), "publisher"))
            .await
            .unwrap_or_else(|error| panic!("cannot reach nats at {url}: {error}"));
        NatsTransport {
            url: url.to_owned(),
            stream,
            publisher,
        }
    }

    fn settings(&self, group: &str, process: &str, ordered: bool) -> NatsSettings {
        NatsSettings::new(self.stream.as_str(), group)
            .consumer(process)
            .batch(if ordered { 1 } else { 10 })
            .max_in_flight(if ordered { 1 } else { 100 })
            .ack_wait(Duration::from_secs(5))
            .retry_backoff(earn::nats::Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(100),
            ))
    }
}

impl Drop for NatsTransport {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        // The test's runtime is busy dropping this: clean up on a thread.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(crate::common::delete_nats_streams(&url, &stream));
        })
        .join();
    }
}

impl Transport for NatsTransport {
    fn name(&self) -> String {
        "nats jetstream".into()
    }

    fn promises(&self) -> Promises {
        Promises {
            at_least_once: true,
        }
    }

    fn publish(&self, event: Event) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.publisher.publish(&event).await.unwrap();
        })
    }

    fn publish_all(&self, events: Vec<Event>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.publisher.publish_all(&events).await.unwrap();
        })
    }

    fn start<'a>(
        &'a self,
        process: &'a str,
        groups: Vec<(&'a str, Handler)>,
        ordered: bool,
    ) -> BoxFuture<'a, Box<dyn Process>> {
        Box::pin(async move {
            let mut consumers = Vec::new();
            for (group, handler) in groups {
                let bus = process_bus(ordered);
                subscribe(&bus, handler);
                let streams =
                    NatsStreams::connect(&self.url, self.settings(group, process, ordered))
                        .await
                        .unwrap();
                let consumer = streams.consume(bus.clone()).await.unwrap();
                let shutdown: Shutdown =
                    Box::new(move |deadline| Box::pin(consumer.shutdown(deadline)));
                consumers.push((shutdown, bus));
            }
            Box::new(BrokerProcess { consumers }) as Box<dyn Process>
        })
    }
}
