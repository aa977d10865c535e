//! The event store: events kept in streams (one per aggregate) with
//! expected versions, a global order readers can trust, catch-up
//! subscriptions with checkpoints saved in the subscriber's transaction,
//! projections, upcasters and snapshots, in the application's own
//! database.

mod append;
mod projection;
mod read;
mod retention;
mod snapshot;
mod sql;
mod subscription;
mod upcast;
mod watermark;

use std::sync::Arc;
use std::time::Duration;

use earn_core::{Error, Event};

use crate::db::Db;
pub(crate) use projection::ErasedProjection;
pub use projection::{Progress, Projection};
pub use read::EventStream;
pub use snapshot::{Aggregate, Loaded, Snapshot};
pub use subscription::{Checkpoint, Subscription, SubscriptionBuilder};
use upcast::Upcasters;
use watermark::Watermark;

/// The table of stored events.
pub const EVENTS_TABLE: &str = "earn_events";

/// The longest stream name, in characters (a key column on MySQL).
const MAX_STREAM_CHARS: usize = 255;

/// An event as stored: where it is in the global order and in its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Its global position: unique, rising in the order readers see
    /// events. Positions may have gaps (an append that rolled back).
    pub position: u64,
    /// The stream it was appended to.
    pub stream: String,
    /// Its version in the stream: 1 for the stream's first event.
    pub version: u64,
    /// The schema version it was stored with; [`event`](Recorded::event)
    /// holds it upcast to the current one.
    pub schema_version: u32,
    /// The event, in the current shape of its payload.
    pub event: Event,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append (the version of its last
    /// event).
    pub version: u64,
    /// The global position of each event, in the order given.
    pub positions: Vec<u64>,
    /// `false` when every event was stored already (a retried append):
    /// nothing was written.
    pub written: bool,
}

/// The event store of a [`Db`]: streams of events with optimistic
/// concurrency, read back in a global order, followed by catch-up
/// subscriptions and projections. Cheap to clone.
///
/// Create its tables with [`install`](EventStore::install) (or the
/// migration documented there).
///
/// ```
/// use earn::store::{EventStore, Expected};
/// use futures_util::TryStreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), earn::Error> {
/// let db = earn::Db::connect("sqlite::memory:").await?;
/// let store = EventStore::new(&db);
/// store.install().await?;
///
/// let placed = earn::Event::new("order.placed", &serde_json::json!({"total": 30}))?;
/// let appended = store.append("order-7", Expected::NoStream, vec![placed]).await?;
/// assert_eq!(appended.version, 1);
///
/// // A second writer that also believed the stream was new loses.
/// let again = earn::Event::new("order.placed", &serde_json::json!({"total": 31}))?;
/// let refused = store.append("order-7", Expected::NoStream, vec![again]).await;
/// assert!(matches!(refused, Err(earn::Error::WrongExpectedVersion { actual: Some(1), .. })));
///
/// let events: Vec<_> = store.read_stream("order-7", 1).try_collect().await?;
/// assert_eq!(events[0].event.name().as_str(), "order.placed");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    upcasters: Upcasters,
    inline: Vec<Arc<dyn ErasedProjection>>,
    retention: Option<Duration>,
    watermark: Watermark,
    /// Wakes this process's subscriptions after an append commits.
    appended: tokio::sync::Notify,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("db", &self.inner.db)
            .field("upcasters", &self.inner.upcasters)
            .field("inline_projections", &self.inner.inline.len())
            .field("retention", &self.inner.retention)
            .finish()
    }
}

/// Builds an [`EventStore`] with upcasters, inline projections and a
/// retention.
#[must_use]
pub struct EventStoreBuilder {
    db: Db,
    upcasters: Upcasters,
    inline: Vec<Arc<dyn ErasedProjection>>,
    retention: Option<Duration>,
}

impl std::fmt::Debug for EventStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStoreBuilder").finish_non_exhaustive()
    }
}

