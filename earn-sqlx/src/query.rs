//! `M::query()`: typed filters, order, limit and offset, run as one bound
//! statement; `after_load` on every row read.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use earn_core::{Error, HookPhase};
use futures_core::Stream;
use futures_core::stream::BoxStream;
use futures_util::StreamExt as _;

use crate::backend::{Backend, Dialect};
use crate::bulk::{self, Bulk};
use crate::column::{Direction, Order, Set};
use crate::connection::{Conn, with_backend};
use crate::db::Db;
use crate::field::Field;
use crate::filter::{Expr, Filter};
use crate::hook::run_detached;
use crate::model::{Model, Row};
use crate::sql::SqlBuilder;
use crate::statement::db_error;
use crate::tx::Tx;
use crate::write::Removal;

/// A query of model `M`: built with [`Model::query`], run with
/// [`all`](Query::all), [`first`](Query::first), [`one`](Query::one),
/// [`count`](Query::count), [`exists`](Query::exists),
/// [`paginate`](Query::paginate) or [`stream`](Query::stream) (each with an
/// `_in` form that runs in a [`Tx`]), or used to write the rows it selects
/// with [`update_all`](Query::update_all) and
/// [`delete_all`](Query::delete_all), which run every row's hooks.
///
/// Values are always bound parameters and identifiers quoted; a query
/// returns the same rows on SQLite, PostgreSQL and MySQL. Every row read
/// goes through the model's `after_load` hooks.
///
/// ```
/// use earn::prelude::*;
///
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "products")]
/// struct Product {
///     #[model(primary_key, auto)]
///     id: Option<i64>,
///     name: String,
///     cents: i64,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), earn::Error> {
/// let db = Db::connect("sqlite::memory:").await?;
/// db.create_table::<Product>().await?;
/// let mut products = [("tea", 450), ("cake", 300), ("toast", 250)]
///     .map(|(name, cents)| Product { id: None, name: name.into(), cents });
/// Product::insert_many(&db, &mut products).await?;
///
/// let cheap = Product::query()
///     .filter(Product::CENTS.lt(400))
///     .order_by(Product::CENTS.asc())
///     .all(&db)
///     .await?;
/// assert_eq!(cheap.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["toast", "cake"]);
///
/// let page = Product::query().order_by(Product::NAME.asc()).paginate(&db, 1, 2).await?;
/// assert_eq!((page.items.len(), page.total, page.pages()), (2, 3, 2));
///
/// let tea = Product::query().filter(Product::NAME.eq("tea")).one(&db).await?;
/// assert_eq!(tea.cents, 450);
/// # Ok(()) }
/// ```
pub struct Query<M> {
    pub(crate) filter: Option<Expr>,
    order: Vec<Order<M>>,
    limit: Option<u64>,
    offset: Option<u64>,
    pub(crate) scope: Scope,
}

/// Which rows of a `#[model(soft_delete)]` model a query sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Live rows only: the default.
    Live,
    /// Live and soft-deleted rows.
    All,
    /// Soft-deleted rows only.
    Deleted,
}

impl<M> Clone for Query<M> {
    fn clone(&self) -> Self {
        Query {
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            scope: self.scope,
        }
    }
}

impl<M: Model> fmt::Debug for Query<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("model", &M::INFO.name)
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("scope", &self.scope)
            .finish()
    }
}

impl<M: Model> Default for Query<M> {
    fn default() -> Self {
        Query::new()
    }
}

/// One page of a query's rows, from [`Query::paginate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Page<M> {
    /// The rows of this page.
    pub items: Vec<M>,
    /// How many rows the query matches in all.
    pub total: u64,
    /// The page number, from 1.
    pub page: u64,
    /// Rows per page.
    pub per_page: u64,
}

impl<M> Page<M> {
    /// How many pages the query's rows fill (0 when there are none).
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(self.per_page)
    }
}

/// Whether a `SELECT` locks the rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    None,
    ForUpdate,
}

impl<M: Model> Query<M> {
    /// A query of every row.
    pub fn new() -> Self {
        Query {
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
            scope: Scope::Live,
        }
    }

    /// The same query over every row, soft-deleted or not.
    pub(crate) fn including_deleted(mut self) -> Self {
        self.scope = Scope::All;
        self
    }

