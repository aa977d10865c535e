//! How each supported Rust type is stored in each database.

use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Row as _, ValueRef as _};

/// A Rust type that can be a model field on the database `DB`.
///
/// Implemented for the integer and float types, `bool`, `String`,
/// `Vec<u8>`, `Option<T>` of those, and behind features: `uuid::Uuid`
/// (`uuid`), `chrono` date-times (`chrono`), `time::OffsetDateTime`,
/// `time::PrimitiveDateTime` and `time::Date` (`time`),
/// `rust_decimal::Decimal` (`decimal`) and `serde_json::Value` (`json`).
/// Types a database has no native column for are widened (PostgreSQL
/// stores `u32` as `BIGINT`, SQLite a `Decimal` as `TEXT`); a value the
/// column cannot hold (a `u64` above `i64::MAX` on PostgreSQL or SQLite) is
/// an error at bind time, never a silent wrap.
///
/// `#[derive(earn::Field)]` implements it for your own types: an enum of
/// unit variants (stored as text or as an integer) and a newtype
/// (`struct Email(String);`, stored as what it wraps).
pub trait Field<DB: Database>: Sized {
    /// The column type in `CREATE TABLE`.
    const SQL_TYPE: &'static str;
    /// The column type when the field is the primary key.
    const KEY_SQL_TYPE: &'static str = Self::SQL_TYPE;
    /// Whether the column accepts `NULL`.
    const NULLABLE: bool = false;

    /// Adds the value to the statement's arguments.
    fn bind(&self, args: &mut DB::Arguments) -> Result<(), BoxDynError>;

    /// Adds a typed `NULL`.
    fn bind_null(args: &mut DB::Arguments) -> Result<(), BoxDynError>;

    /// Reads the value at `index` of a row.
    fn decode(row: &DB::Row, index: usize) -> Result<Self, sqlx::Error>;
}

impl<DB: Database, T: Field<DB>> Field<DB> for Option<T>
where
    usize: sqlx::ColumnIndex<DB::Row>,
{
    const SQL_TYPE: &'static str = T::SQL_TYPE;
    const KEY_SQL_TYPE: &'static str = T::KEY_SQL_TYPE;
    const NULLABLE: bool = true;

    fn bind(&self, args: &mut DB::Arguments) -> Result<(), BoxDynError> {
        match self {
            Some(value) => value.bind(args),
            None => T::bind_null(args),
        }
    }

    fn bind_null(args: &mut DB::Arguments) -> Result<(), BoxDynError> {
        T::bind_null(args)
    }

    fn decode(row: &DB::Row, index: usize) -> Result<Self, sqlx::Error> {
        if row.try_get_raw(index)?.is_null() {
            Ok(None)
        } else {
            T::decode(row, index).map(Some)
        }
    }
}

/// Refuses a `NULL` for a field that is not an `Option`: SQLite's driver
/// would read it as `""`, `0` or `false`.
#[inline]
fn not_null<R: sqlx::Row>(row: &R, index: usize) -> Result<(), sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
{
    if row.try_get_raw(index)?.is_null() {
        return Err(sqlx::Error::ColumnDecode {
            index: index.to_string(),
            source: Box::new(sqlx::error::UnexpectedNullError),
        });
    }
    Ok(())
}

/// The error of a stored name that no variant of a `#[derive(Field)]`
/// enum has: it names the type, the value, and the names it knows.
#[doc(hidden)]
pub fn unknown_name(index: usize, ty: &str, stored: &str, expected: &[&str]) -> sqlx::Error {
    let expected: Vec<String> = expected.iter().map(|name| format!("{name:?}")).collect();
    unknown(index, ty, &format!("{stored:?}"), &expected.join(", "))
}

/// The error of a stored integer that is the discriminant of no variant of
/// a `#[derive(Field)]` enum: it names the type, the value, and the
/// discriminants it knows.
#[doc(hidden)]
pub fn unknown_discriminant(
    index: usize,
    ty: &str,
    stored: i64,
    expected: &[(&str, i64)],
) -> sqlx::Error {
    let expected: Vec<String> = expected
        .iter()
        .map(|(variant, value)| format!("{value} for {variant}"))
        .collect();
    unknown(index, ty, &stored.to_string(), &expected.join(", "))
}

fn unknown(index: usize, ty: &str, stored: &str, expected: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: format!("{ty} has no variant stored as {stored} (expected {expected})").into(),
    }
}

