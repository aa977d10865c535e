//! The statements of a model's reads and writes, run on one backend: no
//! hooks here, only SQL and its errors.

use std::fmt::Write as _;

use earn_core::{Error, Operation};

use crate::backend::{Backend, Dialect};
use crate::connection::with_backend;
use crate::model::{Entity, Model, ModelInfo, Row};
use crate::tx::Tx;

/// The error of a statement on `M`'s table: a unique or foreign-key
/// violation typed with the constraint's name, any other as
/// [`Error::Database`].
pub(crate) fn db_error<M: Entity>(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| {
        let (model, table) = (M::INFO.name, M::INFO.table);
        let violation = match &source {
            sqlx::Error::Database(error) => match error.kind() {
                sqlx::error::ErrorKind::UniqueViolation => Some((true, constraint_of(&**error))),
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    Some((false, constraint_of(&**error)))
                }
                _ => None,
            },
            _ => None,
        };
        match violation {
            Some((true, constraint)) => Error::UniqueViolation {
                model,
                table,
                constraint,
                operation,
                source: Box::new(source),
            },
            Some((false, constraint)) => Error::ForeignKeyViolation {
                model,
                table,
                constraint,
                operation,
                source: Box::new(source),
            },
            None => Error::Database {
                table: table.into(),
                operation,
                source: Box::new(source),
            },
        }
    }
}

/// The constraint a violation names: PostgreSQL says it; MySQL and SQLite
/// only write it in the message.
fn constraint_of(error: &dyn sqlx::error::DatabaseError) -> String {
    if let Some(constraint) = error.constraint() {
        return constraint.to_owned();
    }
    let message = error.message();
    // MySQL: "… CONSTRAINT `lines_ibfk_1` FOREIGN KEY …".
    if let Some(rest) = message.split("CONSTRAINT `").nth(1)
        && let Some(name) = rest.split('`').next()
    {
        return name.to_owned();
    }
    // MySQL: "Duplicate entry 'a' for key 'users.email'".
    if let Some(rest) = message.split(" for key '").nth(1) {
        return rest.trim_end_matches('\'').to_owned();
    }
    // SQLite: "UNIQUE constraint failed: users.email", "FOREIGN KEY
    // constraint failed".
    match message.split("constraint failed: ").nth(1) {
        Some(columns) => columns.to_owned(),
        None if message.starts_with("FOREIGN KEY") => "FOREIGN KEY".to_owned(),
        None => message.to_owned(),
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

/// Multi-row `INSERT`s of `models`, as many rows per statement as the
/// parameter limit allows; sets the `auto` keys read back.
///
/// Keys come back in the order of the `VALUES` rows: from `RETURNING` on
/// PostgreSQL and SQLite (both return the rows of an `INSERT … VALUES` in
/// that order), and on MySQL from `LAST_INSERT_ID()`, the first of
/// consecutive values InnoDB gives one multi-row `INSERT` (with
/// `innodb_autoinc_lock_mode` 0 or 1, MariaDB's default, or 2 for such a
/// simple insert, and `auto_increment_increment = 1`).
pub(crate) async fn insert_many<M: Model>(tx: &mut Tx, models: &mut [M]) -> Result<(), Error> {
    let info = M::INFO;
    let columns: Vec<usize> = (0..info.columns.len())
        .filter(|&i| !(info.auto_key && i == info.key_index))
        .collect();
    if columns.is_empty() {
        // `DEFAULT VALUES` takes one row at a time.
        for model in models.iter_mut() {
            insert(tx, model).await?;
        }
        return Ok(());
    }
    let per_statement = (crate::sql::MAX_PARAMS / columns.len()).max(1);
    let dialect = tx.dialect();
    for chunk in models.chunks_mut(per_statement) {
        let sql = insert_many_sql(info, dialect, &columns, chunk.len());
        let keys = with_backend!(&mut tx.conn, |c, DB| insert_many_on::<DB, M>(c, sql, chunk)
            .await)
        .map_err(db_error::<M>("insert"))?;
        if info.auto_key {
            for (model, key) in chunk.iter_mut().zip(keys) {
                model.set_key(Some(key));
            }
        }
    }
    Ok(())
}

fn insert_many_sql(
    info: &'static ModelInfo,
    dialect: Dialect,
    columns: &[usize],
    rows: usize,
) -> String {
    let mut sql = crate::sql::SqlBuilder::new(info, dialect);
    sql.push("INSERT INTO ");
    sql.table();
    sql.push(" (");
    for (i, &column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.column(column);
    }
    sql.push(") VALUES ");
    for row in 0..rows {
        sql.push(if row == 0 { "(" } else { ", (" });
        for i in 0..columns.len() {
            if i > 0 {
                sql.push(", ");
            }
            sql.placeholder();
        }
        sql.push(")");
    }
    if info.auto_key && dialect != Dialect::MySql {
        sql.push(" RETURNING ");
        sql.column(info.key_index);
    }
    sql.text
}

async fn insert_many_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    sql: String,
    models: &[M],
) -> Result<Vec<M::Key>, sqlx::Error> {
    let mut args = DB::Arguments::default();
    for model in models {
        model.bind_insert(&mut args).map_err(sqlx::Error::Encode)?;
    }
    if !M::INFO.auto_key {
        DB::run_built(c, sql, args).await?;
        return Ok(Vec::new());
    }
    let keys: Vec<M::Key> = if DB::DIALECT == Dialect::MySql {
        let done = DB::run_built(c, sql, args).await?;
        let first = done.last_insert_id.unwrap_or_default();
        (0..models.len() as u64)
            .filter_map(|i| M::key_from_insert_id(first + i))
            .collect()
    } else {
        let rows = DB::fetch_all_built(c, sql, args).await?;
        rows.iter().map(M::decode_key).collect::<Result<_, _>>()?
    };
    if keys.len() != models.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} rows inserted but {} keys read back",
            models.len(),
            keys.len()
        )));
    }
    Ok(keys)
}

