//! Bulk writes that keep the promise: `insert_many`, `update_all` and
//! `delete_all` run every row's hooks and raise every row's event, in one
//! transaction, around as few statements as the database allows.

use std::borrow::Cow;

use earn_core::{Error, HookPhase, Operation};

use crate::backend::Dialect;
use crate::column::Set;
use crate::connection::with_backend;
use crate::db::Db;
use crate::guard::{guarded_bulk, refuse_inside_a_write};
use crate::hook::Hooks;
use crate::model::{Entity, Model};
use crate::query::{Lock, Query, Scope};
use crate::soft_delete;
use crate::sql::{MAX_PARAMS, SqlBuilder};
use crate::statement::{self, db_error};
use crate::timestamp;
use crate::tx::Tx;
use crate::write::{Progress, Removal, changed_columns, finish, has_outcome_hooks, tracked};

/// A bulk write and what it applies to.
pub(crate) enum Bulk<'a, M> {
    Insert(&'a mut [M]),
    Update(&'a Query<M>, &'a [Set<M>]),
    UpdateQuietly(&'a Query<M>, &'a [Set<M>]),
    Delete(&'a Query<M>, Removal),
    DeleteQuietly(&'a Query<M>, Removal),
}

impl<M> Bulk<'_, M> {
    fn operation(&self) -> Operation {
        match self {
            Bulk::Insert(_) => Operation::Create,
            Bulk::Update(..) | Bulk::UpdateQuietly(..) => Operation::Update,
            Bulk::Delete(..) | Bulk::DeleteQuietly(..) => Operation::Delete,
        }
    }
}

/// Runs a bulk write in a transaction of its own; returns the rows written.
pub(crate) async fn standalone<M: Model>(db: &Db, bulk: Bulk<'_, M>) -> Result<u64, Error> {
    refuse_inside_a_write::<M>(bulk.operation())?;
    let mut tx = db.begin().await?;
    let result = run(&mut tx, bulk).await;
    finish::<M, _>(tx, result).await
}

/// Runs a bulk write in the caller's transaction.
pub(crate) async fn write<M: Model>(tx: &mut Tx, bulk: Bulk<'_, M>) -> Result<u64, Error> {
    tx.ensure_usable()?;
    tx.write_begins();
    let written = run(tx, bulk).await;
    tx.write_ends();
    written
}

async fn run<M: Model>(tx: &mut Tx, bulk: Bulk<'_, M>) -> Result<u64, Error> {
    // Hooks opening a transaction of their own are caught as in a single
    // write.
    guarded_bulk::<M, _, _>(async {
        match bulk {
            Bulk::Insert(models) => insert_many(tx, models).await,
            Bulk::Update(query, changes) => update_all(tx, query, changes).await,
            Bulk::UpdateQuietly(query, changes) => {
                let written = update_where(tx, query, changes).await;
                quietly::<M>("update_all_quietly", &written);
                written
            }
            Bulk::Delete(query, removal) => delete_all(tx, query, removal).await,
            Bulk::DeleteQuietly(query, removal) => {
                let deleted = delete_quietly(tx, query, removal).await;
                quietly::<M>("delete_all_quietly", &deleted);
                deleted
            }
        }
    })
    .await
}

fn quietly<M: Entity>(write: &'static str, rows: &Result<u64, Error>) {
    if let Ok(rows) = rows {
        tracing::debug!(
            model = M::INFO.name,
            table = M::INFO.table,
            rows,
            "{write}: hooks and events skipped"
        );
    }
}

/// Undoes what a failed bulk write queued, and poisons the transaction if
/// the database was changed.
fn failed<M: Model>(
    tx: &mut Tx,
    mark: usize,
    progress: &Progress,
    error: &Error,
    rows: &[M],
    operation: Operation,
) {
    tx.drop_events_since(mark);
    progress.poison_on(tx, error);
    if M::hooks().has(HookPhase::AfterRollback) {
        for row in rows {
            tx.queue_outcome(row.clone(), operation, false);
        }
    }
}

/// Queues the outcome hooks of every row written: `rows` as written, each
/// with the row as it was before (none for an insert) and the fields its
/// write changed.
fn succeeded<'a, M: Model>(
    tx: &mut Tx,
    rows: impl IntoIterator<Item = (&'a M, Option<&'a M>, &'a [&'static str])>,
    operation: Operation,
) {
    if has_outcome_hooks::<M>() {
        for (row, previous, changed) in rows {
            tx.queue_written(row.clone(), operation, previous, changed);
        }
    }
}