    /// Keeps the rows matching `filter`; several calls must all match.
    #[must_use]
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.filter = Some(match self.filter.take() {
            None => filter.expr,
            Some(before) => Filter::<M>::new(before).and(filter).expr,
        });
        self
    }

    /// Orders by a column ([`Col::asc`](crate::Col::asc) or
    /// [`desc`](crate::Col::desc)); several calls order by the first, then
    /// the next. Without an order the database's order is unspecified,
    /// except for [`first`](Query::first), which orders by key.
    #[must_use]
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.order.push(order);
        self
    }

    /// At most `rows` rows.
    #[must_use]
    pub fn limit(mut self, rows: u64) -> Self {
        self.limit = Some(rows);
        self
    }

    /// Skips the first `rows` rows.
    #[must_use]
    pub fn offset(mut self, rows: u64) -> Self {
        self.offset = Some(rows);
        self
    }

    /// The condition for messages: `` `email` = ? ``.
    pub(crate) fn describe(&self) -> String {
        match &self.filter {
            None => "any row".to_owned(),
            Some(expr) => {
                let mut sql = SqlBuilder::new(M::INFO, Dialect::Sqlite);
                expr.render(&mut sql);
                sql.text
            }
        }
    }

    pub(crate) fn has_window(&self) -> bool {
        self.limit.is_some() || self.offset.is_some()
    }

    /// ` WHERE …`, if there is a filter, or a soft-delete scope.
    pub(crate) fn render_where(&self, sql: &mut SqlBuilder) {
        let scope = match (M::INFO.soft_delete, self.scope) {
            (Some(column), Scope::Live) => Some((column, " IS NULL")),
            (Some(column), Scope::Deleted) => Some((column, " IS NOT NULL")),
            (_, Scope::All) | (None, _) => None,
        };
        match (&self.filter, scope) {
            (None, None) => {}
            (Some(expr), None) => {
                sql.push(" WHERE ");
                expr.render(sql);
            }
            (filter, Some((column, test))) => {
                sql.push(" WHERE ");
                if let Some(expr) = filter {
                    sql.push("(");
                    expr.render(sql);
                    sql.push(") AND ");
                }
                sql.column(column);
                sql.push(test);
            }
        }
    }

    /// ` ORDER BY … LIMIT … OFFSET …`.
    pub(crate) fn render_window(&self, sql: &mut SqlBuilder) {
        for (i, order) in self.order.iter().enumerate() {
            sql.push(if i == 0 { " ORDER BY " } else { ", " });
            sql.column(order.column);
            sql.push(match order.direction {
                Direction::Asc => " ASC",
                Direction::Desc => " DESC",
            });
        }
        let bound = |rows: u64| std::sync::Arc::new(i64::try_from(rows).unwrap_or(i64::MAX));
        match (self.limit, self.offset) {
            (None, None) => {}
            (Some(limit), offset) => {
                sql.push(" LIMIT ");
                sql.param(bound(limit));
                if let Some(offset) = offset {
                    sql.push(" OFFSET ");
                    sql.param(bound(offset));
                }
            }
            (None, Some(offset)) => {
                // SQLite and MySQL take no OFFSET without a LIMIT.
                sql.push(match sql.dialect {
                    Dialect::Sqlite => " LIMIT -1",
                    Dialect::MySql => " LIMIT 18446744073709551615",
                    Dialect::Postgres => "",
                });
                sql.push(" OFFSET ");
                sql.param(bound(offset));
            }
        }
    }

    /// `SELECT columns FROM table WHERE … ORDER BY … LIMIT …`.
    pub(crate) fn select_sql(&self, dialect: Dialect, lock: Lock) -> SqlBuilder {
        let mut sql = SqlBuilder::new(M::INFO, dialect);
        sql.select();
        self.render_where(&mut sql);
        self.render_window(&mut sql);
        if lock == Lock::ForUpdate && dialect != Dialect::Sqlite {
            // SQLite locks the whole database for a write transaction.
            sql.push(" FOR UPDATE");
        }
        sql
    }

    /// The rows, decoded, before `after_load`.
    pub(crate) async fn fetch(&self, conn: &mut Conn, lock: Lock) -> Result<Vec<M>, Error> {
        let sql = self.select_sql(conn.dialect(), lock);
        with_backend!(conn, |c, DB| fetch_models::<DB, M>(c, sql).await)
            .map_err(db_error::<M>("select"))
    }

    /// Every matching row, after `after_load`.
    pub async fn all(&self, db: &Db) -> Result<Vec<M>, Error> {
        let rows = self.fetch(&mut db.acquire().await?, Lock::None).await?;
        loaded(rows).await
    }

    /// [`all`](Query::all) in a transaction: sees its uncommitted writes.
    pub async fn all_in(&self, tx: &mut Tx) -> Result<Vec<M>, Error> {
        let rows = self.fetch(&mut tx.conn, Lock::None).await?;
        loaded(rows).await
    }

    /// The first matching row (by the query's order, or by key), or `None`.
    pub async fn first(&self, db: &Db) -> Result<Option<M>, Error> {
        let rows = self
            .first_query()
            .fetch(&mut db.acquire().await?, Lock::None)
            .await?;
        Ok(loaded(rows).await?.pop())
    }

    /// [`first`](Query::first) in a transaction.
    pub async fn first_in(&self, tx: &mut Tx) -> Result<Option<M>, Error> {
        let rows = self.first_query().fetch(&mut tx.conn, Lock::None).await?;
        Ok(loaded(rows).await?.pop())
    }

    fn first_query(&self) -> Query<M> {
        let mut first = self.clone();
        if first.order.is_empty() {
            first
                .order
                .push(Order::new(M::INFO.key_index, Direction::Asc));
        }
        first.limit = Some(1);
        first
    }

    /// The one matching row: [`Error::NoRow`] if none matches,
    /// [`Error::TooManyRows`] if more than one does.
    pub async fn one(&self, db: &Db) -> Result<M, Error> {
        let rows = self
            .one_query()
            .fetch(&mut db.acquire().await?, Lock::None)
            .await?;
        self.exactly_one(rows).await
    }

    /// [`one`](Query::one) in a transaction.
    pub async fn one_in(&self, tx: &mut Tx) -> Result<M, Error> {
        let rows = self.one_query().fetch(&mut tx.conn, Lock::None).await?;
        self.exactly_one(rows).await
    }

    fn one_query(&self) -> Query<M> {
        let mut one = self.clone();
        one.limit = Some(self.limit.map_or(2, |limit| limit.min(2)));
        one
    }

    async fn exactly_one(&self, mut rows: Vec<M>) -> Result<M, Error> {
        match rows.len() {
            1 => {
                let mut row = rows.pop().ok_or_else(|| self.no_row())?;
                run_detached(HookPhase::AfterLoad, &mut row).await?;
                Ok(row)
            }
            0 => Err(self.no_row()),
            _ => Err(Error::TooManyRows {
                model: M::INFO.name,
                table: M::INFO.table,
                filter: self.describe(),
            }),
        }
    }

    fn no_row(&self) -> Error {
        Error::NoRow {
            model: M::INFO.name,
            table: M::INFO.table,
            filter: self.describe(),
        }
    }

    /// How many rows match (within the limit and offset, if set).
    pub async fn count(&self, db: &Db) -> Result<u64, Error> {
        self.count_on(&mut db.acquire().await?).await
    }

    /// [`count`](Query::count) in a transaction.
    pub async fn count_in(&self, tx: &mut Tx) -> Result<u64, Error> {
        self.count_on(&mut tx.conn).await
    }

    async fn count_on(&self, conn: &mut Conn) -> Result<u64, Error> {
        let mut sql = SqlBuilder::new(M::INFO, conn.dialect());
        if self.has_window() {
            sql.push("SELECT COUNT(*) FROM (SELECT 1 AS one FROM ");
            sql.table();
            self.render_where(&mut sql);
            self.render_window(&mut sql);
            sql.push(") AS counted");
        } else {
            sql.push("SELECT COUNT(*) FROM ");
            sql.table();
            self.render_where(&mut sql);
        }
        let count = with_backend!(conn, |c, DB| fetch_count::<DB>(c, sql).await)
            .map_err(db_error::<M>("count"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Whether any row matches.
    pub async fn exists(&self, db: &Db) -> Result<bool, Error> {
        self.exists_on(&mut db.acquire().await?).await
    }

    /// [`exists`](Query::exists) in a transaction.
    pub async fn exists_in(&self, tx: &mut Tx) -> Result<bool, Error> {
        self.exists_on(&mut tx.conn).await
    }

    async fn exists_on(&self, conn: &mut Conn) -> Result<bool, Error> {
        let mut probe = self.clone();
        probe.order.clear();
        probe.limit = Some(1);
        let mut sql = SqlBuilder::new(M::INFO, conn.dialect());
        sql.push("SELECT 1 FROM ");
        sql.table();
        probe.render_where(&mut sql);
        probe.render_window(&mut sql);
        with_backend!(conn, |c, DB| sql
            .fetch_optional::<DB>(c)
            .await
            .map(|row| row.is_some()))
        .map_err(db_error::<M>("select"))
    }

    /// Page `page` (from 1) of `per_page` rows, with the total count of
    /// matching rows. Give the query an order: without one, pages may
    /// overlap.
    pub async fn paginate(&self, db: &Db, page: u64, per_page: u64) -> Result<Page<M>, Error> {
        let window = self.page_query(page, per_page)?;
        let (rows, total) = {
            let mut conn = db.acquire().await?;
            let rows = window.fetch(&mut conn, Lock::None).await?;
            (rows, self.count_on(&mut conn).await?)
        };
        Ok(Page {
            items: loaded(rows).await?,
            total,
            page,
            per_page,
        })
    }

    /// [`paginate`](Query::paginate) in a transaction.
    pub async fn paginate_in(
        &self,
        tx: &mut Tx,
        page: u64,
        per_page: u64,
    ) -> Result<Page<M>, Error> {
        let window = self.page_query(page, per_page)?;
        let rows = window.fetch(&mut tx.conn, Lock::None).await?;
        let total = self.count_on(&mut tx.conn).await?;
        Ok(Page {
            items: loaded(rows).await?,
            total,
            page,
            per_page,
        })
    }

    fn page_query(&self, page: u64, per_page: u64) -> Result<Query<M>, Error> {
        if page == 0 || per_page == 0 {
            return Err(Error::InvalidQuery {
                model: M::INFO.name,
                reason: format!(
                    "paginate(page = {page}, per_page = {per_page}): pages are numbered from 1 and hold at least one row"
                )
                .into(),
            });
        }
        let mut window = self.clone();
        window.limit = Some(per_page);
        window.offset = Some((page - 1).saturating_mul(per_page));
        Ok(window)
    }

    /// The matching rows one by one as the database sends them, for
    /// results too large to hold in memory. The query runs on a connection
    /// of its own in a task, a few rows ahead of the reader; dropping the
    /// stream stops it and returns the connection to the pool. Until then
    /// the stream holds that connection: with a pool of one (an in-memory
    /// SQLite database) other queries wait for the stream to end.
    ///
    /// ```
    /// # use earn::prelude::*;
    /// # #[derive(Debug, Clone, Model)] #[model(table = "events_log")]
    /// # struct Entry { #[model(primary_key, auto)] id: Option<i64>, line: String }
    /// # async fn run(db: &Db) -> Result<(), earn::Error> {
    /// use futures_util::TryStreamExt;
    ///
    /// let mut entries = Entry::query().stream(db);
    /// while let Some(entry) = entries.try_next().await? {
    ///     println!("{}", entry.line);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream(&self, db: &Db) -> RowStream<'static, M> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
        let db = db.clone();
        let query = self.clone();
        tokio::spawn(async move {
            let mut conn = match db.acquire().await {
                Ok(conn) => conn,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            let mut rows = query.stream_on(&mut conn);
            while let Some(row) = rows.next().await {
                if sender.send(row).await.is_err() {
                    break; // the reader dropped the stream
                }
            }
        });
        RowStream {
            rows: futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed(),
        }
    }

    /// [`stream`](Query::stream) in a transaction, on its connection.
    pub fn stream_in<'t>(&self, tx: &'t mut Tx) -> RowStream<'t, M> {
        RowStream {
            rows: self.stream_on(&mut tx.conn),
        }
    }

    fn stream_on<'c>(&self, conn: &'c mut Conn) -> BoxStream<'c, Result<M, Error>> {
        let sql = self.select_sql(conn.dialect(), Lock::None);
        let rows: BoxStream<'c, Result<M, sqlx::Error>> = with_backend!(conn, |c, DB| {
            match sql.arguments::<DB>() {
                Ok(args) => DB::fetch_built(c, sql.text, args)
                    .map(|row| row.and_then(|row| <M as Row<DB>>::decode(&row)))
                    .boxed(),
                Err(error) => futures_util::stream::once(async { Err(error) }).boxed(),
            }
        });
        rows.then(|row| async {
            let mut row = row.map_err(db_error::<M>("select"))?;
            run_detached(HookPhase::AfterLoad, &mut row).await?;
            Ok(row)
        })
        .boxed()
    }

    /// Updates every matching row with `changes`, running each row's
    /// `before_save` / `before_update` hooks before the write and its
    /// `after_update` / `after_save` hooks and `updated` event after it,
    /// all in one transaction; returns how many rows were written. See
    /// [`update_all_in`](Query::update_all_in).
    pub async fn update_all(
        &self,
        db: &Db,
        changes: impl IntoIterator<Item = Set<M>>,
    ) -> Result<u64, Error> {
        let changes: Vec<Set<M>> = changes.into_iter().collect();
        bulk::standalone(db, Bulk::Update(self, &changes)).await
    }

    /// [`update_all`](Query::update_all) in the caller's transaction.
    ///
    /// The matching rows are read and locked (`SELECT … FOR UPDATE`), the
    /// changes applied to each, and its before hooks run (they can veto the
    /// whole write, or change more fields: those are written too). Rows
    /// the changes leave as they were are not written and get no hooks or
    /// events, as with [`save`](Model::save). The rest are written with one
    /// `UPDATE … WHERE key IN (…)` per thousands of rows, then each row's
    /// after hooks run and its event is raised. Hooks can tell a bulk write
    /// from a single one with [`HookContext::is_bulk`](crate::HookContext::is_bulk).
    ///
    /// A model without hooks, events or version is updated with one
    /// `UPDATE … WHERE …`: there is nothing per row to run.
    pub async fn update_all_in(
        &self,
        tx: &mut Tx,
        changes: impl IntoIterator<Item = Set<M>>,
    ) -> Result<u64, Error> {
        let changes: Vec<Set<M>> = changes.into_iter().collect();
        bulk::write(tx, Bulk::Update(self, &changes)).await
    }

    /// Updates every matching row with one `UPDATE`, without hooks or
    /// events: says so in a `tracing` event.
    pub async fn update_all_quietly(
        &self,
        db: &Db,
        changes: impl IntoIterator<Item = Set<M>>,
    ) -> Result<u64, Error> {
        let changes: Vec<Set<M>> = changes.into_iter().collect();
        bulk::standalone(db, Bulk::UpdateQuietly(self, &changes)).await
    }

    /// Deletes every matching row, running each row's `before_delete` and
    /// `after_delete` hooks and raising its `deleted` event, in one
    /// transaction; returns how many rows were deleted. See
    /// [`delete_all_in`](Query::delete_all_in).
    pub async fn delete_all(&self, db: &Db) -> Result<u64, Error> {
        bulk::standalone(db, Bulk::Delete(self, Removal::Soft)).await
    }

    /// [`delete_all`](Query::delete_all) in the caller's transaction.
    ///
    /// A model with `before_delete` hooks or dependent relations (and every
    /// model on MySQL, which unlike MariaDB has no `DELETE … RETURNING`)
    /// has its matching
    /// rows read and locked first; the before hooks and the relations'
    /// `on_delete` actions run, then one `DELETE … WHERE key IN (…)`.
    /// Otherwise one `DELETE … RETURNING` deletes the rows and returns
    /// them. Either way each deleted row then gets its `after_delete`
    /// hooks and `deleted` event: exactly the rows deleted, no others.
    pub async fn delete_all_in(&self, tx: &mut Tx) -> Result<u64, Error> {
        bulk::write(tx, Bulk::Delete(self, Removal::Soft)).await
    }

    /// Deletes every matching row with one `DELETE`, without hooks or
    /// events: says so in a `tracing` event. Relations' `on_delete`
    /// actions still run, quietly too.
    pub async fn delete_all_quietly(&self, db: &Db) -> Result<u64, Error> {
        bulk::standalone(db, Bulk::DeleteQuietly(self, Removal::Soft)).await
    }
}