/// ` SET a = ?, b = ?` of bulk changes (and `version = version + 1`).
pub(crate) fn render_sets<M: Entity>(
    sql: &mut crate::sql::SqlBuilder,
    changes: &[crate::column::Set<M>],
) {
    sql.push(" SET ");
    for (i, set) in changes.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.column(set.column);
        sql.push(" = ");
        sql.param(set.value.clone());
    }
    if let Some(version) = M::INFO.version_index {
        sql.push(", ");
        sql.column(version);
        sql.push(" = ");
        sql.column(version);
        sql.push(" + 1");
    }
}

/// `UPDATE … SET changes WHERE key IN (…)` of the rows `previous`, which
/// the transaction holds locked.
pub(crate) async fn update_keys<M: Model>(
    tx: &mut Tx,
    previous: &[&M],
    changes: &[crate::column::Set<M>],
) -> Result<(), Error> {
    let keys: Vec<M::Key> = previous.iter().filter_map(|m| m.key()).collect();
    for chunk in keys.chunks(crate::bulk::keys_per_statement(changes.len())) {
        let mut sql = crate::sql::SqlBuilder::new(M::INFO, tx.dialect());
        sql.push("UPDATE ");
        sql.table();
        render_sets::<M>(&mut sql, changes);
        sql.push(" WHERE ");
        key_list::<M>(&mut sql, chunk.len());
        let affected = with_backend!(&mut tx.conn, |c, DB| run_with_keys::<DB, M>(c, sql, chunk)
            .await)
        .map_err(db_error::<M>("update"))?;
        rows_changed_underneath::<M>(affected, chunk.len(), Operation::Update)?;
    }
    Ok(())
}

/// `DELETE … WHERE key IN (…)`.
pub(crate) async fn delete_keys<M: Model>(tx: &mut Tx, keys: &[M::Key]) -> Result<u64, Error> {
    let mut deleted = 0;
    for chunk in keys.chunks(crate::bulk::keys_per_statement(0)) {
        let mut sql = crate::sql::SqlBuilder::new(M::INFO, tx.dialect());
        sql.push("DELETE FROM ");
        sql.table();
        sql.push(" WHERE ");
        key_list::<M>(&mut sql, chunk.len());
        let affected = with_backend!(&mut tx.conn, |c, DB| run_with_keys::<DB, M>(c, sql, chunk)
            .await)
        .map_err(db_error::<M>("delete"))?;
        rows_changed_underneath::<M>(affected, chunk.len(), Operation::Delete)?;
        deleted += affected;
    }
    Ok(deleted)
}

