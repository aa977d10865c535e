//! Operator access from code: what waits and what failed, across the
//! in-process bus, the transactional outbox and Redis Streams, in one place
//! the `earn` command, the web console or your own admin page wrap.
//!
//! Dead letters are a list of [`DeadLetters`] sources with one record type,
//! [`DeadLetter`]: the bus's, the outbox's, each stream's, and any other
//! transport's given to [`Admin::source`].
//!
//! ```no_run
//! # async fn run(db: earn::Db, bus: earn::EventBus) -> Result<(), earn::Error> {
//! use earn::admin::Admin;
//! use earn::{DeadLetterFilter, PageRequest};
//!
//! let admin = Admin::new().database(db).bus(bus);
//! println!("{}", admin.status().await?);
//! let timeouts = DeadLetterFilter::default().event("payment.**");
//! for source in admin.sources() {
//!     for letter in source.list(&timeouts, PageRequest::first(50)).await? {
//!         println!("{letter}");
//!         if letter.reason.contains("timed out") {
//!             source.requeue(&letter.id).await?;
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use earn_core::{DeadLetter, DeadLetterFilter, DeadLetters, Error, EventBus};
use earn_sqlx::Db;

/// One Redis stream's backlog, as seen by one consumer group.
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamStatus {
    /// The stream.
    pub stream: String,
    /// The group whose lag this is.
    pub group: String,
    /// Pending, unread, length, delayed.
    pub lag: earn_redis::StreamLag,
}

/// One NATS stream's backlog, as seen by one group.
#[cfg(feature = "nats")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NatsStatus {
    /// The stream.
    pub stream: String,
    /// The group whose lag this is.
    pub group: String,
    /// Pending, unread, length, delayed.
    pub lag: earn_nats::NatsLag,
}

/// The outbox's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxStatus {
    /// Events waiting for delivery.
    pub backlog: u64,
    /// How long the oldest of them has waited.
    pub oldest: Option<Duration>,
}

/// How many dead letters one source holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceCount {
    /// The source (`bus`, `outbox`, `redis:{stream}`, `nats:{stream}`).
    pub source: String,
    /// Its dead letters.
    pub dead_letters: u64,
}

/// What waits and what failed. Parts are `None` or empty for what the
/// [`Admin`] was not given.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Status {
    /// Events published on the bus and not yet fully handled.
    pub bus_in_flight: Option<usize>,
    /// The bus's handler calls so far, and how many failed.
    pub bus_handlers: Option<earn_core::HandlerStats>,
    /// The outbox's backlog.
    pub outbox: Option<OutboxStatus>,
    /// Each Redis stream.
    #[cfg(feature = "redis")]
    pub streams: Vec<StreamStatus>,
    /// Each NATS stream.
    #[cfg(feature = "nats")]
    pub nats: Vec<NatsStatus>,
    /// The dead letters of each source, in the order the sources were
    /// added.
    pub dead_letters: Vec<SourceCount>,
    /// The event store's head and its subscriptions' checkpoints
    /// ([`Admin::store`]).
    pub store: Option<StoreStatus>,
}

/// Where an event store and its subscriptions stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    /// The highest position stored.
    pub head: u64,
    /// Every subscription's checkpoint (how far behind: `head - position`).
    pub subscriptions: Vec<crate::store::Checkpoint>,
}

/// One broker stream as one group sees it, whichever the broker: what
/// the status text, the console and the `earn` command list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLag<'a> {
    /// `redis` or `nats`.
    pub broker: &'static str,
    /// The stream.
    pub stream: &'a str,
    /// The consumer group.
    pub group: &'a str,
    /// Entries (Redis) or messages (NATS) in the stream.
    pub length: u64,
    /// Delivered to the group and not yet acknowledged.
    pub pending: u64,
    /// Not yet delivered to the group; `None` when the broker cannot tell.
    pub unread: Option<u64>,
    /// Delayed events waiting to be due.
    pub delayed: u64,
}

impl BrokerLag<'_> {
    /// What the group still has to finish: pending and unread.
    pub fn behind(&self) -> u64 {
        self.pending + self.unread.unwrap_or(0)
    }
}