/// `insert_many`: before hooks of every row, multi-row `INSERT`s, then
/// after hooks and an event per row.
pub(crate) async fn insert_many<M: Model>(tx: &mut Tx, models: &mut [M]) -> Result<u64, Error> {
    if M::INFO.auto_key
        && let Some(key) = models.iter().find_map(Entity::key)
    {
        return Err(Error::AlreadyPersisted {
            model: M::INFO.name,
            key: format!("{key:?}"),
        });
    }
    let mark = tx.mark();
    let mut progress = Progress::bulk(Operation::Create);
    match insert_steps(tx, models, &mut progress).await {
        Ok(()) => {
            let inserted = models.iter().map(|m| (m, None, M::field_names()));
            succeeded(tx, inserted, Operation::Create);
            Ok(models.len() as u64)
        }
        Err(error) => {
            if M::INFO.auto_key {
                models.iter_mut().for_each(|m| m.set_key(None));
            }
            failed(tx, mark, &progress, &error, models, Operation::Create);
            Err(error)
        }
    }
}

async fn insert_steps<M: Model>(
    tx: &mut Tx,
    models: &mut [M],
    progress: &mut Progress,
) -> Result<(), Error> {
    let hooked = !M::hooks().is_empty();
    let befores = [HookPhase::BeforeSave, HookPhase::BeforeCreate];
    let afters = [HookPhase::AfterCreate, HookPhase::AfterSave];
    if hooked {
        for model in models.iter_mut() {
            progress
                .run(&befores, tx, model, M::field_names(), None)
                .await?;
        }
    }
    if M::INFO.created_at.is_some() || M::INFO.updated_at.is_some() {
        let now = timestamp::now();
        models
            .iter_mut()
            .for_each(|m| m.stamp(now, Operation::Create));
    }
    progress.wrote = true;
    statement::insert_many(tx, models).await?;
    for model in models.iter_mut() {
        if hooked {
            progress
                .run(&afters, tx, model, M::field_names(), None)
                .await?;
        }
        crate::model_event::raise(tx, model, Operation::Create, None, M::field_names()).await?;
    }
    Ok(())
}

/// One row of an `update_all`: the row as read, as it will be written, and
/// the fields that differ.
struct Changed<M> {
    model: M,
    previous: M,
    fields: Vec<&'static str>,
    /// A before hook changed more than the bulk changes.
    alone: bool,
}

/// `update_all`: the rows read and locked, the changes applied, hooks and
/// events per row; rows the changes do not change are left alone.
pub(crate) async fn update_all<M: Model>(
    tx: &mut Tx,
    query: &Query<M>,
    changes: &[Set<M>],
) -> Result<u64, Error> {
    if changes.is_empty() || !tracked::<M>() {
        // No hooks, events or version: nothing to run per row.
        return update_where(tx, query, changes).await;
    }
    refuse_key_change::<M>(changes)?;
    // One instant for every row; `updated_at` moves only on rows the
    // changes change.
    let stamp = M::stamp_change(timestamp::now());
    let mut rows = Vec::new();
    for previous in query.fetch(&mut tx.conn, Lock::ForUpdate).await? {
        let mut model = previous.clone();
        changes.iter().for_each(|set| (set.apply)(&mut model));
        let mut fields = model.changed_fields(&previous);
        if let Some(stamp) = &stamp
            && !fields.is_empty()
        {
            (stamp.apply)(&mut model);
            fields = model.changed_fields(&previous);
        }
        if !fields.is_empty() {
            rows.push(Changed {
                model,
                previous,
                fields,
                alone: false,
            });
        }
    }
    let changes = &*with_stamp(changes, stamp);
    let mark = tx.mark();
    let mut progress = Progress::bulk(Operation::Update);
    match update_steps(tx, &mut rows, changes, &mut progress).await {
        Ok(written) => {
            let updated = rows
                .iter()
                .map(|row| (&row.model, Some(&row.previous), row.fields.as_slice()));
            succeeded(tx, updated, Operation::Update);
            Ok(written)
        }
        Err(error) => {
            let models: Vec<M> = rows.into_iter().map(|row| row.previous).collect();
            failed(tx, mark, &progress, &error, &models, Operation::Update);
            Err(error)
        }
    }
}