/// Soft-deletes (`at` is `Some`) live rows, or restores (`None`) deleted
/// ones, by key: `UPDATE … SET deleted_at = ?[, updated_at = now] WHERE
/// key IN (…) AND deleted_at IS [NOT] NULL`. Returns how many rows
/// changed: rows already in that state, or missing, are not counted.
pub(crate) async fn mark_deleted<M: Model>(
    tx: &mut Tx,
    keys: &[M::Key],
    at: Option<std::time::SystemTime>,
    now: std::time::SystemTime,
) -> Result<u64, Error> {
    let Some(column) = M::INFO.soft_delete else {
        return Ok(0);
    };
    let changes: Vec<crate::column::Set<M>> = [M::soft_delete_change(at), M::stamp_change(now)]
        .into_iter()
        .flatten()
        .collect();
    let mut marked = 0;
    for chunk in keys.chunks(crate::bulk::keys_per_statement(changes.len())) {
        let mut sql = crate::sql::SqlBuilder::new(M::INFO, tx.dialect());
        sql.push("UPDATE ");
        sql.table();
        render_sets::<M>(&mut sql, &changes);
        sql.push(" WHERE ");
        key_list::<M>(&mut sql, chunk.len());
        sql.push(" AND ");
        sql.column(column);
        sql.push(if at.is_some() {
            " IS NULL"
        } else {
            " IS NOT NULL"
        });
        marked += with_backend!(&mut tx.conn, |c, DB| run_with_keys::<DB, M>(c, sql, chunk)
            .await)
        .map_err(db_error::<M>(if at.is_some() {
            "delete"
        } else {
            "restore"
        }))?;
    }
    Ok(marked)
}

/// `DELETE … RETURNING` every column of the query's rows.
pub(crate) async fn delete_returning<M: Model>(
    tx: &mut Tx,
    query: &crate::Query<M>,
) -> Result<Vec<M>, Error> {
    let mut sql = crate::bulk::delete_sql(query, tx.dialect());
    sql.push(" RETURNING ");
    sql.columns();
    with_backend!(&mut tx.conn, |c, DB| crate::query::fetch_models::<DB, M>(
        c, sql
    )
    .await)
    .map_err(db_error::<M>("delete"))
}

/// `key IN (?, ?, …)` with `keys` placeholders.
fn key_list<M: Entity>(sql: &mut crate::sql::SqlBuilder, keys: usize) {
    sql.column(M::INFO.key_index);
    sql.push(" IN (");
    for i in 0..keys {
        if i > 0 {
            sql.push(", ");
        }
        sql.placeholder();
    }
    sql.push(")");
}

async fn run_with_keys<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    sql: crate::sql::SqlBuilder,
    keys: &[M::Key],
) -> Result<u64, sqlx::Error> {
    let mut args = sql.arguments::<DB>()?;
    for key in keys {
        M::bind_key(key, &mut args).map_err(sqlx::Error::Encode)?;
    }
    Ok(DB::run_built(c, sql.text, args).await?.rows_affected)
}

/// Rows read and locked by this transaction cannot vanish: a count that
/// differs means another writer got past the lock (SQLite reports that as
/// a busy snapshot before this point) and the write must not go on.
pub(crate) fn rows_changed_underneath<M: Entity>(
    affected: u64,
    expected: usize,
    operation: Operation,
) -> Result<(), Error> {
    if affected == expected as u64 {
        return Ok(());
    }
    Err(Error::Database {
        table: M::INFO.table.into(),
        operation: if operation == Operation::Update {
            "update"
        } else {
            "delete"
        },
        source: format!("{expected} locked rows were to be written, {affected} were").into(),
    })
}
