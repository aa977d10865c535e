//! The transactional outbox: events raised in a transaction are rows of
//! `earn_outbox`, written in that transaction. After the commit they are
//! published at once and each row is deleted when its event has been fully
//! handled; [`OutboxRelay`] delivers whatever a crash left behind.

mod admin;
mod dead;
mod relay;
mod sql;
mod wake;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use earn_core::{Error, Event, EventBus, EventSink};

use crate::backend::Dialect;
use crate::db::Db;
use crate::tx::{Conn, dispatch};
pub use dead::{OUTBOX_DEAD_TABLE, OutboxDeadLetter};
use dead::{dead_letters, purge_dead_letters, requeue_dead_letter};
pub use relay::OutboxRelay;
use sql::{MAX_IN, in_list, sql};

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

fn outbox_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database {
        table: OUTBOX_TABLE.into(),
        operation,
        source: Box::new(source),
    }
}

/// Creates the outbox tables if they do not exist (the migration
/// documented on [`Db::install_outbox`]).
pub(crate) async fn install(db: &Db) -> Result<(), Error> {
    db.execute_unprepared(sql(db.dialect()).migration).await
}

/// Writes `events` as outbox rows on `conn` (inside the caller's
/// transaction), claimed until `claimed_until` (0: claimable at once).
///
/// Rows a relay may take at once are announced on PostgreSQL with
/// `pg_notify`, which the server delivers only if the transaction commits.
/// Rows the committer holds a lease on are not: a relay woken for them
/// would find nothing to claim.
pub(crate) async fn insert(
    conn: &mut Conn,
    dialect: Dialect,
    events: &[Event],
    claimed_until: i64,
) -> Result<(), Error> {
    let statements = sql(dialect);
    // Folded into the last insert: a statement of its own would cost a
    // round trip, a fifth of a one-row commit.
    let notify = claimed_until == 0 && !statements.insert_notify.is_empty();
    for (index, event) in events.iter().enumerate() {
        let statement = if notify && index + 1 == events.len() {
            statements.insert_notify
        } else {
            statements.insert
        };
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

/// Deletes the rows of handled events, in as few statements as it can.
async fn delete_many(db: &Db, ids: &[String]) -> Result<(), Error> {
    let statements = sql(db.dialect());
    let mut conn = db.acquire().await?;
    #[cfg(feature = "postgres")]
    #[allow(irrefutable_let_patterns)]
    if let Conn::Postgres(c) = &mut conn {
        return sqlx::query(statements.delete_any)
            .bind(ids)
            .execute(&mut **c)
            .await
            .map(|_| ())
            .map_err(outbox_error("delete"));
    }
    run_in(&mut conn, statements.delete_in, None, ids)
        .await
        .map(|_| ())
        .map_err(outbox_error("delete"))
}

/// Runs `head` completed with an `IN` list of `ids` (in chunks of at most
/// [`MAX_IN`]), binding `first` before the ids; returns the rows affected.
async fn run_in(
    conn: &mut Conn,
    head: &'static str,
    first: Option<i64>,
    ids: &[String],
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for chunk in ids.chunks(MAX_IN) {
        let offset = usize::from(first.is_some());
        let statement = format!("{head}{}", in_list(conn.dialect(), offset, chunk.len()));
        affected += dispatch!(&mut *conn, |c, DB| {
            // Only placeholders vary: the values are bound. Not kept
            // prepared, as each length is a statement of its own.
            let mut query = sqlx::query::<DB>(sqlx::AssertSqlSafe(statement)).persistent(false);
            if let Some(first) = first {
                query = query.bind(first);
            }
            for id in chunk {
                query = query.bind(id);
            }
            query
                .execute(&mut *c)
                .await
                .map(|done| done.rows_affected())
        })?;
    }
    Ok(affected)
}

/// Handled rows deleted per statement, at most.
const DELETE_BATCH: usize = 1_000;

/// Deletes the rows of handled events in batches, from a task of its own
/// started by the first id: whatever was handled while one batch was
/// being deleted goes in the next statement. Shared by clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deleter(
    std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>>,
);

impl Deleter {
    /// Queues the row `id` of `db` for deletion.
    pub(crate) fn delete(&self, db: &Db, id: String) {
        let sender = self.0.get_or_init(|| {
            let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
            let db = db.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(DELETE_BATCH);
                while receiver.recv_many(&mut ids, DELETE_BATCH).await > 0 {
                    if let Err(error) = delete_many(&db, &ids).await {
                        // The rows stay: a relay redelivers them after their lease.
                        tracing::warn!(rows = ids.len(), %error, "handled outbox rows could not be deleted; they will be delivered again after their lease");
                    }
                    ids.clear();
                }
            });
            sender
        });
        // Only fails once the task is gone (the runtime is shutting down):
        // the row stays for a relay.
        let _ = sender.send(id);
    }
}

/// Hands a committed outbox event to the database's sink (default: `bus`);
/// its row goes once the sink has accepted it.
pub(crate) async fn publish(db: &Db, bus: &EventBus, event: Event) {
    let id = event.id().to_string();
    let rows = db.clone();
    let handled = move || rows.outbox_deleter().delete(&rows, id);
    match db.outbox_sink() {
        Some(sink) => hand_over(&*sink, event, Box::new(handled)).await,
        None => hand_over(bus, event, Box::new(handled)).await,
    }
}

/// Hands `event` to `sink`, which calls `accepted` once it is responsible
/// for it; a refusal leaves the row for a relay, after its lease.
async fn hand_over(sink: &dyn EventSink, event: Event, accepted: Box<dyn FnOnce() + Send>) {
    let name = event.name().to_string();
    if let Err(error) = sink.hand_over(event, accepted).await {
        tracing::warn!(event = name, %error, "an outbox event was not handed over now; the relay will deliver it");
    }
}

/// How many events wait in the outbox (not yet fully handled).
pub(crate) async fn backlog(db: &Db) -> Result<u64, Error> {
    count(db, sql(db.dialect()).count).await
}

/// How many rows the relays gave up on.
pub(crate) async fn dead_count(db: &Db) -> Result<u64, Error> {
    count(db, "SELECT COUNT(*) FROM earn_outbox_dead").await
}

async fn count(db: &Db, statement: &'static str) -> Result<u64, Error> {
    let mut conn = db.acquire().await?;
    let count: i64 = dispatch!(&mut conn, |c, DB| {
        sqlx::query_scalar::<DB, i64>(statement)
            .fetch_one(&mut *c)
            .await
    })
    .map_err(outbox_error("count"))?;
    Ok(u64::try_from(count).unwrap_or(0))
}