/// Stored as itself.
macro_rules! native {
    ($db:ty: $($ty:ty => $sql:literal $(key $key:literal)?),* $(,)?) => {$(
        impl Field<$db> for $ty {
            const SQL_TYPE: &'static str = $sql;
            $(const KEY_SQL_TYPE: &'static str = $key;)?

            #[inline]
            fn bind(&self, args: &mut <$db as Database>::Arguments) -> Result<(), BoxDynError> {
                args.add(self)
            }

            fn bind_null(args: &mut <$db as Database>::Arguments) -> Result<(), BoxDynError> {
                args.add(None::<$ty>)
            }

            #[inline]
            fn decode(row: &<$db as Database>::Row, index: usize) -> Result<Self, sqlx::Error> {
                not_null(row, index)?;
                row.try_get(index)
            }
        }
    )*};
}

/// `serde_json::Value` in the column `#[model(json)]` fields have.
#[cfg(feature = "json")]
macro_rules! json_value {
    ($db:ty) => {
        impl Field<$db> for serde_json::Value {
            const SQL_TYPE: &'static str = <$db as crate::Backend>::JSON_SQL_TYPE;

            fn bind(&self, args: &mut <$db as Database>::Arguments) -> Result<(), BoxDynError> {
                <$db as crate::Backend>::bind_json(args, self)
            }

            fn bind_null(args: &mut <$db as Database>::Arguments) -> Result<(), BoxDynError> {
                args.add(None::<sqlx::types::Json<serde_json::Value>>)
            }

            fn decode(row: &<$db as Database>::Row, index: usize) -> Result<Self, sqlx::Error> {
                // A SQL `NULL`, unlike the JSON `null`, needs an `Option`.
                not_null(row, index)?;
                <$db as crate::Backend>::decode_json(row, index)
            }
        }
    };
}

/// Stored as a wider or signed type, with a checked conversion both ways.
#[allow(unused_macros)] // MySQL has every integer type natively
macro_rules! widened {
    ($db:ty: $($ty:ty as $stored:ty => $sql:literal),* $(,)?) => {$(
        impl Field<$db> for $ty {
            const SQL_TYPE: &'static str = $sql;

            fn bind(&self, args: &mut <$db as Database>::Arguments) -> Result<(), BoxDynError> {
                let stored = <$stored>::try_from(*self).map_err(|_| {
                    format!(
                        "{} value {} does not fit the column type {}",
                        stringify!($ty), self, $sql
                    )
                })?;
                args.add(stored)
            }

            fn bind_null(args: &mut <$db as Database>::Arguments) -> Result<(), BoxDynError> {
                args.add(None::<$stored>)
            }

            fn decode(row: &<$db as Database>::Row, index: usize) -> Result<Self, sqlx::Error> {
                not_null(row, index)?;
                let stored: $stored = row.try_get(index)?;
                <$ty>::try_from(stored).map_err(|_| sqlx::Error::ColumnDecode {
                    index: index.to_string(),
                    source: format!(
                        "stored value {} does not fit {}", stored, stringify!($ty)
                    ).into(),
                })
            }
        }
    )*};
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use sqlx::Sqlite;

    native!(Sqlite:
        i8 => "INTEGER", i16 => "INTEGER", i32 => "INTEGER", i64 => "INTEGER",
        u8 => "INTEGER", u16 => "INTEGER", u32 => "INTEGER",
        f32 => "REAL", f64 => "REAL", bool => "BOOLEAN",
        String => "TEXT", Vec<u8> => "BLOB",
    );
    widened!(Sqlite: u64 as i64 => "INTEGER");
    #[cfg(feature = "uuid")]
    native!(Sqlite: uuid::Uuid => "BLOB");
    #[cfg(feature = "chrono")]
    native!(Sqlite:
        chrono::DateTime<chrono::Utc> => "DATETIME",
        chrono::NaiveDateTime => "DATETIME",
        chrono::NaiveDate => "DATE",
    );
    #[cfg(feature = "time")]
    native!(Sqlite:
        time::OffsetDateTime => "DATETIME",
        time::PrimitiveDateTime => "DATETIME",
        time::Date => "DATE",
    );
    #[cfg(feature = "json")]
    json_value!(Sqlite);

    /// sqlx has no `Decimal` for SQLite, and a `NUMERIC` or `REAL` column
    /// would keep it as a float: stored as its text, normalized
    /// (`1.50` as `1.5`) so that equal values compare equal in SQL, and
    /// parsed back with a check.
    #[cfg(feature = "decimal")]
    impl Field<Sqlite> for rust_decimal::Decimal {
        const SQL_TYPE: &'static str = "TEXT";

        fn bind(&self, args: &mut <Sqlite as Database>::Arguments) -> Result<(), BoxDynError> {
            args.add(self.normalize().to_string())
        }

        fn bind_null(args: &mut <Sqlite as Database>::Arguments) -> Result<(), BoxDynError> {
            args.add(None::<String>)
        }

        fn decode(row: &<Sqlite as Database>::Row, index: usize) -> Result<Self, sqlx::Error> {
            not_null(row, index)?;
            let text: &str = row.try_get(index)?;
            text.parse().map_err(|error| sqlx::Error::ColumnDecode {
                index: index.to_string(),
                source: format!("stored text {text:?} is not a decimal: {error}").into(),
            })
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use sqlx::Postgres;

    native!(Postgres:
        i16 => "SMALLINT", i32 => "INTEGER", i64 => "BIGINT",
        f32 => "REAL", f64 => "DOUBLE PRECISION", bool => "BOOLEAN",
        String => "TEXT", Vec<u8> => "BYTEA",
    );
    widened!(Postgres:
        i8 as i16 => "SMALLINT", u8 as i16 => "SMALLINT", u16 as i32 => "INTEGER",
        u32 as i64 => "BIGINT", u64 as i64 => "BIGINT",
    );
    #[cfg(feature = "uuid")]
    native!(Postgres: uuid::Uuid => "UUID");
    #[cfg(feature = "chrono")]
    native!(Postgres:
        chrono::DateTime<chrono::Utc> => "TIMESTAMPTZ",
        chrono::NaiveDateTime => "TIMESTAMP",
        chrono::NaiveDate => "DATE",
    );
    #[cfg(feature = "time")]
    native!(Postgres:
        time::OffsetDateTime => "TIMESTAMPTZ",
        time::PrimitiveDateTime => "TIMESTAMP",
        time::Date => "DATE",
    );
    // Without a precision NUMERIC keeps every `Decimal` as written, scale
    // included.
    #[cfg(feature = "decimal")]
    native!(Postgres: rust_decimal::Decimal => "NUMERIC");
    #[cfg(feature = "json")]
    json_value!(Postgres);
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use sqlx::MySql;

    native!(MySql:
        i8 => "TINYINT", i16 => "SMALLINT", i32 => "INT", i64 => "BIGINT",
        u8 => "TINYINT UNSIGNED", u16 => "SMALLINT UNSIGNED", u32 => "INT UNSIGNED",
        u64 => "BIGINT UNSIGNED",
        f32 => "FLOAT", f64 => "DOUBLE", bool => "BOOLEAN",
        // TEXT and BLOB columns cannot be keys without a prefix length.
        String => "TEXT" key "VARCHAR(255)", Vec<u8> => "LONGBLOB" key "VARBINARY(255)",
    );
    #[cfg(feature = "uuid")]
    native!(MySql: uuid::Uuid => "BINARY(16)");
    #[cfg(feature = "chrono")]
    native!(MySql:
        chrono::DateTime<chrono::Utc> => "DATETIME(6)",
        chrono::NaiveDateTime => "DATETIME(6)",
        chrono::NaiveDate => "DATE",
    );
    #[cfg(feature = "time")]
    native!(MySql:
        time::OffsetDateTime => "DATETIME(6)",
        time::PrimitiveDateTime => "DATETIME(6)",
        time::Date => "DATE",
    );
    /// A `Decimal` has at most 29 digits before the point and 28 after
    /// it: 65 digits (MySQL's maximum) with 28 after the point hold every
    /// one exactly. The column pads to 28 places (`1.5000…`); read back,
    /// the padding is dropped (`1.5`), as on SQLite: the scale a value was
    /// written with is kept by PostgreSQL only.
    #[cfg(feature = "decimal")]
    impl Field<MySql> for rust_decimal::Decimal {
        const SQL_TYPE: &'static str = "DECIMAL(65,28)";

        #[inline]
        fn bind(&self, args: &mut <MySql as Database>::Arguments) -> Result<(), BoxDynError> {
            args.add(self)
        }

        fn bind_null(args: &mut <MySql as Database>::Arguments) -> Result<(), BoxDynError> {
            args.add(None::<Self>)
        }

        fn decode(row: &<MySql as Database>::Row, index: usize) -> Result<Self, sqlx::Error> {
            not_null(row, index)?;
            row.try_get::<Self, _>(index).map(|value| value.normalize())
        }
    }
    #[cfg(feature = "json")]
    json_value!(MySql);
}