impl Status {
    /// The Redis streams, then the NATS streams, as rows of one shape.
    pub fn broker_lags(&self) -> Vec<BrokerLag<'_>> {
        #[allow(unused_mut, reason = "empty without the broker features")]
        let mut rows = Vec::new();
        #[cfg(feature = "redis")]
        rows.extend(self.streams.iter().map(|s| BrokerLag {
            broker: "redis",
            stream: &s.stream,
            group: &s.group,
            length: s.lag.length,
            pending: s.lag.pending,
            unread: s.lag.lag,
            delayed: s.lag.delayed,
        }));
        #[cfg(feature = "nats")]
        rows.extend(self.nats.iter().map(|s| BrokerLag {
            broker: "nats",
            stream: &s.stream,
            group: &s.group,
            length: s.lag.length,
            pending: s.lag.pending,
            unread: s.lag.unread,
            delayed: s.lag.delayed,
        }));
        rows
    }

    /// Dead letters in every source.
    pub fn dead_letter_total(&self) -> u64 {
        self.dead_letters.iter().map(|s| s.dead_letters).sum()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(in_flight) = self.bus_in_flight {
            write!(f, "bus: {in_flight} in flight")?;
            if let Some(calls) = self.bus_handlers {
                write!(
                    f,
                    ", {} handler calls, {} failed",
                    calls.succeeded + calls.failed,
                    calls.failed
                )?;
            }
            writeln!(f)?;
        }
        if let Some(outbox) = &self.outbox {
            write!(f, "outbox: {} waiting", outbox.backlog)?;
            if let Some(oldest) = outbox.oldest {
                write!(f, ", oldest {:.1} s", oldest.as_secs_f64())?;
            }
            writeln!(f)?;
        }
        for row in self.broker_lags() {
            let unread = row
                .unread
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
            let unit = if row.broker == "redis" {
                "entries"
            } else {
                "messages"
            };
            writeln!(
                f,
                "{} {} (group {}): {} {unit}, {} pending, {unread} unread, {} delayed",
                row.broker, row.stream, row.group, row.length, row.pending, row.delayed,
            )?;
        }
        if let Some(store) = &self.store {
            writeln!(f, "event store: head at position {}", store.head)?;
            for subscription in &store.subscriptions {
                writeln!(
                    f,
                    "subscription {}: at {}, {} behind",
                    subscription.name,
                    subscription.position,
                    store.head.saturating_sub(subscription.position)
                )?;
            }
        }
        for source in &self.dead_letters {
            writeln!(
                f,
                "dead letters in {}: {}",
                source.source, source.dead_letters
            )?;
        }
        Ok(())
    }
}

/// Operator access over the stores it is given.
#[derive(Debug, Clone, Default)]
pub struct Admin {
    db: Option<Db>,
    bus: Option<EventBus>,
    #[cfg(feature = "redis")]
    streams: Vec<earn_redis::RedisStreams>,
    #[cfg(feature = "nats")]
    nats: Vec<earn_nats::NatsStreams>,
    sources: Vec<Arc<dyn DeadLetters>>,
    store: Option<crate::store::EventStore>,
}

impl Admin {
    /// An admin over nothing yet: add a database, a bus, streams, sources.
    pub fn new() -> Admin {
        Admin::default()
    }

    /// The database whose outbox (backlog, dead letters) to watch.
    pub fn database(mut self, db: Db) -> Admin {
        self.sources.push(Arc::new(db.outbox_dead_letters()));
        self.db = Some(db);
        self
    }

    /// The event store whose head and subscriptions to watch.
    pub fn store(mut self, store: crate::store::EventStore) -> Admin {
        self.store = Some(store);
        self
    }

    /// The bus whose in-flight count and dead letters to watch.
    pub fn bus(mut self, bus: EventBus) -> Admin {
        self.sources.push(Arc::new(bus.dead_letter_source()));
        self.bus = Some(bus);
        self
    }

