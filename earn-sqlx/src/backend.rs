//! The three databases behind one trait, so persistence code is written once.

use std::future::Future;

use futures_core::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Database;
use sqlx::error::BoxDynError;

use crate::value::SqlValue;

/// Which SQL dialect a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite: `"quoted"` identifiers, `?` placeholders, `RETURNING`.
    Sqlite = 0,
    /// PostgreSQL: `"quoted"` identifiers, `$n` placeholders, `RETURNING`.
    Postgres = 1,
    /// MySQL / MariaDB: `` `quoted` `` identifiers, `?` placeholders,
    /// `LAST_INSERT_ID()`.
    MySql = 2,
}

impl Dialect {
    /// Quotes one identifier (no `schema.` part): backticks, or double
    /// quotes on PostgreSQL, doubled inside.
    pub(crate) fn quote(self, name: &str) -> String {
        let q = if self == Dialect::Postgres { '"' } else { '`' };
        format!("{q}{}{q}", name.replace(q, &format!("{q}{q}")))
    }

    /// The name used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL",
        }
    }
}

/// A sqlx database earn can persist models to. Implemented for the drivers
/// enabled by the `sqlite`, `postgres` and `mysql` features.
pub trait Backend: Database {
    /// The dialect of generated statements.
    const DIALECT: Dialect;
    /// Column type of `#[model(json)]` fields.
    const JSON_SQL_TYPE: &'static str;

    /// Runs a statement, returning rows affected and the generated id (MySQL).
    fn run<'c>(
        conn: &'c mut Self::Connection,
        sql: &'static str,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Done, sqlx::Error>> + Send + 'c;

    /// [`run`](Backend::run) of a statement built at run time from
    /// identifiers and placeholders (never from values), prepared and
    /// cached like the others.
    fn run_built<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Done, sqlx::Error>> + Send + 'c;

    /// Runs a query returning at most one row.
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: &'static str,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c;

    /// Runs a query returning every row.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: &'static str,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;

    /// [`fetch_all`](Backend::fetch_all) of a statement built at run time
    /// from identifiers and placeholders (never from values).
    fn fetch_all_built<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;

    /// [`fetch_optional`](Backend::fetch_optional) of a statement built at
    /// run time.
    fn fetch_optional_built<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c;

    /// The rows of a statement built at run time, as they arrive.
    fn fetch_built<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;

    /// Binds a query value.
    fn bind_value(value: &dyn SqlValue, args: &mut Self::Arguments) -> Result<(), BoxDynError>;

    /// Runs a statement built at run time (DDL only; never with user values).
    fn run_ddl<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// Binds a value as JSON.
    fn bind_json<T: Serialize>(args: &mut Self::Arguments, value: &T) -> Result<(), BoxDynError>;

    /// Decodes a JSON column.
    fn decode_json<T: DeserializeOwned>(row: &Self::Row, index: usize) -> Result<T, sqlx::Error>;

    /// Binds text without copying it into a `String` first: the stored
    /// name of a `#[derive(Field)]` enum's variant.
    fn bind_str(args: &mut Self::Arguments, value: &str) -> Result<(), BoxDynError>;

    /// Reads a text column without copying it; `NULL` is an error.
    fn decode_str(row: &Self::Row, index: usize) -> Result<&str, sqlx::Error>;
}

/// Declares `$name`: the bound `$bound` when the backend's `$feature` is on,
/// no bound at all otherwise, so code generic over "every enabled backend"
/// is written once.
macro_rules! on_backend {
    ($name:ident, $feature:literal, $bound:path) => {
        #[doc = concat!("[`", stringify!($bound), "`] when the `", $feature, "` feature is on, nothing otherwise.")]
        #[cfg(feature = $feature)]
        pub trait $name: $bound {}
        #[cfg(feature = $feature)]
        impl<T: $bound> $name for T {}
        #[doc = concat!("[`", stringify!($bound), "`] when the `", $feature, "` feature is on, nothing otherwise.")]
        #[cfg(not(feature = $feature))]
        pub trait $name {}
        #[cfg(not(feature = $feature))]
        impl<T> $name for T {}
    };
}
pub(crate) use on_backend;

/// What a statement did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// The id generated by an `AUTO_INCREMENT` column (MySQL only).
    pub last_insert_id: Option<u64>,
}

