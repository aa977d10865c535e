//! Operator access from code: what waits and what failed, across the
//! in-process bus, the transactional outbox and Redis Streams, in one place
//! a command-line tool or an admin page can wrap.
//!
//! ```no_run
//! # async fn run(db: earn::Db, bus: earn::EventBus) -> Result<(), earn::Error> {
//! use earn::admin::Admin;
//!
//! let admin = Admin::new().database(db).bus(bus);
//! println!("{}", admin.status().await?);
//! for letter in admin.dead_letters(50).await? {
//!     println!("{letter}");
//!     if letter.reason.contains("timed out") {
//!         admin.requeue(&letter).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;

use earn_core::{Error, Event, EventBus};
use earn_sqlx::Db;

/// Where a dead letter is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The bus's dead-letter store (in memory unless configured).
    Bus,
    /// The outbox table `earn_outbox_dead`.
    Outbox,
    /// A Redis stream's dead-letter stream `{stream}:dead`.
    Stream {
        /// The stream.
        stream: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bus => f.write_str("bus"),
            Source::Outbox => f.write_str("outbox"),
            Source::Stream { stream } => write!(f, "redis:{stream}"),
        }
    }
}

/// A dead letter from any [`Source`], for listing and requeueing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Letter {
    /// Where it is kept.
    pub source: Source,
    /// Its id in that store (what [`Admin::requeue`] uses).
    pub id: String,
    /// The event, when the stored form is a valid one.
    pub event: Option<Event>,
    /// Why delivery gave up.
    pub reason: String,
    /// Attempts (bus), claims (outbox) or deliveries (Redis) made.
    pub attempts: u32,
}

impl fmt::Display for Letter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.source, self.id)?;
        if let Some(event) = &self.event {
            write!(f, " {} ({})", event.name(), event.id())?;
        }
        write!(f, " after {} attempt(s): {}", self.attempts, self.reason)
    }
}

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
    /// Entries in its dead-letter stream.
    pub dead_letters: u64,
}