/// The changes with `updated_at = now` after them, if the model has one.
fn with_stamp<M>(changes: &[Set<M>], stamp: Option<Set<M>>) -> Cow<'_, [Set<M>]> {
    match stamp {
        Some(stamp) => Cow::Owned(changes.iter().cloned().chain([stamp]).collect()),
        None => Cow::Borrowed(changes),
    }
}

fn refuse_key_change<M: Entity>(changes: &[Set<M>]) -> Result<(), Error> {
    let info = M::INFO;
    let Some(set) = changes.iter().find(|set| {
        set.column == info.key_index
            || Some(set.column) == info.version_index
            || Some(set.column) == info.soft_delete
    }) else {
        return Ok(());
    };
    let field = info.columns[set.column].field;
    let why = if Some(set.column) == info.soft_delete {
        "soft-delete rows with `delete_all` and bring them back with `restore`, which run their hooks"
    } else {
        "the key identifies the row and the version is earn's to increment"
    };
    Err(Error::InvalidQuery {
        model: info.name,
        reason: format!("update_all cannot set `{field}`: {why}").into(),
    })
}

async fn update_steps<M: Model>(
    tx: &mut Tx,
    rows: &mut Vec<Changed<M>>,
    changes: &[Set<M>],
    progress: &mut Progress,
) -> Result<u64, Error> {
    let befores = [HookPhase::BeforeSave, HookPhase::BeforeUpdate];
    let afters = [HookPhase::AfterUpdate, HookPhase::AfterSave];
    let hooks = M::hooks();
    let before_hooks = hooks.has(HookPhase::BeforeSave) || hooks.has(HookPhase::BeforeUpdate);
    if before_hooks {
        for row in rows.iter_mut() {
            progress
                .run(
                    &befores,
                    tx,
                    &mut row.model,
                    &row.fields,
                    Some(&row.previous),
                )
                .await?;
            // A row a hook changed beyond `changes` is written on its own.
            let mut expected = row.previous.clone();
            changes.iter().for_each(|set| (set.apply)(&mut expected));
            row.alone = !row.model.changed_fields(&expected).is_empty();
            row.fields = row.model.changed_fields(&row.previous);
        }
        // A hook may have undone every change of a row: nothing to write.
        rows.retain(|row| !row.fields.is_empty());
    }
    progress.wrote = true;
    let together: Vec<&M> = rows
        .iter()
        .filter(|row| !row.alone)
        .map(|row| &row.previous)
        .collect();
    statement::update_keys(tx, &together, changes).await?;
    for row in rows.iter_mut() {
        if row.alone {
            statement::update_columns(tx, &mut row.model, &changed_columns::<M>(&row.fields))
                .await?;
        } else if let Some(version) = row.model.version() {
            row.model.set_version(version + 1);
        }
    }
    for row in rows.iter_mut() {
        if !hooks.is_empty() {
            progress
                .run(
                    &afters,
                    tx,
                    &mut row.model,
                    &row.fields,
                    Some(&row.previous),
                )
                .await?;
        }
        crate::model_event::raise(
            tx,
            &row.model,
            Operation::Update,
            Some(&row.previous),
            &row.fields,
        )
        .await?;
    }
    Ok(rows.len() as u64)
}