macro_rules! backend {
    ($feature:literal, $db:ty, $dialect:expr, $json:literal, $bind:ident, $last_id:expr) => {
        #[cfg(feature = $feature)]
        impl Backend for $db {
            const DIALECT: Dialect = $dialect;
            const JSON_SQL_TYPE: &'static str = $json;

            fn run<'c>(
                conn: &'c mut Self::Connection,
                sql: &'static str,
                args: Self::Arguments,
            ) -> impl Future<Output = Result<Done, sqlx::Error>> + Send + 'c {
                async move {
                    let result = sqlx::query_with(sql, args).execute(&mut *conn).await?;
                    let last_id: fn(&<$db as Database>::QueryResult) -> Option<u64> = $last_id;
                    Ok(Done {
                        rows_affected: result.rows_affected(),
                        last_insert_id: last_id(&result),
                    })
                }
            }

            fn run_built<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
                args: Self::Arguments,
            ) -> impl Future<Output = Result<Done, sqlx::Error>> + Send + 'c {
                async move {
                    let result = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                        .execute(&mut *conn)
                        .await?;
                    let last_id: fn(&<$db as Database>::QueryResult) -> Option<u64> = $last_id;
                    Ok(Done {
                        rows_affected: result.rows_affected(),
                        last_insert_id: last_id(&result),
                    })
                }
            }

            fn fetch_optional<'c>(
                conn: &'c mut Self::Connection,
                sql: &'static str,
                args: Self::Arguments,
            ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c {
                sqlx::query_with(sql, args).fetch_optional(&mut *conn)
            }

            fn fetch_all<'c>(
                conn: &'c mut Self::Connection,
                sql: &'static str,
                args: Self::Arguments,
            ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c {
                sqlx::query_with(sql, args).fetch_all(&mut *conn)
            }

            fn fetch_all_built<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
                args: Self::Arguments,
            ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c {
                sqlx::query_with(sqlx::AssertSqlSafe(sql), args).fetch_all(&mut *conn)
            }

            fn fetch_optional_built<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
                args: Self::Arguments,
            ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c {
                sqlx::query_with(sqlx::AssertSqlSafe(sql), args).fetch_optional(&mut *conn)
            }

            fn fetch_built<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
                args: Self::Arguments,
            ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>> {
                sqlx::query_with(sqlx::AssertSqlSafe(sql), args).fetch(&mut *conn)
            }

            #[inline]
            fn bind_value(
                value: &dyn SqlValue,
                args: &mut Self::Arguments,
            ) -> Result<(), BoxDynError> {
                value.$bind(args)
            }

            fn run_ddl<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
            ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c {
                async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                }
            }

            fn bind_json<T: Serialize>(
                args: &mut Self::Arguments,
                value: &T,
            ) -> Result<(), BoxDynError> {
                sqlx::Arguments::add(args, sqlx::types::Json(value))
            }

            fn decode_json<T: DeserializeOwned>(
                row: &Self::Row,
                index: usize,
            ) -> Result<T, sqlx::Error> {
                let sqlx::types::Json(value) = sqlx::Row::try_get(row, index)?;
                Ok(value)
            }

            #[inline]
            fn bind_str(args: &mut Self::Arguments, value: &str) -> Result<(), BoxDynError> {
                sqlx::Arguments::add(args, value)
            }

            #[inline]
            fn decode_str(row: &Self::Row, index: usize) -> Result<&str, sqlx::Error> {
                // Through `Option`: SQLite's driver reads a `NULL` as `""`.
                sqlx::Row::try_get::<Option<&str>, _>(row, index)?.ok_or_else(|| {
                    sqlx::Error::ColumnDecode {
                        index: index.to_string(),
                        source: Box::new(sqlx::error::UnexpectedNullError),
                    }
                })
            }
        }
    };
}

backend!(
    "sqlite",
    sqlx::Sqlite,
    Dialect::Sqlite,
    "TEXT",
    bind_sqlite,
    |_| None
);
backend!(
    "postgres",
    sqlx::Postgres,
    Dialect::Postgres,
    "JSONB",
    bind_postgres,
    |_| None
);
backend!(
    "mysql",
    sqlx::MySql,
    Dialect::MySql,
    "JSON",
    bind_mysql,
    |r| Some(r.last_insert_id())
);