/// What waits and what failed. Fields are `None` for what the [`Admin`]
/// was not given.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Status {
    /// Events published on the bus and not yet fully handled.
    pub bus_in_flight: Option<usize>,
    /// The bus's dead letters.
    pub bus_dead_letters: Option<usize>,
    /// Events waiting in the outbox.
    pub outbox_backlog: Option<u64>,
    /// Outbox rows the relays gave up on.
    pub outbox_dead_letters: Option<u64>,
    /// Each Redis stream.
    #[cfg(feature = "redis")]
    pub streams: Vec<StreamStatus>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(in_flight), Some(dead)) = (self.bus_in_flight, self.bus_dead_letters) {
            writeln!(f, "bus: {in_flight} in flight, {dead} dead letters")?;
        }
        if let (Some(backlog), Some(dead)) = (self.outbox_backlog, self.outbox_dead_letters) {
            writeln!(f, "outbox: {backlog} waiting, {dead} dead letters")?;
        }
        #[cfg(feature = "redis")]
        for stream in &self.streams {
            let unread = stream
                .lag
                .lag
                .map_or_else(|| "unknown".to_owned(), |lag| lag.to_string());
            writeln!(
                f,
                "redis {} (group {}): {} entries, {} pending, {unread} unread, {} delayed, {} dead letters",
                stream.stream,
                stream.group,
                stream.lag.length,
                stream.lag.pending,
                stream.lag.delayed,
                stream.dead_letters,
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
}

impl Admin {
    /// An admin over nothing yet: add a database, a bus, streams.
    pub fn new() -> Admin {
        Admin::default()
    }

    /// The database whose outbox to watch.
    pub fn database(mut self, db: Db) -> Admin {
        self.db = Some(db);
        self
    }

    /// The bus whose dead letters and in-flight count to watch.
    pub fn bus(mut self, bus: EventBus) -> Admin {
        self.bus = Some(bus);
        self
    }

    /// A Redis stream, seen through its settings' group.
    #[cfg(feature = "redis")]
    pub fn stream(mut self, streams: earn_redis::RedisStreams) -> Admin {
        self.streams.push(streams);
        self
    }

    /// Backlogs and dead-letter counts of every store.
    pub async fn status(&self) -> Result<Status, Error> {
        let mut status = Status::default();
        if let Some(bus) = &self.bus {
            status.bus_in_flight = Some(bus.in_flight());
            status.bus_dead_letters = Some(bus.dead_letters().len());
        }
        if let Some(db) = &self.db {
            status.outbox_backlog = Some(db.outbox_backlog().await?);
            status.outbox_dead_letters = Some(db.outbox_dead_letter_count().await?);
        }
        #[cfg(feature = "redis")]
        for streams in &self.streams {
            status.streams.push(StreamStatus {
                stream: streams.settings().get_stream().to_owned(),
                group: streams.settings().get_group().to_owned(),
                lag: streams.lag().await?,
                dead_letters: streams.dead_letter_count().await?,
            });
        }
        Ok(status)
    }

    /// Up to `limit` dead letters of each store, oldest first per store.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<Letter>, Error> {
        let mut letters = Vec::new();
        if let Some(bus) = &self.bus {
            letters.extend(
                bus.dead_letters()
                    .into_iter()
                    .take(limit)
                    .map(|letter| Letter {
                        source: Source::Bus,
                        id: letter.id.to_string(),
                        reason: format!("handler {} {}", letter.handler, letter.reason),
                        attempts: letter.attempts,
                        event: Some(letter.event),
                    }),
            );
        }
        if let Some(db) = &self.db {
            letters.extend(
                db.outbox_dead_letters(limit)
                    .await?
                    .into_iter()
                    .map(|letter| Letter {
                        source: Source::Outbox,
                        id: letter.id,
                        event: letter.event,
                        reason: letter.reason,
                        attempts: letter.attempts,
                    }),
            );
        }
        #[cfg(feature = "redis")]
        for streams in &self.streams {
            let source = Source::Stream {
                stream: streams.settings().get_stream().to_owned(),
            };
            letters.extend(
                streams
                    .dead_letters(limit)
                    .await?
                    .into_iter()
                    .map(|letter| Letter {
                        source: source.clone(),
                        id: letter.id,
                        event: letter.event,
                        reason: letter.reason,
                        attempts: letter.deliveries,
                    }),
            );
        }
        Ok(letters)
    }

    /// Sends a dead letter back for delivery, in the store it came from.
    /// [`Error::NoDeadLetter`] if it is gone (requeued or purged already),
    /// or if this admin was not given its store.
    pub async fn requeue(&self, letter: &Letter) -> Result<(), Error> {
        match &letter.source {
            Source::Bus => {
                let bus = self.bus.as_ref().ok_or_else(|| missing(letter))?;
                let id = letter.id.parse().map_err(|_| missing(letter))?;
                Ok(bus.requeue(id).await?)
            }
            Source::Outbox => {
                let db = self.db.as_ref().ok_or_else(|| missing(letter))?;
                db.requeue_outbox_dead_letter(&letter.id).await
            }
            Source::Stream { stream } => self.requeue_in_stream(stream, letter).await,
        }
    }

    #[cfg(feature = "redis")]
    async fn requeue_in_stream(&self, stream: &str, letter: &Letter) -> Result<(), Error> {
        let streams = self
            .streams
            .iter()
            .find(|s| s.settings().get_stream() == stream)
            .ok_or_else(|| missing(letter))?;
        streams.requeue(&letter.id).await
    }

    #[cfg(not(feature = "redis"))]
    async fn requeue_in_stream(&self, _stream: &str, letter: &Letter) -> Result<(), Error> {
        Err(missing(letter))
    }

    /// Deletes every dead letter of `source`; returns how many there were.
    pub async fn purge(&self, source: &Source) -> Result<u64, Error> {
        match source {
            Source::Bus => Ok(self
                .bus
                .as_ref()
                .map_or(0, |bus| bus.purge_dead_letters() as u64)),
            Source::Outbox => match &self.db {
                Some(db) => db.purge_outbox_dead_letters().await,
                None => Ok(0),
            },
            #[cfg(feature = "redis")]
            Source::Stream { stream } => {
                for streams in &self.streams {
                    if streams.settings().get_stream() == stream {
                        return streams.purge_dead_letters().await;
                    }
                }
                Ok(0)
            }
            #[cfg(not(feature = "redis"))]
            Source::Stream { .. } => Ok(0),
        }
    }
}

fn missing(letter: &Letter) -> Error {
    Error::NoDeadLetter {
        store: letter.source.to_string().into(),
        id: letter.id.clone(),
    }
}
