//! `Db`: a pool of one of the three backends, chosen by URL.

use std::str::FromStr;

use earn_core::{Error, EventBus};

use crate::backend::Dialect;
use crate::model::{ColumnType, Model, Row};
use crate::tx::{Conn, Tx, dispatch};

#[derive(Clone, Debug)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// A database: a connection pool of SQLite, PostgreSQL or MySQL / MariaDB.
/// Cheap to clone; clones share the pool.
///
/// ```no_run
/// # async fn run() -> Result<(), earn::Error> {
/// let db = earn::Db::connect("sqlite::memory:").await?;
/// let pg = earn::Db::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    /// Where model events go after commit; `None`: the global default bus.
    bus: Option<EventBus>,
    /// Events go through the transactional outbox.
    outbox: Option<crate::outbox::Outbox>,
    /// Where committed outbox events are handed; `None`: the bus.
    sink: Option<Sink>,
}

/// A shared [`EventSink`](earn_core::EventSink), printable for `Db`'s `Debug`.
#[derive(Clone)]
pub(crate) struct Sink(pub(crate) std::sync::Arc<dyn earn_core::EventSink>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

/// Removes the password from a URL before it appears in a message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn url_error(url: &str, reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::Url {
        url: redact(url),
        reason: reason.into(),
    }
}

/// Opens and closes one connection, so an unreachable server is reported at
/// once with its cause: the pool would retry a refused connection for its
/// whole acquire timeout and then only say that it timed out.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn probe<O: sqlx::ConnectOptions>(options: &O) -> Result<(), Error>
where
    O::Connection: Sized,
{
    use sqlx::Connection;
    let connection = options.connect().await.map_err(connect_error)?;
    connection.close().await.map_err(connect_error)
}

fn connect_error(source: sqlx::Error) -> Error {
    Error::Connection {
        operation: "connect",
        source: Box::new(source),
    }
}

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "mysql")))]
fn feature_missing(url: &str, feature: &str) -> Error {
    url_error(
        url,
        format!(
            "this build of earn has no {feature} support; enable the `{feature}` feature of earn"
        ),
    )
}

