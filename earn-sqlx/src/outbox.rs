//! The transactional outbox: events raised in a transaction are rows of
//! `earn_outbox`, written in that transaction. After the commit they are
//! published at once and each row is deleted when its event has been fully
//! handled; [`OutboxRelay`] delivers whatever a crash left behind.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use earn_core::{Error, Event, EventBus, EventSink};
use sqlx::Row as _;

use crate::backend::Dialect;
use crate::db::Db;
use crate::tx::{Conn, dispatch};

/// The outbox table.
pub const OUTBOX_TABLE: &str = "earn_outbox";

/// Who publishes committed outbox events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboxDispatch {
    /// The committing process publishes them right after the commit; a
    /// relay only picks up rows whose lease ran out (a crash between commit
    /// and delivery).
    #[default]
    Inline,
    /// Only a relay publishes them: for a producer that has no handlers,
    /// with workers running [`OutboxRelay`] elsewhere.
    Relay,
}

/// Outbox settings of a [`Db`].
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    /// Who publishes.
    pub dispatch: OutboxDispatch,
    /// How long a claimed row (by the committer or a relay) is left alone
    /// before another relay may take it over.
    pub lease: Duration,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            dispatch: OutboxDispatch::Inline,
            lease: Duration::from_secs(30),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// The statements, by dialect.
struct Sql {
    create: &'static [&'static str],
    insert: &'static str,
    delete: &'static str,
    /// SQLite: claim and read in one `UPDATE … RETURNING`.
    claim: &'static str,
    /// PostgreSQL / MySQL: lock claimable rows, skipping locked ones.
    lock: &'static str,
    extend: &'static str,
    count: &'static str,
}

const SQL: [Sql; 3] = [
    Sql {
        create: &[
            "CREATE TABLE IF NOT EXISTS earn_outbox (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, \
             event TEXT NOT NULL, created_at INTEGER NOT NULL, claimed_until INTEGER NOT NULL, \
             attempts INTEGER NOT NULL DEFAULT 0)",
            "CREATE INDEX IF NOT EXISTS earn_outbox_claimable ON earn_outbox (claimed_until, created_at)",
        ],
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        delete: "DELETE FROM earn_outbox WHERE id = ?",
        claim: "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN \
                (SELECT id FROM earn_outbox WHERE claimed_until < ? ORDER BY created_at, id LIMIT ?) \
                RETURNING id, event",
        lock: "",
        extend: "",
        count: "SELECT COUNT(*) FROM earn_outbox",
    },
    Sql {
        create: &[
            "CREATE TABLE IF NOT EXISTS earn_outbox (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, \
             event TEXT NOT NULL, created_at BIGINT NOT NULL, claimed_until BIGINT NOT NULL, \
             attempts INTEGER NOT NULL DEFAULT 0)",
            "CREATE INDEX IF NOT EXISTS earn_outbox_claimable ON earn_outbox (claimed_until, created_at)",
        ],
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES ($1, $2, $3, $4, $5)",
        delete: "DELETE FROM earn_outbox WHERE id = $1",
        claim: "",
        lock: "SELECT id, event FROM earn_outbox WHERE claimed_until < $1 ORDER BY created_at, id \
               LIMIT $2 FOR UPDATE SKIP LOCKED",
        extend: "UPDATE earn_outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id = $2",
        count: "SELECT COUNT(*) FROM earn_outbox",
    },
    Sql {
        create: &[
            "CREATE TABLE IF NOT EXISTS earn_outbox (id VARCHAR(36) NOT NULL PRIMARY KEY, \
             name VARCHAR(255) NOT NULL, event LONGTEXT NOT NULL, created_at BIGINT NOT NULL, \
             claimed_until BIGINT NOT NULL, attempts INT NOT NULL DEFAULT 0, \
             INDEX earn_outbox_claimable (claimed_until, created_at))",
        ],
        insert: "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) VALUES (?, ?, ?, ?, ?)",
        delete: "DELETE FROM earn_outbox WHERE id = ?",
        claim: "",
        lock: "SELECT id, event FROM earn_outbox WHERE claimed_until < ? ORDER BY created_at, id \
               LIMIT ? FOR UPDATE SKIP LOCKED",
        extend: "UPDATE earn_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id = ?",
        count: "SELECT COUNT(*) FROM earn_outbox",
    },
];

fn sql(dialect: Dialect) -> &'static Sql {
    &SQL[dialect as usize]
}

fn outbox_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database {
        table: OUTBOX_TABLE.into(),
        operation,
        source: Box::new(source),
    }
}

