//! The transactional outbox: events raised in a transaction are rows of
//! `earn_outbox`, written in that transaction. After the commit they are
//! published at once and each row is deleted when its event has been fully
//! handled; [`OutboxRelay`] delivers whatever a crash left behind.

mod admin;
mod dead;
mod deleter;
mod relay;
mod sql;
mod stage;
mod wake;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use earn_core::{Error, Event, EventSink};

use crate::connection::{Pool, with_backend};
use crate::db::Db;
pub use dead::{OUTBOX_DEAD_TABLE, OutboxDeadLetters};
pub(crate) use deleter::Deleter;
pub use relay::OutboxRelay;
use sql::sql;
pub(crate) use stage::{Destination, ToOutbox};

/// The outbox table.
pub const OUTBOX_TABLE: &str = "earn_outbox";

/// Who publishes committed outbox events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboxMode {
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
    pub mode: OutboxMode,
    /// How long a claimed row (by the committer or a relay) is left alone
    /// before another relay may take it over.
    pub lease: Duration,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            mode: OutboxMode::Inline,
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
    table_error(OUTBOX_TABLE, operation)
}

/// A failed statement on an outbox table; a table that is not there says
/// how to create it (an operator running `earn status` on a database
/// whose outbox was never installed).
pub(super) fn table_error(
    table: &'static str,
    operation: &'static str,
) -> impl FnOnce(sqlx::Error) -> Error {
    crate::connection::table_error(
        table,
        operation,
        "the outbox is not installed: run `Db::install_outbox`, or apply the migration its documentation gives",
    )
}

/// Creates the outbox tables if they do not exist (the migration
/// documented on [`Db::install_outbox`]).
pub(crate) async fn install(db: &Db) -> Result<(), Error> {
    db.execute_unprepared(sql(db.dialect()).migration).await
}

/// Hands `event` to `sink`, which calls `accepted` once it is responsible
/// for it; a refusal leaves the row for a relay, after its lease.
async fn hand_over(sink: &dyn EventSink, event: Event, accepted: Box<dyn FnOnce() + Send>) {
    let name = event.name().to_string();
    let id = event.id();
    if let Err(error) = sink.hand_over(event, accepted).await {
        tracing::warn!(event = name, event_id = %id, %error, "an outbox event was not handed over now; a relay will deliver it after its lease");
    }
}

/// How many events wait in the outbox (not yet fully handled).
pub(crate) async fn backlog(pool: &Pool) -> Result<u64, Error> {
    count(pool, sql(pool.dialect()).count).await
}

/// How long the oldest waiting event has waited.
pub(crate) async fn oldest_age(pool: &Pool) -> Result<Option<std::time::Duration>, Error> {
    let mut conn = pool.acquire().await?;
    let oldest: Option<i64> = with_backend!(&mut conn, |c, DB| {
        sqlx::query_scalar::<DB, Option<i64>>("SELECT MIN(created_at) FROM earn_outbox")
            .fetch_one(&mut *c)
            .await
    })
    .map_err(outbox_error("select"))?;
    Ok(oldest.map(|created| {
        std::time::Duration::from_millis(
            u64::try_from(now_ms().saturating_sub(created)).unwrap_or(0),
        )
    }))
}

async fn count(pool: &Pool, statement: &'static str) -> Result<u64, Error> {
    let mut conn = pool.acquire().await?;
    let count: i64 = with_backend!(&mut conn, |c, DB| {
        sqlx::query_scalar::<DB, i64>(statement)
            .fetch_one(&mut *c)
            .await
    })
    .map_err(outbox_error("count"))?;
    Ok(u64::try_from(count).unwrap_or(0))
}
