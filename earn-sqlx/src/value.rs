//! Values bound into queries built at run time, on whichever database the
//! `Db` turns out to be.

use std::any::Any;
use std::fmt::Debug;

use sqlx::error::BoxDynError;

use crate::backend::on_backend;
use crate::field::Field;

on_backend!(FieldOnSqlite, "sqlite", Field<sqlx::Sqlite>);
on_backend!(FieldOnPostgres, "postgres", Field<sqlx::Postgres>);
on_backend!(FieldOnMySql, "mysql", Field<sqlx::MySql>);

/// A value a query can bind on every enabled database: any [`Field`] type
/// (`i64`, `String`, `Option<T>`, `uuid::Uuid`, `time::OffsetDateTime`,
/// `rust_decimal::Decimal`, an enum or newtype with `#[derive(earn::Field)]`,
/// …).
///
/// Column filters take their values as `impl Into<V>` where `V` is the
/// column's type, so comparing a column with a value of another type does
/// not compile:
///
/// ```compile_fail
/// # use earn::prelude::*;
/// # #[derive(Debug, Clone, Model)] #[model(table = "users")]
/// # struct User { #[model(primary_key, auto)] id: Option<i64>, age: i64 }
/// let adults = User::query().filter(User::AGE.ge("eighteen")); // i64 column, &str value
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be bound in an earn query",
    note = "query values are model field types: integers, floats, `bool`, `String`, `Vec<u8>`, `Option<T>` of those, the date-time, decimal, UUID and JSON types of earn's features, or a type implementing `earn::Field` for every enabled database (`#[derive(earn::Field)]` on an enum or a newtype)"
)]
pub trait SqlValue: Any + Debug + Send + Sync {
    /// Binds the value into SQLite arguments.
    #[cfg(feature = "sqlite")]
    fn bind_sqlite(&self, args: &mut sqlx::sqlite::SqliteArguments) -> Result<(), BoxDynError>;
    /// Binds the value into PostgreSQL arguments.
    #[cfg(feature = "postgres")]
    fn bind_postgres(&self, args: &mut sqlx::postgres::PgArguments) -> Result<(), BoxDynError>;
    /// Binds the value into MySQL arguments.
    #[cfg(feature = "mysql")]
    fn bind_mysql(&self, args: &mut sqlx::mysql::MySqlArguments) -> Result<(), BoxDynError>;
}

/// A type a model field can have without `json`: a [`Field`] on every
/// enabled database (see its list of types, and `#[derive(earn::Field)]`
/// for enums and newtypes). Checked by `#[derive(Model)]` on each field's
/// type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a column",
    label = "no column type for `{Self}`",
    note = "mark the field `#[model(json)]` to store it as JSON (any serde type), `#[model(skip)]` to not store it, or, for an enum or a newtype of yours, add `earn::Field` to its derives; columns hold integers, floats, bool, String, Vec<u8>, Option of those, and with earn's features uuid::Uuid, chrono and time date-times, rust_decimal::Decimal and serde_json::Value (type aliases of them too)"
)]
pub trait Storable {}

#[diagnostic::do_not_recommend]
impl<T: FieldOnSqlite + FieldOnPostgres + FieldOnMySql> Storable for T {}

/// Asserts at compile time that `T` is [`Storable`]. Called by
/// `#[derive(Model)]`, spanned at a field's type.
#[doc(hidden)]
pub const fn storable<T: Storable + ?Sized>() {}

impl<T> SqlValue for T
where
    T: FieldOnSqlite + FieldOnPostgres + FieldOnMySql + Any + Debug + Send + Sync,
{
    #[cfg(feature = "sqlite")]
    fn bind_sqlite(&self, args: &mut sqlx::sqlite::SqliteArguments) -> Result<(), BoxDynError> {
        Field::<sqlx::Sqlite>::bind(self, args)
    }
    #[cfg(feature = "postgres")]
    fn bind_postgres(&self, args: &mut sqlx::postgres::PgArguments) -> Result<(), BoxDynError> {
        Field::<sqlx::Postgres>::bind(self, args)
    }
    #[cfg(feature = "mysql")]
    fn bind_mysql(&self, args: &mut sqlx::mysql::MySqlArguments) -> Result<(), BoxDynError> {
        Field::<sqlx::MySql>::bind(self, args)
    }
}
