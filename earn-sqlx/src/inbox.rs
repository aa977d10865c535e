//! The idempotency inbox: a row per (handler, event id) written in the
//! handler's own transaction, so a redelivered event changes the database
//! once.

use earn_core::{Error, Event};

use crate::connection::with_backend;
use crate::db::Db;
use crate::outbox::now_ms;
use crate::tx::Tx;

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

async fn install(db: &Db) -> Result<(), Error> {
    db.execute_unprepared(MIGRATION[db.dialect() as usize])
        .await
}

async fn begin_once(db: &Db, handler: &str, event: &Event) -> Result<Option<Tx>, Error> {
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
    let inserted = with_backend!(&mut tx.conn, |c, DB| {
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

impl Db {
    /// Creates the idempotency inbox `earn_inbox` if it does not exist,
    /// for [`begin_once`](Db::begin_once). In production put the same DDL
    /// in a migration.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// db.install_inbox().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The migration, PostgreSQL:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/inbox_postgres.sql")]
    /// ```
    ///
    /// MySQL / MariaDB:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/inbox_mysql.sql")]
    /// ```
    ///
    /// SQLite:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/inbox_sqlite.sql")]
    /// ```
    ///
    /// `handled_at` is in milliseconds since the Unix epoch. Rows are never
    /// deleted by earn: delete old ones once redelivery of their events is
    /// no longer possible.
    pub async fn install_inbox(&self) -> Result<(), Error> {
        install(self).await
    }

    /// Begins a transaction for `handler`'s work on `event`, unless that
    /// work was already done: effectively-once database side effects over
    /// at-least-once delivery.
    ///
    /// Inside the new transaction, (`handler`, event id) is inserted into
    /// `earn_inbox` ([`install_inbox`](Db::install_inbox)). If the pair
    /// was already there the transaction is rolled back and `Ok(None)`
    /// returned: the event was handled before, do nothing. Otherwise the
    /// [`Tx`] is returned: make the handler's writes in it and commit; the
    /// inbox row commits with them. If the handler fails and the
    /// transaction rolls back (or is dropped), the inbox row goes too, so a
    /// redelivery runs the handler again.
    ///
    /// A concurrent delivery of the same event to the same handler waits
    /// on PostgreSQL and MySQL for the first transaction to end, then
    /// returns `None` if it committed (SQLite has one writer at a time).
    /// `handler` names the work (at most 255 characters): use one name per
    /// handler, stable across releases.
    ///
    /// Only the database writes made in the transaction are
    /// effectively-once: a side effect outside it (an email, an HTTP call)
    /// can still happen twice.
    ///
    /// ```no_run
    /// use earn::prelude::*;
    ///
    /// #[derive(Debug, Clone, Model)]
    /// #[model(table = "shipments")]
    /// struct Shipment {
    ///     #[model(primary_key, auto)]
    ///     id: Option<i64>,
    ///     order_event: String,
    /// }
    ///
    /// struct Shipping {
    ///     db: Db,
    /// }
    ///
    /// #[service]
    /// impl Shipping {
    ///     #[event_handler("order.paid")]
    ///     async fn ship(&self, event: &Event) -> Result<(), HandlerError> {
    ///         let Some(mut tx) = self.db.begin_once("shipping.ship", event).await? else {
    ///             return Ok(()); // a redelivery: shipped already
    ///         };
    ///         let mut shipment = Shipment { id: None, order_event: event.id().to_string() };
    ///         shipment.save_in(&mut tx).await?;
    ///         tx.commit().await?; // the shipment and the inbox row, together
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub async fn begin_once(&self, handler: &str, event: &Event) -> Result<Option<Tx>, Error> {
        begin_once(self, handler, event).await
    }
}
