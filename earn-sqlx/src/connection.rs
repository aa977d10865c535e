//! The enabled backends behind two enums, a pool and one of its
//! connections, and [`with_backend!`], which runs code written once against
//! the concrete sqlx connection of either.

use earn_core::Error;
use sqlx::Database;
use sqlx::pool::PoolConnection;
use sqlx_core::transaction::TransactionManager;

use crate::backend::Dialect;

/// A connection pool of one of the enabled backends.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// A pooled connection of one of the enabled backends.
pub(crate) enum Conn {
    #[cfg(feature = "sqlite")]
    Sqlite(PoolConnection<sqlx::Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    MySql(PoolConnection<sqlx::MySql>),
}

/// Runs `$body` with `$c` bound to the concrete `&mut DB::Connection` of a
/// [`Conn`] and `$DB` to its backend type.
macro_rules! with_backend {
    ($conn:expr, |$c:ident, $DB:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "sqlite")]
            $crate::connection::Conn::Sqlite(pooled) => {
                #[allow(dead_code)]
                type $DB = sqlx::Sqlite;
                let $c: &mut sqlx::SqliteConnection = &mut *pooled;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::connection::Conn::Postgres(pooled) => {
                #[allow(dead_code)]
                type $DB = sqlx::Postgres;
                let $c: &mut sqlx::PgConnection = &mut *pooled;
                $body
            }
            #[cfg(feature = "mysql")]
            $crate::connection::Conn::MySql(pooled) => {
                #[allow(dead_code)]
                type $DB = sqlx::MySql;
                let $c: &mut sqlx::MySqlConnection = &mut *pooled;
                $body
            }
        }
    };
}
pub(crate) use with_backend;

impl Pool {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Pool::MySql(_) => Dialect::MySql,
        }
    }

    pub(crate) async fn acquire(&self) -> Result<Conn, Error> {
        let acquired = match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => pool.acquire().await.map(Conn::Sqlite),
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => pool.acquire().await.map(Conn::Postgres),
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => pool.acquire().await.map(Conn::MySql),
        };
        acquired.map_err(connection_error("acquire a connection"))
    }

    /// A transaction of earn's own bookkeeping (no hooks, no events).
    pub(crate) async fn begin(&self) -> Result<PlainTx, Error> {
        PlainTx::begin(self.acquire().await?).await
    }

    /// [`begin`](Pool::begin), taking no gap locks on MySQL (`READ
    /// COMMITTED` for this one transaction): the outbox's own bookkeeping
    /// must never block or deadlock the inserts of the application's
    /// commits.
    pub(crate) async fn begin_without_gap_locks(&self) -> Result<PlainTx, Error> {
        #[cfg_attr(not(feature = "mysql"), allow(unused_mut))]
        let mut conn = self.acquire().await?;
        #[allow(irrefutable_let_patterns, reason = "the only backend of some builds")]
        #[cfg(feature = "mysql")]
        if let Conn::MySql(c) = &mut conn {
            // Applies to the next transaction of this session only.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .execute(&mut **c)
                .await
                .map_err(connection_error("set the isolation level"))?;
        }
        PlainTx::begin(conn).await
    }
}

/// A connection inside a transaction of earn's own bookkeeping: no hooks,
/// no events. Rolled back if dropped before [`commit`](PlainTx::commit).
pub(crate) struct PlainTx {
    pub(crate) conn: Conn,
    open: bool,
}

impl PlainTx {
    async fn begin(mut conn: Conn) -> Result<PlainTx, Error> {
        conn.begin().await.map_err(connection_error("begin"))?;
        Ok(PlainTx { conn, open: true })
    }

    pub(crate) async fn commit(mut self) -> Result<(), Error> {
        self.open = false;
        self.conn.commit().await.map_err(connection_error("commit"))
    }

    pub(crate) async fn rollback(mut self) -> Result<(), Error> {
        self.open = false;
        self.conn
            .rollback()
            .await
            .map_err(connection_error("rollback"))
    }
}

impl Drop for PlainTx {
    fn drop(&mut self) {
        if self.open {
            // sqlx runs the queued ROLLBACK before the connection is used
            // again or goes back to the pool.
            self.conn.start_rollback();
        }
    }
}

impl Conn {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Conn::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Conn::MySql(_) => Dialect::MySql,
        }
    }

    /// `BEGIN`, or `SAVEPOINT` inside a transaction.
    pub(crate) async fn begin(&mut self) -> Result<(), sqlx::Error> {
        with_backend!(self, |c, DB| {
            <DB as Database>::TransactionManager::begin(c, None).await
        })
    }

    /// `COMMIT`, or `RELEASE SAVEPOINT` inside a savepoint.
    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        with_backend!(self, |c, DB| {
            <DB as Database>::TransactionManager::commit(c).await
        })
    }

    /// `ROLLBACK`, or `ROLLBACK TO SAVEPOINT` inside a savepoint.
    pub(crate) async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        with_backend!(self, |c, DB| {
            <DB as Database>::TransactionManager::rollback(c).await
        })
    }

    /// Queues the rollback of the innermost level, for a destructor: sqlx
    /// runs it before the connection is used again or returned to the pool.
    pub(crate) fn start_rollback(&mut self) {
        with_backend!(self, |c, DB| {
            <DB as Database>::TransactionManager::start_rollback(c)
        });
    }

    /// Runs SQL that takes no parameters (DDL, `SET`, …).
    pub(crate) async fn execute_unprepared(&mut self, sql: &str) -> Result<(), Error> {
        with_backend!(self, |c, DB| {
            <DB as crate::Backend>::run_ddl(c, sql.to_owned()).await
        })
        .map_err(connection_error("execute"))
    }
}

/// What earn learns about the server of a pool, once, on first need.
#[derive(Debug, Default)]
pub(crate) struct Server {
    delete_returning: std::sync::OnceLock<bool>,
}

impl Server {
    /// Whether `DELETE … RETURNING` works: on SQLite, PostgreSQL and
    /// MariaDB, not on MySQL.
    pub(crate) async fn deletes_returning(&self, conn: &mut Conn) -> Result<bool, Error> {
        if let Some(&known) = self.delete_returning.get() {
            return Ok(known);
        }
        let known = match conn {
            #[cfg(feature = "mysql")]
            Conn::MySql(c) => {
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&mut **c)
                    .await
                    .map_err(connection_error("read the server version"))?;
                version.contains("MariaDB")
            }
            #[allow(unreachable_patterns)]
            _ => true,
        };
        let _ = self.delete_returning.set(known);
        Ok(known)
    }
}

/// The error of a connection- or transaction-level `operation`.
pub(crate) fn connection_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Connection {
        operation,
        source: Box::new(source),
    }
}

/// A failed statement on one of earn's own tables; a table that is not
/// there is [`Error::MissingTable`] with `fix`, which says how to create it.
pub(crate) fn table_error(
    table: &'static str,
    operation: &'static str,
    fix: &'static str,
) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| {
        let missing = match &source {
            sqlx::Error::Database(error) => {
                matches!(error.code().as_deref(), Some("42P01" | "42S02"))
                    || error.message().starts_with("no such table")
            }
            _ => false,
        };
        if missing {
            return Error::MissingTable { table, fix };
        }
        Error::Database {
            table: table.into(),
            operation,
            source: Box::new(source),
        }
    }
}