/// Runs `after_load` on every row.
pub(crate) async fn loaded<M: Model>(mut rows: Vec<M>) -> Result<Vec<M>, Error> {
    if M::hooks().has(HookPhase::AfterLoad) {
        for row in &mut rows {
            run_detached(HookPhase::AfterLoad, row).await?;
        }
    }
    Ok(rows)
}

pub(crate) async fn fetch_models<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    sql: SqlBuilder,
) -> Result<Vec<M>, sqlx::Error> {
    let args = sql.arguments::<DB>()?;
    let rows = DB::fetch_all_built(c, sql.text, args).await?;
    rows.iter().map(M::decode).collect()
}

async fn fetch_count<DB: Backend>(
    c: &mut DB::Connection,
    sql: SqlBuilder,
) -> Result<i64, sqlx::Error>
where
    i64: Field<DB>,
{
    let args = sql.arguments::<DB>()?;
    let row = DB::fetch_optional_built(c, sql.text, args)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    <i64 as Field<DB>>::decode(&row, 0)
}

/// The rows of [`Query::stream`], after `after_load`.
pub struct RowStream<'a, M> {
    rows: BoxStream<'a, Result<M, Error>>,
}

impl<M> fmt::Debug for RowStream<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RowStream(..)")
    }
}

impl<M> Stream for RowStream<'_, M> {
    type Item = Result<M, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rows.as_mut().poll_next(cx)
    }
}