impl Db {
    /// Connects to the database named by `url`, choosing the backend from
    /// its scheme: `sqlite:` (`sqlite::memory:` for an in-memory database,
    /// `sqlite://path.db`, created if missing), `postgres:` / `postgresql:`,
    /// `mysql:` / `mariadb:`.
    ///
    /// An unknown scheme, a backend whose feature is off, or an unreachable
    /// server is an [`Error`], never a panic.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Self::connect_sqlite(url).await,
            "postgres" | "postgresql" => Self::connect_postgres(url).await,
            "mysql" | "mariadb" => Self::connect_mysql(url).await,
            _ => Err(url_error(
                url,
                "unknown scheme; expected `sqlite:`, `postgres:` or `mysql:`",
            )),
        }
    }

    #[cfg(feature = "sqlite")]
    async fn connect_sqlite(url: &str) -> Result<Db, Error> {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| url_error(url, e.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database lives as long as its connection: keep
            // exactly one, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new()
        };
        let pool = pool.connect_with(options).await.map_err(connect_error)?;
        Ok(Db::from(pool))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn connect_sqlite(url: &str) -> Result<Db, Error> {
        Err(feature_missing(url, "sqlite"))
    }

    #[cfg(feature = "postgres")]
    async fn connect_postgres(url: &str) -> Result<Db, Error> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| url_error(url, e.to_string()))?;
        probe(&options).await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Db::from(pool))
    }

    #[cfg(not(feature = "postgres"))]
    async fn connect_postgres(url: &str) -> Result<Db, Error> {
        Err(feature_missing(url, "postgres"))
    }

    #[cfg(feature = "mysql")]
    async fn connect_mysql(url: &str) -> Result<Db, Error> {
        let url_for_sqlx = url.replacen("mariadb:", "mysql:", 1);
        let options = sqlx::mysql::MySqlConnectOptions::from_str(&url_for_sqlx)
            .map_err(|e| url_error(url, e.to_string()))?;
        probe(&options).await?;
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Db::from(pool))
    }

    #[cfg(not(feature = "mysql"))]
    async fn connect_mysql(url: &str) -> Result<Db, Error> {
        Err(feature_missing(url, "mysql"))
    }

    /// Delivers this database's model events (and `ctx.emit` events) to
    /// `bus` instead of the process-wide [`EventBus::global`].
    pub fn with_bus(mut self, bus: EventBus) -> Db {
        self.bus = Some(bus);
        self
    }

    /// Writes the events of every transaction (model events, `ctx.emit`)
    /// into the outbox table in that transaction, so a crash after the
    /// commit cannot lose them. Create the table with
    /// [`install_outbox`](Db::install_outbox) (or the same DDL in a
    /// migration) and run an [`OutboxRelay`](crate::OutboxRelay).
    pub fn with_outbox(mut self, outbox: crate::outbox::Outbox) -> Db {
        self.outbox = Some(outbox);
        self
    }

    /// Hands committed outbox events to `sink` (a broker such as Redis
    /// Streams) instead of this database's bus. A row is deleted once the
    /// sink has accepted its event; until then a relay may resend it.
    ///
    /// ```no_run
    /// # async fn run(redis: earn::EventBus) -> Result<(), earn::Error> {
    /// // Any `EventSink`: an `EventBus`, or `earn::redis::RedisStreams`.
    /// let db = earn::Db::connect("sqlite::memory:").await?
    ///     .with_outbox(earn::Outbox::default())
    ///     .with_outbox_sink(redis);
    /// # Ok(()) }
    /// ```
    pub fn with_outbox_sink(mut self, sink: impl earn_core::EventSink) -> Db {
        self.sink = Some(Sink(std::sync::Arc::new(sink)));
        self
    }

    pub(crate) fn outbox_sink(&self) -> Option<std::sync::Arc<dyn earn_core::EventSink>> {
        self.sink.as_ref().map(|sink| sink.0.clone())
    }

    /// The outbox settings, if the outbox is on.
    pub fn outbox(&self) -> Option<crate::outbox::Outbox> {
        self.outbox
    }

    /// Creates the outbox tables if they do not exist: `earn_outbox`, the
    /// events waiting for delivery, and `earn_outbox_dead`, the rows an
    /// [`OutboxRelay`](crate::OutboxRelay) gave up on. Handy for a quick
    /// start and tests; in production put the same DDL in a migration.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), earn::Error> {
    /// let db = earn::Db::connect("sqlite::memory:").await?
    ///     .with_outbox(earn::Outbox::default());
    /// db.install_outbox().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The migration, PostgreSQL:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/outbox_postgres.sql")]
    /// ```
    ///
    /// MySQL / MariaDB (10.6 or later, for `SKIP LOCKED`):
    ///
    /// ```sql
    #[doc = include_str!("../migrations/outbox_mysql.sql")]
    /// ```
    ///
    /// SQLite:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/outbox_sqlite.sql")]
    /// ```
    ///
    /// Times are milliseconds since the Unix epoch. `claimed_until` is the
    /// end of the lease of whoever delivers the row (0: claimable now);
    /// `attempts` counts relay claims. Every event inserts, updates and
    /// deletes a row of `earn_outbox`: on PostgreSQL leave autovacuum on
    /// for it, or dead rows make each claim slower.
    pub async fn install_outbox(&self) -> Result<(), Error> {
        crate::outbox::install(self).await
    }

    /// How many events wait in the outbox (operators: the backlog).
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// println!("{} events wait for delivery", db.outbox_backlog().await?);
    /// # Ok(()) }
    /// ```
    pub async fn outbox_backlog(&self) -> Result<u64, Error> {
        crate::outbox::backlog(self).await
    }

    /// The outbox rows a relay gave up on (see
    /// [`OutboxRelay::max_attempts`](crate::OutboxRelay::max_attempts)),
    /// oldest first, at most `limit`.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// for letter in db.outbox_dead_letters(100).await? {
    ///     println!("{} {} after {} claims: {}", letter.id, letter.name, letter.attempts, letter.reason);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn outbox_dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::OutboxDeadLetter>, Error> {
        crate::outbox::dead_letters(self, limit).await
    }

    /// Moves the dead letter `id` back into the outbox, claimable at once
    /// with its attempts reset, in one transaction (on PostgreSQL running
    /// relays wake for it). [`Error::NoDeadLetter`] if there is none with
    /// that id.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// // After fixing what made the handlers fail:
    /// for letter in db.outbox_dead_letters(100).await? {
    ///     if letter.event.is_some() {
    ///         db.requeue_outbox_dead_letter(&letter.id).await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn requeue_outbox_dead_letter(&self, id: &str) -> Result<(), Error> {
        crate::outbox::requeue_dead_letter(self, id).await
    }

    /// Deletes every outbox dead letter; returns how many there were.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// let purged = db.purge_outbox_dead_letters().await?;
    /// println!("purged {purged} dead letters");
    /// # Ok(()) }
    /// ```
    pub async fn purge_outbox_dead_letters(&self) -> Result<u64, Error> {
        crate::outbox::purge_dead_letters(self).await
    }

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
        crate::inbox::install(self).await
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
    pub async fn begin_once(
        &self,
        handler: &str,
        event: &earn_core::Event,
    ) -> Result<Option<Tx>, Error> {
        crate::inbox::begin_once(self, handler, event).await
    }

    pub(crate) fn bus_handle(&self) -> Option<EventBus> {
        self.bus.clone()
    }

    /// The bus model events go to.
    pub fn bus(&self) -> &EventBus {
        self.bus.as_ref().unwrap_or_else(|| EventBus::global())
    }

    /// The dialect of the database.
    pub fn dialect(&self) -> Dialect {
        match &self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Pool::MySql(_) => Dialect::MySql,
        }
    }

    pub(crate) async fn acquire(&self) -> Result<Conn, Error> {
        let acquired = match &self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => pool.acquire().await.map(Conn::Sqlite),
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => pool.acquire().await.map(Conn::Postgres),
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => pool.acquire().await.map(Conn::MySql),
        };
        acquired.map_err(|source| Error::Connection {
            operation: "acquire a connection",
            source: Box::new(source),
        })
    }

    /// Begins a transaction. See [`Tx`].
    pub async fn begin(&self) -> Result<Tx, Error> {
        Tx::begin_on(self.acquire().await?, self).await
    }

    /// Creates the model's table if it does not exist, with column types
    /// chosen for the backend. Meant for quick starts and tests; production
    /// schemas belong in migrations.
    pub async fn create_table<M: Model>(&self) -> Result<(), Error> {
        let mut conn = self.acquire().await?;
        dispatch!(&mut conn, |c, DB| {
            let sql = create_table_sql(
                M::INFO,
                <DB as crate::Backend>::DIALECT,
                &<M as Row<DB>>::column_types(),
            );
            <DB as crate::Backend>::run_ddl(c, sql).await
        })
        .map_err(|source| Error::Database {
            table: M::INFO.table.into(),
            operation: "create table",
            source: Box::new(source),
        })
    }

    /// Drops the model's table if it exists.
    pub async fn drop_table<M: Model>(&self) -> Result<(), Error> {
        let mut conn = self.acquire().await?;
        let table = M::INFO.quoted_table[self.dialect() as usize];
        dispatch!(&mut conn, |c, DB| {
            <DB as crate::Backend>::run_ddl(c, format!("DROP TABLE IF EXISTS {table}")).await
        })
        .map_err(|source| Error::Database {
            table: M::INFO.table.into(),
            operation: "drop table",
            source: Box::new(source),
        })
    }

    /// The SQLite pool, if this is a SQLite database.
    #[cfg(feature = "sqlite")]
    pub fn as_sqlite(&self) -> Option<&sqlx::SqlitePool> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            _ => None,
        }
    }

    /// The PostgreSQL pool, if this is a PostgreSQL database.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&sqlx::PgPool> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    /// The MySQL pool, if this is a MySQL / MariaDB database.
    #[cfg(feature = "mysql")]
    pub fn as_mysql(&self) -> Option<&sqlx::MySqlPool> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &self.pool {
            Pool::MySql(pool) => Some(pool),
            _ => None,
        }
    }

    /// Runs SQL that takes no parameters (DDL) outside any transaction.
    pub async fn execute_unprepared(&self, sql: &str) -> Result<(), Error> {
        let mut conn = self.acquire().await?;
        dispatch!(&mut conn, |c, DB| {
            <DB as crate::Backend>::run_ddl(c, sql.to_owned()).await
        })
        .map_err(|source| Error::Connection {
            operation: "execute",
            source: Box::new(source),
        })
    }
}

