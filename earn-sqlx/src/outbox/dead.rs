//! Poison rows: outbox rows the relay gave up on move to
//! `earn_outbox_dead`, where an operator lists, requeues or purges them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use earn_core::{Error, Event};
use sqlx::Row as _;

use super::now_ms;
use super::sql::sql;
use crate::connection::{Pool, with_backend};

/// The dead-letter table of the outbox.
pub const OUTBOX_DEAD_TABLE: &str = "earn_outbox_dead";

fn dead_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database {
        table: OUTBOX_DEAD_TABLE.into(),
        operation,
        source: Box::new(source),
    }
}

/// An outbox row the relay gave up on: its `event` column is not a valid
/// event, or it was claimed more than
/// [`max_attempts`](crate::OutboxRelay::max_attempts) times without being
/// fully handled. Listed by [`Db::outbox_dead_letters`](crate::Db::outbox_dead_letters).
///
/// ```no_run
/// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
/// for letter in db.outbox_dead_letters(50).await? {
///     match &letter.event {
///         Some(event) => println!("{} ({}): {}", event.name(), letter.id, letter.reason),
///         None => println!("unreadable row {}: {}", letter.id, letter.reason),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxDeadLetter {
    /// The row's id: the event id, unless the row was written by hand.
    pub id: String,
    /// The event name the row was written with.
    pub name: String,
    /// The `event` column as stored (JSON, when it is an event at all).
    pub raw: String,
    /// The event, if `raw` holds one.
    pub event: Option<Event>,
    /// Why the relay gave up on it.
    pub reason: String,
    /// How many times it was claimed.
    pub attempts: u32,
    /// When it moved to the dead-letter table.
    pub failed_at: SystemTime,
}

/// Moves the row `id`, claimed by this relay until `until`, to the
/// dead-letter table with `reason`, in one transaction. `false` if the row
/// had been taken over by another relay meanwhile (it stays theirs).
pub(super) async fn bury(pool: &Pool, id: &str, until: i64, reason: &str) -> Result<bool, Error> {
    let statements = sql(pool.dialect());
    let failed_at = now_ms();
    let mut tx = pool.begin().await?;
    let moved = with_backend!(&mut tx.conn, |c, DB| {
        async {
            let copied = sqlx::query::<DB>(statements.bury)
                .bind(reason)
                .bind(failed_at)
                .bind(id)
                .bind(until)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if copied == 0 {
                return Ok(false);
            }
            sqlx::query::<DB>(statements.delete_claimed)
                .bind(id)
                .bind(until)
                .execute(&mut *c)
                .await?;
            Ok::<_, sqlx::Error>(true)
        }
        .await
    })
    .map_err(dead_error("insert"))?;
    if moved {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(moved)
}

pub(crate) async fn dead_letters(
    pool: &Pool,
    limit: usize,
) -> Result<Vec<OutboxDeadLetter>, Error> {
    let statement = sql(pool.dialect()).dead_list;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut conn = pool.acquire().await?;
    with_backend!(&mut conn, |c, DB| {
        async {
            let rows = sqlx::query::<DB>(statement)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
            rows.iter()
                .map(|row| {
                    let raw: String = row.try_get(2)?;
                    let attempts: i32 = row.try_get(4)?;
                    let failed_at: i64 = row.try_get(5)?;
                    Ok(OutboxDeadLetter {
                        id: row.try_get(0)?,
                        name: row.try_get(1)?,
                        event: serde_json::from_str(&raw).ok(),
                        raw,
                        reason: row.try_get(3)?,
                        attempts: u32::try_from(attempts).unwrap_or(0),
                        failed_at: UNIX_EPOCH
                            + Duration::from_millis(u64::try_from(failed_at).unwrap_or(0)),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        }
        .await
    })
    .map_err(dead_error("select"))
}

pub(crate) async fn requeue_dead_letter(pool: &Pool, id: &str) -> Result<(), Error> {
    let statements = sql(pool.dialect());
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let copied = with_backend!(&mut tx.conn, |c, DB| {
        async {
            let copied = sqlx::query::<DB>(statements.requeue)
                .bind(now)
                .bind(id)
                .execute(&mut *c)
                .await?
                .rows_affected();
            sqlx::query::<DB>(statements.dead_delete)
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok::<_, sqlx::Error>(copied)
        }
        .await
    })
    .map_err(dead_error("requeue"))?;
    if copied == 0 {
        tx.rollback().await?;
        return Err(Error::NoDeadLetter {
            store: OUTBOX_DEAD_TABLE.into(),
            id: id.to_owned(),
        });
    }
    tx.commit().await?;
    tracing::info!(outbox_id = id, "outbox dead letter requeued");
    Ok(())
}

pub(crate) async fn purge_dead_letters(pool: &Pool) -> Result<u64, Error> {
    let statement = sql(pool.dialect()).dead_purge;
    let mut conn = pool.acquire().await?;
    with_backend!(&mut conn, |c, DB| {
        sqlx::query::<DB>(statement)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected())
    })
    .map_err(dead_error("purge"))
}