impl EventStoreBuilder {
    /// Registers an upcaster: events named `name` stored at schema
    /// version `from` are turned into version `from + 1` by `upcast` when
    /// read. Chains run in order (1 → 2 → 3); events appended from now on
    /// are stored at the version after the last upcaster, so they are
    /// never upcast. A missing or failing upcaster makes the read fail with
    /// `Error::StoredEvent`, naming the event.
    ///
    /// ```
    /// # async fn run(db: earn::Db) {
    /// let store = earn::store::EventStore::builder(&db)
    ///     // Version 1 had `amount` in cents; version 2 has `total` in units.
    ///     .upcast("order.placed", 1, |mut payload| {
    ///         let cents = payload["amount"].as_i64().ok_or("no amount")?;
    ///         payload["total"] = serde_json::json!(cents as f64 / 100.0);
    ///         Ok(payload)
    ///     })
    ///     .build();
    /// # }
    /// ```
    pub fn upcast<F>(mut self, name: &str, from: u32, upcast: F) -> Self
    where
        F: Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    {
        self.upcasters.register(name, from, Box::new(upcast));
        self
    }

    /// Runs `projection` inside every append's transaction: the read
    /// model changes with the events, or neither does.
    pub fn inline<P: Projection>(mut self, projection: P) -> Self {
        self.inline.push(Arc::new(projection));
        self
    }

    /// Keeps events for `age` only: [`EventStore::prune`] deletes older
    /// ones that every subscription has read. For a store used as a log,
    /// not as the source of truth.
    pub fn retention(mut self, age: Duration) -> Self {
        self.retention = Some(age);
        self
    }

    /// The store.
    pub fn build(self) -> EventStore {
        EventStore {
            inner: Arc::new(Inner {
                db: self.db,
                upcasters: self.upcasters,
                inline: self.inline,
                retention: self.retention,
                watermark: Watermark::default(),
                appended: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl EventStore {
    /// The event store of `db`, with no upcasters, inline projections or
    /// retention.
    pub fn new(db: &Db) -> EventStore {
        EventStore::builder(db).build()
    }

    /// A store with upcasters, inline projections or a retention.
    pub fn builder(db: &Db) -> EventStoreBuilder {
        EventStoreBuilder {
            db: db.clone(),
            upcasters: Upcasters::default(),
            inline: Vec::new(),
            retention: None,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Creates the store's tables if they do not exist: `earn_events`,
    /// `earn_streams`, `earn_checkpoints`, `earn_snapshots` (and on
    /// MySQL the sequencer row `earn_event_position`). In production put
    /// the same DDL in a migration.
    ///
    /// PostgreSQL:
    ///
    /// ```sql
    #[doc = include_str!("../../migrations/store_postgres.sql")]
    /// ```
    ///
    /// MySQL / MariaDB:
    ///
    /// ```sql
    #[doc = include_str!("../../migrations/store_mysql.sql")]
    /// ```
    ///
    /// SQLite:
    ///
    /// ```sql
    #[doc = include_str!("../../migrations/store_sqlite.sql")]
    /// ```
    pub async fn install(&self) -> Result<(), Error> {
        let db = &self.inner.db;
        db.execute_unprepared(sql::sql(db.dialect()).migration)
            .await
    }
}

/// A stream name earn can store, or why not.
fn check_stream(stream: &str) -> Result<(), Error> {
    let reason = if stream.is_empty() {
        "it is empty"
    } else if stream.chars().count() > MAX_STREAM_CHARS {
        "it is longer than 255 characters"
    } else if stream.contains('\0') {
        "it contains a NUL character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidStream {
        stream: stream.chars().take(80).collect(),
        reason,
    })
}

/// A failed statement on a store table; a table that is not there says
/// how to create it.
fn store_error(table: &'static str, operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    crate::connection::table_error(
        table,
        operation,
        "the event store is not installed: run `EventStore::install`, or apply the migration its documentation gives",
    )
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
