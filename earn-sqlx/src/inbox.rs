//! The idempotency inbox: a row per (handler, event id) written in the
//! handler's own transaction, so a redelivered event changes the database
//! once.

use earn_core::{Error, Event};

use crate::db::Db;
use crate::outbox::now_ms;
use crate::tx::{Tx, dispatch};

/// The inbox table.
pub const INBOX_TABLE: &str = "earn_inbox";

/// The longest handler name: the key column's width on MySQL.
const MAX_HANDLER_CHARS: usize = 255;

/// Creates `earn_inbox` (several statements where a dialect needs them).
const MIGRATION: [&str; 3] = [
    include_str!("../migrations/inbox_sqlite.sql"),
    include_str!("../migrations/inbox_postgres.sql"),
    include_str!("../migrations/inbox_mysql.sql"),
];

/// Records (handler, event id), or does nothing if the pair is there: a
/// concurrent insert of the same pair waits for the transaction holding
/// it, then sees it (PostgreSQL, MySQL).
const INSERT: [&str; 3] = [
    "INSERT OR IGNORE INTO earn_inbox (handler, event_id, handled_at) VALUES (?, ?, ?)",
    "INSERT INTO earn_inbox (handler, event_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    "INSERT IGNORE INTO earn_inbox (handler, event_id, handled_at) VALUES (?, ?, ?)",
];

fn inbox_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database {
        table: INBOX_TABLE.into(),
        operation,
        source: Box::new(source),
    }
}

pub(crate) async fn install(db: &Db) -> Result<(), Error> {
    db.execute_unprepared(MIGRATION[db.dialect() as usize])
        .await
}

pub(crate) async fn begin_once(db: &Db, handler: &str, event: &Event) -> Result<Option<Tx>, Error> {
    // `INSERT IGNORE` would cut a longer name down to size on MySQL,
    // merging handlers; refuse it everywhere alike.
    if handler.chars().count() > MAX_HANDLER_CHARS {
        return Err(Error::Database {
            table: INBOX_TABLE.into(),
            operation: "insert",
            source: format!(
                "the handler name `{handler}` is longer than {MAX_HANDLER_CHARS} characters"
            )
            .into(),
        });
    }
    let mut tx = db.begin().await?;
    let statement = INSERT[tx.dialect() as usize];
    let event_id = event.id().to_string();
    let handled_at = now_ms();
    let inserted = dispatch!(&mut tx.conn, |c, DB| {
        sqlx::query::<DB>(statement)
            .bind(handler)
            .bind(&event_id)
            .bind(handled_at)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected())
    })
    .map_err(inbox_error("insert"))?;
    if inserted == 0 {
        tx.rollback().await?;
        tracing::debug!(handler, event_id, "event already handled: skipped");
        return Ok(None);
    }
    Ok(Some(tx))
}