fn create_table_sql(
    info: &crate::model::ModelInfo,
    dialect: Dialect,
    types: &[ColumnType],
) -> String {
    let d = dialect as usize;
    let columns: Vec<String> = info
        .columns
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (column, ty))| {
            let name = column.quoted[d];
            if i != info.key_index {
                let null = if ty.nullable { "" } else { " NOT NULL" };
                return format!("{name} {}{null}", ty.sql_type);
            }
            match (info.auto_key, dialect) {
                // Only `INTEGER PRIMARY KEY` aliases SQLite's rowid.
                (true, Dialect::Sqlite) => format!("{name} INTEGER PRIMARY KEY"),
                (true, Dialect::Postgres) => {
                    format!(
                        "{name} {} GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                        ty.key_sql_type
                    )
                }
                (true, Dialect::MySql) => {
                    format!(
                        "{name} {} NOT NULL AUTO_INCREMENT PRIMARY KEY",
                        ty.key_sql_type
                    )
                }
                (false, _) => format!("{name} {} NOT NULL PRIMARY KEY", ty.key_sql_type),
            }
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        info.quoted_table[d],
        columns.join(", ")
    )
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Db {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Db {
            pool: Pool::Sqlite(pool),
            bus: None,
            outbox: None,
            sink: None,
        }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Db {
    fn from(pool: sqlx::PgPool) -> Self {
        Db {
            pool: Pool::Postgres(pool),
            bus: None,
            outbox: None,
            sink: None,
        }
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for Db {
    fn from(pool: sqlx::MySqlPool) -> Self {
        Db {
            pool: Pool::MySql(pool),
            bus: None,
            outbox: None,
            sink: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_removes_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }
}