/// ` WHERE …` selecting the query's rows for an `UPDATE` or `DELETE`:
/// its filter, or with an order, limit or offset, the keys of a subquery
/// (wrapped once more on MySQL, which refuses a `LIMIT` in an `IN`
/// subquery and a subquery of the table being written).
fn render_target<M: Model>(query: &Query<M>, sql: &mut SqlBuilder) {
    if !query.has_window() {
        query.render_where(sql);
        return;
    }
    sql.push(" WHERE ");
    sql.column(M::INFO.key_index);
    sql.push(" IN (SELECT ");
    sql.column(M::INFO.key_index);
    sql.push(" FROM ");
    if sql.dialect == Dialect::MySql {
        sql.push("(SELECT ");
        sql.column(M::INFO.key_index);
        sql.push(" FROM ");
        sql.table();
        query.render_where(sql);
        query.render_window(sql);
        sql.push(") AS picked)");
    } else {
        sql.table();
        query.render_where(sql);
        query.render_window(sql);
        sql.push(")");
    }
}

/// One `UPDATE … SET … WHERE …` of the query's rows.
pub(crate) async fn update_where<M: Model>(
    tx: &mut Tx,
    query: &Query<M>,
    changes: &[Set<M>],
) -> Result<u64, Error> {
    refuse_key_change::<M>(changes)?;
    set_where(tx, query, changes, timestamp::now()).await
}

/// `update_where` of any columns, the soft-delete mark included, with
/// `updated_at` set to `now`.
async fn set_where<M: Model>(
    tx: &mut Tx,
    query: &Query<M>,
    changes: &[Set<M>],
    now: std::time::SystemTime,
) -> Result<u64, Error> {
    if changes.is_empty() {
        return Ok(0);
    }
    let changes = &*with_stamp(changes, M::stamp_change(now));
    let mut sql = SqlBuilder::new(M::INFO, tx.dialect());
    sql.push("UPDATE ");
    sql.table();
    statement::render_sets::<M>(&mut sql, changes);
    render_target(query, &mut sql);
    let done = with_backend!(&mut tx.conn, |c, DB| sql.execute::<DB>(c).await)
        .map_err(db_error::<M>("update"))?;
    Ok(done.rows_affected)
}

/// A soft delete marks live rows only, whatever rows the query was asked
/// to see.
/// `None` when there are none: a soft delete of the trash
/// (`only_deleted()`) deletes nothing.
fn live_only<M: Model>(query: &Query<M>, removal: Removal) -> Option<Cow<'_, Query<M>>> {
    if !removal.is_soft::<M>() {
        return Some(Cow::Borrowed(query));
    }
    match query.scope {
        Scope::Live => Some(Cow::Borrowed(query)),
        Scope::Deleted => None,
        Scope::All => {
            let mut live = query.clone();
            live.scope = Scope::Live;
            Some(Cow::Owned(live))
        }
    }
}

