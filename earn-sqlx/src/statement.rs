//! The statements of a model's reads and writes, run on one backend: no
//! hooks here, only SQL and its errors.

use std::fmt::Write as _;

use earn_core::{Error, Operation};

use crate::backend::{Backend, Dialect};
use crate::connection::with_backend;
use crate::model::{Entity, Model, ModelInfo, Row};
use crate::tx::Tx;

pub(crate) fn db_error<M: Entity>(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database {
        table: M::INFO.table.into(),
        operation,
        source: Box::new(source),
    }
}

pub(crate) fn not_found<M: Entity>(key: &M::Key, operation: Operation) -> Error {
    Error::NotFound {
        model: M::INFO.name,
        table: M::INFO.table,
        key: format!("{key:?}"),
        operation,
    }
}

fn missing_key<M: Entity>(operation: Operation) -> Error {
    Error::MissingKey {
        model: M::INFO.name,
        operation,
    }
}

/// `INSERT`; sets an `auto` key read back.
pub(crate) async fn insert<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    let key = with_backend!(&mut tx.conn, |c, DB| insert_on::<DB, M>(c, model).await)
        .map_err(db_error::<M>("insert"))?;
    if M::INFO.auto_key {
        model.set_key(key);
    }
    Ok(())
}

/// `UPDATE` of every column.
pub(crate) async fn update<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    let affected = with_backend!(&mut tx.conn, |c, DB| update_on::<DB, M>(c, model).await)
        .map_err(db_error::<M>("update"))?;
    updated(tx, model, affected, Operation::Update).await
}

/// `UPDATE` of the columns at `columns` (and the version), nothing else.
pub(crate) async fn update_columns<M: Model>(
    tx: &mut Tx,
    model: &mut M,
    columns: &[usize],
) -> Result<(), Error> {
    let sql = update_columns_sql(M::INFO, tx.dialect(), columns);
    let affected = with_backend!(&mut tx.conn, |c, DB| {
        update_columns_on::<DB, M>(c, model, sql, columns).await
    })
    .map_err(db_error::<M>("update"))?;
    updated(tx, model, affected, Operation::Update).await
}

/// After an `UPDATE` or `DELETE` of `affected` rows: no row is
/// [`Error::NotFound`], or [`Error::Stale`] when a row with another version
/// is there; a versioned model that was updated gets its next version.
async fn updated<M: Model>(
    tx: &mut Tx,
    model: &mut M,
    affected: u64,
    operation: Operation,
) -> Result<(), Error> {
    let key = model.key().ok_or(missing_key::<M>(operation))?;
    if affected == 0 {
        return Err(no_row_written(tx, model, &key, operation).await);
    }
    if operation == Operation::Update
        && let Some(version) = model.version()
    {
        model.set_version(version + 1);
    }
    Ok(())
}

/// The error of a write of `model` over `row` holding another version.
pub(crate) fn stale<M: Entity>(model: &M, row: &M, operation: Operation) -> Error {
    Error::Stale {
        model: M::INFO.name,
        table: M::INFO.table,
        key: model.key().map(|k| format!("{k:?}")).unwrap_or_default(),
        operation,
        expected: model.version().unwrap_or_default(),
        found: row.version().unwrap_or_default(),
    }
}

/// `DELETE` by key (and version).
pub(crate) async fn delete<M: Model>(tx: &mut Tx, model: &M) -> Result<(), Error> {
    let key = model.key().ok_or(missing_key::<M>(Operation::Delete))?;
    let affected = with_backend!(&mut tx.conn, |c, DB| delete_on::<DB, M>(c, model, &key)
        .await)
    .map_err(db_error::<M>("delete"))?;
    if affected == 0 {
        return Err(no_row_written(tx, model, &key, Operation::Delete).await);
    }
    Ok(())
}

/// Why an `UPDATE` or `DELETE` by key touched no row: the row holds
/// another version ([`Error::Stale`]), or there is none.
async fn no_row_written<M: Model>(
    tx: &mut Tx,
    model: &M,
    key: &M::Key,
    operation: Operation,
) -> Error {
    match find_row::<M>(tx, key, false).await {
        Ok(Some(row)) if M::INFO.version_index.is_some() => stale(model, &row, operation),
        Ok(_) => not_found::<M>(key, operation),
        Err(error) => error,
    }
}

