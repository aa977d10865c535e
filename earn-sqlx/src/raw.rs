//! `M::raw(sql)`: a query written in SQL that still decodes into the model
//! and runs `after_load`.

use std::fmt;
use std::sync::Arc;

use earn_core::{Error, HookPhase};
use sqlx::Column as _;

use crate::backend::Backend;
use crate::connection::{Conn, with_backend};
use crate::db::Db;
use crate::hook::run_detached;
use crate::model::{Model, ModelInfo, Row};
use crate::query::loaded;
use crate::statement::db_error;
use crate::tx::Tx;
use crate::value::SqlValue;

/// A query of model `M` written in SQL, from [`Model::raw`]: for what typed
/// queries cannot say (joins, sub-selects, database functions). Rows are
/// decoded by column name, so the query must return every column of the
/// model (`SELECT users.* …` does); each row goes through `after_load`.
/// Values are bound, never spliced: write the database's placeholders
/// (`?` on SQLite and MySQL, `$1`, `$2`… on PostgreSQL) and
/// [`bind`](RawQuery::bind) a value for each.
///
/// ```
/// # use earn::prelude::*;
/// # #[derive(Debug, Clone, Model)] #[model(table = "users")]
/// # struct User { #[model(primary_key, auto)] id: Option<i64>, name: String }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), earn::Error> {
/// # let db = Db::connect("sqlite::memory:").await?;
/// # db.create_table::<User>().await?;
/// # User { id: None, name: "ada".into() }.save(&db).await?;
/// let found = User::raw("SELECT * FROM users WHERE upper(name) = ?")
///     .bind("ADA")
///     .all(&db)
///     .await?;
/// assert_eq!(found[0].name, "ada");
/// # Ok(()) }
/// ```
pub struct RawQuery<M> {
    sql: String,
    params: Vec<Arc<dyn SqlValue>>,
    model: std::marker::PhantomData<fn() -> M>,
}

impl<M> Clone for RawQuery<M> {
    fn clone(&self) -> Self {
        RawQuery {
            sql: self.sql.clone(),
            params: self.params.clone(),
            model: self.model,
        }
    }
}

impl<M: Model> fmt::Debug for RawQuery<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawQuery")
            .field("model", &M::INFO.name)
            .field("sql", &self.sql)
            .field("params", &self.params)
            .finish()
    }
}

impl<M: Model> RawQuery<M> {
    pub(crate) fn new(sql: String) -> Self {
        RawQuery {
            sql,
            params: Vec::new(),
            model: std::marker::PhantomData,
        }
    }

    /// Binds the value of the next placeholder: any field type, or a
    /// `&str`.
    #[must_use]
    pub fn bind(mut self, value: impl IntoParam) -> Self {
        self.params.push(value.into_param());
        self
    }

    async fn fetch(&self, conn: &mut Conn) -> Result<Vec<M>, Error> {
        with_backend!(conn, |c, DB| fetch_named::<DB, M>(c, self).await)
            .map_err(db_error::<M>("select"))
    }

    /// Every row, after `after_load`.
    pub async fn all(&self, db: &Db) -> Result<Vec<M>, Error> {
        let rows = self.fetch(&mut db.acquire().await?).await?;
        loaded(rows).await
    }

    /// [`all`](RawQuery::all) in a transaction.
    pub async fn all_in(&self, tx: &mut Tx) -> Result<Vec<M>, Error> {
        let rows = self.fetch(&mut tx.conn).await?;
        loaded(rows).await
    }

    /// The first row, or `None`.
    pub async fn first(&self, db: &Db) -> Result<Option<M>, Error> {
        let rows = self.fetch(&mut db.acquire().await?).await?;
        first(rows).await
    }

    /// [`first`](RawQuery::first) in a transaction.
    pub async fn first_in(&self, tx: &mut Tx) -> Result<Option<M>, Error> {
        let rows = self.fetch(&mut tx.conn).await?;
        first(rows).await
    }
}

/// A value [`RawQuery::bind`] takes: a [`SqlValue`], or a `&str`.
pub trait IntoParam {
    /// The value, ready to bind.
    fn into_param(self) -> Arc<dyn SqlValue>;
}

impl<T: SqlValue> IntoParam for T {
    fn into_param(self) -> Arc<dyn SqlValue> {
        Arc::new(self)
    }
}

impl IntoParam for &str {
    fn into_param(self) -> Arc<dyn SqlValue> {
        Arc::new(self.to_owned())
    }
}

async fn first<M: Model>(rows: Vec<M>) -> Result<Option<M>, Error> {
    match rows.into_iter().next() {
        Some(mut row) => {
            run_detached(HookPhase::AfterLoad, &mut row).await?;
            Ok(Some(row))
        }
        None => Ok(None),
    }
}

async fn fetch_named<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    query: &RawQuery<M>,
) -> Result<Vec<M>, sqlx::Error> {
    let mut args = DB::Arguments::default();
    for value in &query.params {
        DB::bind_value(value.as_ref(), &mut args).map_err(sqlx::Error::Encode)?;
    }
    let rows = DB::fetch_all_built(c, query.sql.clone(), args).await?;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let at = column_positions(first, M::INFO)?;
    rows.iter().map(|row| M::decode_at(row, &at)).collect()
}

/// Where each column of the model is in `row`, found by name.
pub fn column_positions<R: sqlx::Row>(
    row: &R,
    info: &ModelInfo,
) -> Result<Vec<usize>, sqlx::Error> {
    let columns = row.columns();
    info.columns
        .iter()
        .map(|column| {
            columns
                .iter()
                .position(|c| c.name() == column.name)
                .ok_or_else(|| {
                    sqlx::Error::ColumnNotFound(format!(
                        "{} (a column of {}: the query must return every column of the model)",
                        column.name, info.name
                    ))
                })
        })
        .collect()
}