/// `delete_all`: each deleted row's hooks and event.
pub(crate) async fn delete_all<M: Model>(
    tx: &mut Tx,
    query: &Query<M>,
    removal: Removal,
) -> Result<u64, Error> {
    let Some(query) = live_only(query, removal) else {
        return Ok(0);
    };
    let query = &*query;
    let soft = removal.is_soft::<M>();
    let hooks = M::hooks();
    let dependents = !M::INFO.dependents.is_empty() && !soft;
    if hooks.is_empty() && M::INFO.events.is_none() && !dependents {
        return delete_where(tx, query, removal).await;
    }
    let mark = tx.mark();
    let mut progress = Progress::bulk(Operation::Delete);
    progress.soft_delete = soft;
    let server = tx.server.clone();
    let returning = server.deletes_returning(&mut tx.conn).await?;
    let read_first = hooks.has(HookPhase::BeforeDelete) || dependents || !returning || soft;
    let marked = if soft {
        soft_delete::marked_fields::<M>()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    // A soft delete's rows as they were before it was marked.
    let mut unmarked: Vec<M> = Vec::new();
    let result = async {
        if read_first {
            rows = query.fetch(&mut tx.conn, Lock::ForUpdate).await?;
            for row in &mut rows {
                progress
                    .run(&[HookPhase::BeforeDelete], tx, row, &[], None)
                    .await?;
            }
            let keys = keys_of(&rows);
            progress.wrote = true;
            if soft {
                let at = timestamp::now();
                let marked = statement::mark_deleted::<M>(tx, &keys, Some(at), at).await?;
                statement::rows_changed_underneath::<M>(marked, keys.len(), Operation::Delete)?;
                unmarked = rows.clone();
                for row in &mut rows {
                    soft_delete::mark(row, at);
                }
            } else {
                M::delete_dependents(tx, &keys, Hooks::Run).await?;
                statement::delete_keys::<M>(tx, &keys).await?;
            }
        } else {
            progress.wrote = true;
            rows = statement::delete_returning(tx, query).await?;
        }
        for row in &mut rows {
            progress
                .run(&[HookPhase::AfterDelete], tx, row, &marked, None)
                .await?;
            crate::model_event::raise(tx, row, Operation::Delete, None, &[]).await?;
        }
        Ok::<_, Error>(rows.len() as u64)
    }
    .await;
    match result {
        Ok(deleted) => {
            let before = if unmarked.is_empty() {
                &rows
            } else {
                &unmarked
            };
            let removed = rows
                .iter()
                .zip(before)
                .map(|(row, before)| (row, Some(before), marked.as_slice()));
            succeeded(tx, removed, Operation::Delete);
            Ok(deleted)
        }
        Err(error) => {
            // The rows as they are again: not marked.
            let rows = if unmarked.is_empty() {
                &rows
            } else {
                &unmarked
            };
            failed(tx, mark, &progress, &error, rows, Operation::Delete);
            Err(error)
        }
    }
}

pub(crate) fn keys_of<M: Entity>(rows: &[M]) -> Vec<M::Key> {
    rows.iter().filter_map(Entity::key).collect()
}

/// `delete_all_quietly`: the relations' actions (quietly too), then one
/// `DELETE`; for a soft delete, one `UPDATE` marking the rows.
async fn delete_quietly<M: Model>(
    tx: &mut Tx,
    query: &Query<M>,
    removal: Removal,
) -> Result<u64, Error> {
    let Some(query) = live_only(query, removal) else {
        return Ok(0);
    };
    let query = &*query;
    if M::INFO.dependents.is_empty() || removal.is_soft::<M>() {
        return delete_where(tx, query, removal).await;
    }
    let keys = keys_of(&query.fetch(&mut tx.conn, Lock::ForUpdate).await?);
    M::delete_dependents(tx, &keys, Hooks::Skip).await?;
    statement::delete_keys::<M>(tx, &keys).await
}

/// One `DELETE … WHERE …` of the query's rows, or for a soft delete one
/// `UPDATE` marking them.
async fn delete_where<M: Model>(
    tx: &mut Tx,
    query: &Query<M>,
    removal: Removal,
) -> Result<u64, Error> {
    if removal.is_soft::<M>() {
        let at = timestamp::now();
        let mark: Vec<Set<M>> = M::soft_delete_change(Some(at)).into_iter().collect();
        return set_where(tx, query, &mark, at).await;
    }
    let sql = delete_sql(query, tx.dialect());
    let done = with_backend!(&mut tx.conn, |c, DB| sql.execute::<DB>(c).await)
        .map_err(db_error::<M>("delete"))?;
    Ok(done.rows_affected)
}

pub(crate) fn delete_sql<M: Model>(query: &Query<M>, dialect: Dialect) -> SqlBuilder {
    let mut sql = SqlBuilder::new(M::INFO, dialect);
    sql.push("DELETE FROM ");
    sql.table();
    render_target(query, &mut sql);
    sql
}

/// How many keys fit in one `IN (…)` besides `reserved` other parameters.
pub(crate) fn keys_per_statement(reserved: usize) -> usize {
    MAX_PARAMS.saturating_sub(reserved).clamp(1, 10_000)
}