/// Reads a row without hooks, locked with `FOR UPDATE` where asked.
pub(crate) async fn find_row<M: Model>(
    tx: &mut Tx,
    key: &M::Key,
    for_update: bool,
) -> Result<Option<M>, Error> {
    with_backend!(&mut tx.conn, |c, DB| find_on::<DB, M>(c, key, for_update)
        .await)
    .map_err(db_error::<M>("select"))
}

/// `UPDATE table SET a = ?, b = ?[, version = ?] WHERE key = ?[ AND version = ?]`.
fn update_columns_sql(info: &ModelInfo, dialect: Dialect, columns: &[usize]) -> String {
    let d = dialect as usize;
    let mut n = 0;
    let mut next = move || {
        n += 1;
        match dialect {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite | Dialect::MySql => "?".to_owned(),
        }
    };
    let mut sql = format!("UPDATE {} SET ", info.quoted_table[d]);
    let version = info.version_index.map(|i| info.columns[i].quoted[d]);
    let sets = columns
        .iter()
        .map(|&i| info.columns[i].quoted[d])
        .chain(version);
    for (i, column) in sets.enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{separator}{column} = {}", next());
    }
    let key = info.columns[info.key_index].quoted[d];
    let _ = write!(sql, " WHERE {key} = {}", next());
    if let Some(version) = version {
        let _ = write!(sql, " AND {version} = {}", next());
    }
    sql
}

async fn insert_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    model: &M,
) -> Result<Option<M::Key>, sqlx::Error> {
    let sql = M::INFO.sql(DB::DIALECT).insert;
    let mut args = DB::Arguments::default();
    model.bind_insert(&mut args).map_err(sqlx::Error::Encode)?;
    if !M::INFO.auto_key {
        DB::run(c, sql, args).await?;
        return Ok(None);
    }
    if DB::DIALECT == Dialect::MySql {
        let done = DB::run(c, sql, args).await?;
        return Ok(done.last_insert_id.and_then(M::key_from_insert_id));
    }
    let row = DB::fetch_optional(c, sql, args)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    M::decode_key(&row).map(Some)
}

async fn update_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    model: &M,
) -> Result<u64, sqlx::Error> {
    let mut args = DB::Arguments::default();
    model.bind_update(&mut args).map_err(sqlx::Error::Encode)?;
    Ok(DB::run(c, M::INFO.sql(DB::DIALECT).update, args)
        .await?
        .rows_affected)
}

async fn update_columns_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    model: &M,
    sql: String,
    columns: &[usize],
) -> Result<u64, sqlx::Error> {
    let mut args = DB::Arguments::default();
    let bound: Result<(), sqlx::error::BoxDynError> = (|| {
        for &column in columns {
            model.bind_column(column, &mut args)?;
        }
        model.bind_version(&mut args, true)?;
        let key = model.key().ok_or("the model has no key")?;
        M::bind_key(&key, &mut args)?;
        model.bind_version(&mut args, false)
    })();
    bound.map_err(sqlx::Error::Encode)?;
    // Only the column list varies, with the values bound: prepared and
    // cached by sqlx like any statement.
    Ok(DB::run_built(c, sql, args).await?.rows_affected)
}

async fn delete_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    model: &M,
    key: &M::Key,
) -> Result<u64, sqlx::Error> {
    let mut args = DB::Arguments::default();
    M::bind_key(key, &mut args).map_err(sqlx::Error::Encode)?;
    model
        .bind_version(&mut args, false)
        .map_err(sqlx::Error::Encode)?;
    Ok(DB::run(c, M::INFO.sql(DB::DIALECT).delete, args)
        .await?
        .rows_affected)
}

pub(crate) async fn find_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    key: &M::Key,
    for_update: bool,
) -> Result<Option<M>, sqlx::Error> {
    let statements = M::INFO.sql(DB::DIALECT);
    let sql = if for_update {
        statements.find_for_update
    } else {
        statements.find
    };
    let mut args = DB::Arguments::default();
    M::bind_key(key, &mut args).map_err(sqlx::Error::Encode)?;
    match DB::fetch_optional(c, sql, args).await? {
        Some(row) => M::decode(&row).map(Some),
        None => Ok(None),
    }
}

pub(crate) async fn all_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
) -> Result<Vec<M>, sqlx::Error> {
    let rows = DB::fetch_all(c, M::INFO.sql(DB::DIALECT).all, DB::Arguments::default()).await?;
    rows.iter().map(M::decode).collect()
}