    /// A Redis stream (its lag seen through its settings' group) and its
    /// dead letters.
    #[cfg(feature = "redis")]
    pub fn stream(mut self, streams: earn_redis::RedisStreams) -> Admin {
        self.sources.push(Arc::new(streams.dead_letter_source()));
        self.streams.push(streams);
        self
    }

    /// A NATS stream (its lag seen through its settings' group) and its
    /// dead letters.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), earn::Error> {
    /// let admin = earn::admin::Admin::new().nats(streams);
    /// println!("{}", admin.status().await?); // nats orders (group billing): …
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "nats")]
    pub fn nats(mut self, streams: earn_nats::NatsStreams) -> Admin {
        self.sources.push(Arc::new(streams.dead_letter_source()));
        self.nats.push(streams);
        self
    }

    /// Any other store of dead letters: a transport of your own.
    pub fn source(mut self, source: Arc<dyn DeadLetters>) -> Admin {
        self.sources.push(source);
        self
    }

    /// Every dead-letter source, in the order added.
    pub fn sources(&self) -> &[Arc<dyn DeadLetters>] {
        &self.sources
    }

    /// The source named `name` (`bus`, `outbox`, `redis:{stream}`,
    /// `nats:{stream}`);
    /// [`Error::NoDeadLetterSource`] naming those there are, if none is.
    pub fn source_named(&self, name: &str) -> Result<&Arc<dyn DeadLetters>, Error> {
        self.sources
            .iter()
            .find(|source| source.source() == name)
            .ok_or_else(|| Error::NoDeadLetterSource {
                name: name.to_owned(),
                known: self.sources.iter().map(|s| s.source()).collect(),
            })
    }

    /// The database given, if any.
    pub fn db(&self) -> Option<&Db> {
        self.db.as_ref()
    }

    /// The event store given, if any.
    pub fn event_store(&self) -> Option<&crate::store::EventStore> {
        self.store.as_ref()
    }

    /// The bus given, if any.
    pub fn event_bus(&self) -> Option<&EventBus> {
        self.bus.as_ref()
    }

    /// The Redis streams given.
    #[cfg(feature = "redis")]
    pub fn streams(&self) -> &[earn_redis::RedisStreams] {
        &self.streams
    }

    /// Backlogs, lags and dead-letter counts of every store: a count per
    /// source and a few aggregate queries, never a scan of the letters.
    pub async fn status(&self) -> Result<Status, Error> {
        let mut status = Status {
            bus_in_flight: self.bus.as_ref().map(EventBus::in_flight),
            bus_handlers: self.bus.as_ref().map(EventBus::handler_stats),
            ..Status::default()
        };
        if let Some(db) = &self.db {
            status.outbox = Some(OutboxStatus {
                backlog: db.outbox_backlog().await?,
                oldest: db.outbox_oldest_age().await?,
            });
        }
        #[cfg(feature = "redis")]
        for streams in &self.streams {
            status.streams.push(StreamStatus {
                stream: streams.settings().get_stream().to_owned(),
                group: streams.settings().get_group().to_owned(),
                lag: streams.lag().await?,
            });
        }
        #[cfg(feature = "nats")]
        for streams in &self.nats {
            status.nats.push(NatsStatus {
                stream: streams.settings().get_stream().to_owned(),
                group: streams.settings().get_group().to_owned(),
                lag: streams.lag().await?,
            });
        }
        if let Some(store) = &self.store {
            status.store = Some(StoreStatus {
                head: store.head().await?,
                subscriptions: store.checkpoints().await?,
            });
        }
        let all = DeadLetterFilter::default();
        for source in &self.sources {
            status.dead_letters.push(SourceCount {
                source: source.source(),
                dead_letters: source.count(&all).await?,
            });
        }
        Ok(status)
    }

    /// The dead letter `id` of the source `source`.
    pub async fn dead_letter(&self, source: &str, id: &str) -> Result<DeadLetter, Error> {
        self.source_named(source)?
            .get(id)
            .await?
            .ok_or_else(|| Error::NoDeadLetter {
                store: source.to_owned().into(),
                id: id.to_owned(),
            })
    }
}