/// Creates the outbox table (the migration, for a quick start or tests).
pub(crate) async fn install(db: &Db) -> Result<(), Error> {
    for statement in sql(db.dialect()).create {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// Writes `events` as outbox rows on `conn` (inside the caller's
/// transaction), claimed until `claimed_until` (0: claimable at once).
pub(crate) async fn insert(
    conn: &mut Conn,
    dialect: Dialect,
    events: &[Event],
    claimed_until: i64,
) -> Result<(), Error> {
    let statement = sql(dialect).insert;
    for event in events {
        let json = serde_json::to_string(event).map_err(|source| {
            Error::Event(earn_core::EventError::Payload {
                name: event.name().to_string(),
                source,
            })
        })?;
        let id = event.id().to_string();
        let created = i64::try_from(event.data().timestamp_ms).unwrap_or(i64::MAX);
        dispatch!(conn, |c, DB| {
            sqlx::query::<DB>(statement)
                .bind(&id)
                .bind(event.name().as_str())
                .bind(&json)
                .bind(created)
                .bind(claimed_until)
                .execute(&mut *c)
                .await
                .map(|_| ())
        })
        .map_err(outbox_error("insert"))?;
    }
    Ok(())
}

/// Deletes the row of a handled event.
pub(crate) async fn delete(db: &Db, id: &str) -> Result<(), Error> {
    let statement = sql(db.dialect()).delete;
    let mut conn = db.acquire().await?;
    dispatch!(&mut conn, |c, DB| {
        sqlx::query::<DB>(statement)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|_| ())
    })
    .map_err(outbox_error("delete"))
}

/// Hands a committed outbox event to the database's sink (default: `bus`);
/// its row goes once the sink has accepted it.
pub(crate) async fn publish(db: &Db, bus: &EventBus, event: Event) {
    match db.outbox_sink() {
        Some(sink) => hand_over(db, &*sink, event).await,
        None => hand_over(db, bus, event).await,
    }
}

async fn hand_over(db: &Db, sink: &dyn EventSink, event: Event) {
    let id = event.id().to_string();
    let name = event.name().to_string();
    let db = db.clone();
    let handled = move || {
        tokio::spawn(async move {
            if let Err(error) = delete(&db, &id).await {
                // The row stays: a relay redelivers it after its lease.
                tracing::warn!(event_id = id, %error, "a handled outbox event could not be deleted");
            }
        });
    };
    if let Err(error) = sink.hand_over(event, Box::new(handled)).await {
        tracing::warn!(event = name, %error, "an outbox event was not handed over now; the relay will deliver it");
    }
}

/// How many events wait in the outbox (not yet fully handled).
pub(crate) async fn backlog(db: &Db) -> Result<u64, Error> {
    let statement = sql(db.dialect()).count;
    let mut conn = db.acquire().await?;
    let count: i64 = dispatch!(&mut conn, |c, DB| {
        sqlx::query_scalar::<DB, i64>(statement)
            .fetch_one(&mut *c)
            .await
    })
    .map_err(outbox_error("count"))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Delivers outbox rows nobody is handling: left by a crash between commit
/// and delivery, or written with [`OutboxDispatch::Relay`]. Several relays
/// may run at once, in any number of processes: rows are claimed with a
/// lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL), never read
/// with a serial cursor, so a transaction that commits late is still seen.
///
/// ```no_run
/// # async fn run(db: earn::Db, bus: earn::EventBus) -> Result<(), earn::Error> {
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let relay = earn::OutboxRelay::new(db, bus);
/// tokio::spawn(async move { relay.run_until(stopped).await });
/// // … at shutdown:
/// let _ = stop.send(());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OutboxRelay {
    db: Db,
    sink: Arc<dyn EventSink>,
    batch: i64,
    lease: Duration,
    poll: Duration,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("db", &self.db)
            .field("batch", &self.batch)
            .field("lease", &self.lease)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    /// A relay of `db`'s outbox to `sink`: an [`EventBus`] (handlers in
    /// this process) or a broker such as Redis Streams.
    pub fn new(db: Db, sink: impl EventSink) -> OutboxRelay {
        OutboxRelay {
            db,
            sink: Arc::new(sink),
            batch: 100,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }

    /// Rows claimed at once (default 100).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// How long a claim lasts before another relay may retry the row
    /// (default 30 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The wait between polls when the outbox is empty (default 500 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Claims one batch of deliverable rows and publishes them; returns how
    /// many. Each row is deleted once its event is handled.
    pub async fn run_once(&self) -> Result<usize, Error> {
        let now = now_ms();
        let until = now.saturating_add(lease_ms(self.lease));
        let claimed = self.claim(now, until).await?;
        let count = claimed.len();
        for (id, json) in claimed {
            match serde_json::from_str::<Event>(&json) {
                Ok(event) => hand_over(&self.db, &*self.sink, event).await,
                Err(error) => {
                    // Not an event: kept (and retried after each lease) for an operator.
                    tracing::error!(outbox_id = id, %error, "an outbox row does not hold a valid event");
                }
            }
        }
        Ok(count)
    }

    async fn claim(&self, now: i64, until: i64) -> Result<Vec<(String, String)>, Error> {
        let statements = sql(self.db.dialect());
        let batch = self.batch;
        if self.db.dialect() == Dialect::Sqlite {
            let mut conn = self.db.acquire().await?;
            return dispatch!(&mut conn, |c, DB| {
                async {
                    let rows = sqlx::query::<DB>(statements.claim)
                        .bind(until)
                        .bind(now)
                        .bind(batch)
                        .fetch_all(&mut *c)
                        .await?;
                    rows.iter()
                        .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()
                }
                .await
            })
            .map_err(outbox_error("claim"));
        }
        let mut tx = self.db.begin().await?;
        let rows = dispatch!(&mut tx.conn, |c, DB| {
            async {
                let rows = sqlx::query::<DB>(statements.lock)
                    .bind(now)
                    .bind(batch)
                    .fetch_all(&mut *c)
                    .await?;
                let rows = rows
                    .iter()
                    .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                for (id, _) in &rows {
                    sqlx::query::<DB>(statements.extend)
                        .bind(until)
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                }
                Ok::<_, sqlx::Error>(rows)
            }
            .await
        })
        .map_err(outbox_error("claim"))?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Runs until `stop` completes: claims and publishes, sleeping
    /// [`poll_interval`](OutboxRelay::poll_interval) when there is nothing
    /// to do, and backing off on database errors.
    pub async fn run_until<F: std::future::Future>(&self, stop: F) {
        let mut stop = std::pin::pin!(stop);
        let mut backoff = self.poll;
        loop {
            let wait = match self.run_once().await {
                Ok(0) => {
                    backoff = self.poll;
                    self.poll
                }
                Ok(_) => {
                    backoff = self.poll;
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox relay: claim failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    backoff
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
