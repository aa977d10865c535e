//! The write and read paths: hooks around the SQL, in order, in one
//! transaction.

use std::any::Any;

use earn_core::{Error, Event, HookPhase, Operation};

use crate::backend::{Backend, Dialect};
use crate::connection::with_backend;
use crate::db::Db;
use crate::guard::guarded;
use crate::hook::{HookContext, run_detached, run_in_tx};
use crate::model::{Entity, Model, Row};
use crate::model_event::model_event;
use crate::tx::Tx;

/// Which write the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Save,
    Insert,
    Update,
    SaveQuietly,
}

fn db_error<M: Entity>(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database {
        table: M::INFO.table.into(),
        operation,
        source: Box::new(source),
    }
}

/// Runs a write in a transaction of its own: commit on success, roll back
/// (and run `after_rollback`) on failure.
pub(crate) async fn standalone<M: Model>(db: &Db, model: &mut M, how: Write) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    let result = write(&mut tx, model, how).await;
    finish::<M>(tx, result).await
}

/// Deletes in a transaction of its own.
pub(crate) async fn standalone_delete<M: Model>(
    db: &Db,
    model: &M,
    hooked: bool,
) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    let result = delete(&mut tx, model, hooked).await;
    finish::<M>(tx, result).await
}

/// Commits after a successful write; rolls back after a failed one and
/// returns its error (a failing rollback is only logged: the write's error
/// is the one the caller needs).
async fn finish<M: Entity>(tx: Tx, result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Ok(()) => tx.commit().await,
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(model = M::INFO.name, %rollback, "rollback after a failed write failed");
            }
            Err(error)
        }
    }
}

/// What a failed write did before failing, to decide whether the caller's
/// transaction can still commit.
#[derive(Default)]
struct Progress {
    /// The model's own statement ran.
    wrote: bool,
    /// A hook used the transaction for its own SQL.
    touched: bool,
    operation: Option<Operation>,
}

impl Progress {
    /// Runs `phases` in order with a context on `tx`, noting whether a hook
    /// used the transaction.
    async fn run<M: Entity>(
        &mut self,
        phases: &[HookPhase],
        tx: &mut Tx,
        model: &mut M,
        operation: Operation,
        changed: &[&'static str],
        previous: Option<&(dyn Any + Send + Sync)>,
    ) -> Result<(), Error> {
        let mut ctx = HookContext {
            tx,
            operation,
            changed,
            previous,
            touched: false,
        };
        let mut ran = Ok(());
        for &phase in phases {
            ran = run_in_tx(phase, model, &mut ctx).await;
            if ran.is_err() {
                break;
            }
        }
        self.touched |= ctx.touched;
        ran
    }

    /// Poisons the transaction if `result` is a failure that requires it.
    fn settle<T>(&self, tx: &mut Tx, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(error) = &result {
            self.poison_on(tx, error);
        }
        result
    }

    /// A failure after the database was changed (by the write, a hook's own
    /// SQL, or a failed statement) leaves the caller's transaction unable
    /// to commit.
    fn poison_on(&self, tx: &mut Tx, error: &Error) {
        if self.wrote || self.touched || matches!(error, Error::Database { .. }) {
            tx.poison(error);
        }
    }
}

/// A write inside the caller's transaction.
pub(crate) async fn write<M: Model>(tx: &mut Tx, model: &mut M, how: Write) -> Result<(), Error> {
    tx.ensure_usable()?;
    if how == Write::SaveQuietly {
        tracing::debug!(
            model = M::INFO.name,
            table = M::INFO.table,
            "save_quietly: hooks skipped"
        );
        let written = write_quietly(tx, model).await;
        return Progress::default().settle(tx, written);
    }
    let hooks = M::hooks();
    if hooks.is_empty() && M::INFO.events.is_none() {
        let mut progress = Progress::default();
        let written = write_steps(tx, model, how, &mut progress).await.map(|_| ());
        return progress.settle(tx, written);
    }
    let original_key = model.key();
    let operation = if original_key.is_none() {
        Operation::Create
    } else {
        Operation::Update
    };
    let mut progress = Progress::default();
    let mark = tx.mark();
    let result = guarded::<M, _, _>(
        original_key.as_ref(),
        operation,
        write_steps(tx, model, how, &mut progress),
    )
    .await;
    match result {
        Ok((operation, event)) => {
            if hooks.has(HookPhase::AfterCommit) || hooks.has(HookPhase::AfterRollback) {
                tx.queue_outcome(model.clone(), operation, true);
            }
            match event {
                Some(event) => {
                    let raised = tx.raise(event);
                    progress.settle(tx, raised)
                }
                None => Ok(()),
            }
        }
        Err(error) => {
            model.set_key(original_key);
            tx.drop_events_since(mark);
            progress.poison_on(tx, &error);
            if hooks.has(HookPhase::AfterRollback) {
                let operation = progress.operation.unwrap_or(operation);
                tx.queue_outcome(model.clone(), operation, false);
            }
            Err(error)
        }
    }
}

async fn write_quietly<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    let operation = match (model.key(), M::INFO.auto_key) {
        (None, _) => Operation::Create,
        (Some(key), false) if find_row::<M>(tx, &key, false).await?.is_none() => Operation::Create,
        _ => Operation::Update,
    };
    match operation {
        Operation::Create => exec_insert(tx, model).await,
        _ => exec_update(tx, model).await,
    }
}

/// Decides insert or update, then runs hooks and SQL in lifecycle order.
async fn write_steps<M: Model>(
    tx: &mut Tx,
    model: &mut M,
    how: Write,
    progress: &mut Progress,
) -> Result<(Operation, Option<Event>), Error> {
    let hooks = M::hooks();
    // Hooks and events see the persisted row of an update.
    let tracked = !hooks.is_empty() || M::INFO.events.is_some();
    let key = model.key();
    let (operation, previous) = match (how, key) {
        (Write::Insert, Some(key)) if M::INFO.auto_key => {
            return Err(Error::AlreadyPersisted {
                model: M::INFO.name,
                key: format!("{key:?}"),
            });
        }
        (Write::Insert, _) | (Write::Save | Write::SaveQuietly, None) => (Operation::Create, None),
        (Write::Update, None) => {
            return Err(Error::MissingKey {
                model: M::INFO.name,
                operation: Operation::Update,
            });
        }
        (_, Some(key)) => {
            // The persisted row decides insert or update for a natural key;
            // hooks get it as `ctx.previous()`.
            let natural = !M::INFO.auto_key && how == Write::Save;
            let previous = if natural || tracked {
                find_row::<M>(tx, &key, true).await?
            } else {
                None
            };
            match previous {
                None if natural => (Operation::Create, None),
                None if tracked => {
                    return Err(not_found::<M>(&key, Operation::Update));
                }
                previous => (Operation::Update, previous),
            }
        }
    };
    progress.operation = Some(operation);

    let changed_before: Vec<&'static str>;
    let changed: &[&'static str] = match (&previous, operation) {
        (Some(previous), _) => {
            changed_before = model.changed_fields(previous);
            &changed_before
        }
        (None, Operation::Create) => M::field_names(),
        (None, _) => &[],
    };
    let previous_any = previous.as_ref().map(|p| p as &(dyn Any + Send + Sync));
    let (before, after) = match operation {
        Operation::Create => (HookPhase::BeforeCreate, HookPhase::AfterCreate),
        _ => (HookPhase::BeforeUpdate, HookPhase::AfterUpdate),
    };

    progress
        .run(
            &[HookPhase::BeforeSave, before],
            tx,
            model,
            operation,
            changed,
            previous_any,
        )
        .await?;

    progress.wrote = true;
    match operation {
        Operation::Create => exec_insert(tx, model).await?,
        _ => exec_update(tx, model).await?,
    }

    // Before hooks may have changed fields (normalisation): after hooks see
    // what was written.
    let changed_after: Vec<&'static str>;
    let changed: &[&'static str] = match &previous {
        Some(previous) => {
            changed_after = model.changed_fields(previous);
            &changed_after
        }
        None => changed,
    };
    progress
        .run(
            &[after, HookPhase::AfterSave],
            tx,
            model,
            operation,
            changed,
            previous_any,
        )
        .await?;
    // Built before the commit: a model that cannot be serialized fails the
    // write instead of losing its event.
    let event = model_event(model, operation, previous.as_ref(), changed)?;
    Ok((operation, event))
}

fn not_found<M: Entity>(key: &M::Key, operation: Operation) -> Error {
    Error::NotFound {
        model: M::INFO.name,
        table: M::INFO.table,
        key: format!("{key:?}"),
        operation,
    }
}

async fn exec_insert<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    let key = with_backend!(&mut tx.conn, |c, DB| insert_on::<DB, M>(c, model).await)
        .map_err(db_error::<M>("insert"))?;
    if M::INFO.auto_key {
        model.set_key(key);
    }
    Ok(())
}

async fn exec_update<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    let affected = with_backend!(&mut tx.conn, |c, DB| update_on::<DB, M>(c, model).await)
        .map_err(db_error::<M>("update"))?;
    if affected == 0 {
        let key = model.key().ok_or(Error::MissingKey {
            model: M::INFO.name,
            operation: Operation::Update,
        })?;
        return Err(not_found::<M>(&key, Operation::Update));
    }
    Ok(())
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

async fn delete_on<DB: Backend, M: Row<DB>>(
    c: &mut DB::Connection,
    key: &M::Key,
) -> Result<u64, sqlx::Error> {
    let mut args = DB::Arguments::default();
    M::bind_key(key, &mut args).map_err(sqlx::Error::Encode)?;
    Ok(DB::run(c, M::INFO.sql(DB::DIALECT).delete, args)
        .await?
        .rows_affected)
}

async fn find_on<DB: Backend, M: Row<DB>>(
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

async fn all_on<DB: Backend, M: Row<DB>>(c: &mut DB::Connection) -> Result<Vec<M>, sqlx::Error> {
    let rows = DB::fetch_all(c, M::INFO.sql(DB::DIALECT).all, DB::Arguments::default()).await?;
    rows.iter().map(M::decode).collect()
}

/// Reads a row without hooks.
async fn find_row<M: Model>(
    tx: &mut Tx,
    key: &M::Key,
    for_update: bool,
) -> Result<Option<M>, Error> {
    with_backend!(&mut tx.conn, |c, DB| find_on::<DB, M>(c, key, for_update)
        .await)
    .map_err(db_error::<M>("select"))
}

/// A delete inside the caller's transaction.
pub(crate) async fn delete<M: Model>(tx: &mut Tx, model: &M, hooked: bool) -> Result<(), Error> {
    tx.ensure_usable()?;
    let key = model.key().ok_or(Error::MissingKey {
        model: M::INFO.name,
        operation: Operation::Delete,
    })?;
    let hooks = M::hooks();
    if !hooked || (hooks.is_empty() && M::INFO.events.is_none()) {
        if !hooked {
            tracing::debug!(
                model = M::INFO.name,
                table = M::INFO.table,
                "delete_quietly: hooks skipped"
            );
        }
        let deleted = exec_delete::<M>(tx, &key).await;
        return Progress::default().settle(tx, deleted);
    }
    let mut progress = Progress::default();
    let mark = tx.mark();
    // In-transaction hooks take `&mut M`; delete hooks only read, so they
    // get a copy rather than forcing `delete(&mut self)` on users.
    let mut copy = model.clone();
    let result = guarded::<M, _, _>(Some(&key), Operation::Delete, async {
        progress
            .run(
                &[HookPhase::BeforeDelete],
                tx,
                &mut copy,
                Operation::Delete,
                &[],
                None,
            )
            .await?;
        progress.wrote = true;
        exec_delete::<M>(tx, &key).await?;
        let event = model_event(model, Operation::Delete, None, &[])?;
        progress
            .run(
                &[HookPhase::AfterDelete],
                tx,
                &mut copy,
                Operation::Delete,
                &[],
                None,
            )
            .await?;
        Ok(event)
    })
    .await;
    let written = result.is_ok();
    if !written {
        tx.drop_events_since(mark);
    }
    let result = progress.settle(tx, result);
    if hooks.has(HookPhase::AfterCommit) || hooks.has(HookPhase::AfterRollback) {
        tx.queue_outcome(copy, Operation::Delete, written);
    }
    match result? {
        Some(event) => {
            let raised = tx.raise(event);
            progress.settle(tx, raised)
        }
        None => Ok(()),
    }
}

async fn exec_delete<M: Model>(tx: &mut Tx, key: &M::Key) -> Result<(), Error> {
    let affected = with_backend!(&mut tx.conn, |c, DB| delete_on::<DB, M>(c, key).await)
        .map_err(db_error::<M>("delete"))?;
    if affected == 0 {
        return Err(not_found::<M>(key, Operation::Delete));
    }
    Ok(())
}

/// `M::find`: reads outside any transaction, then `after_load`.
pub(crate) async fn find<M: Model>(db: &Db, key: M::Key) -> Result<Option<M>, Error> {
    let mut conn = db.acquire().await?;
    let found = with_backend!(&mut conn, |c, DB| find_on::<DB, M>(c, &key, false).await)
        .map_err(db_error::<M>("select"))?;
    drop(conn);
    loaded(found).await
}

/// `M::find_in`: reads in a transaction, then `after_load`.
pub(crate) async fn find_in<M: Model>(tx: &mut Tx, key: M::Key) -> Result<Option<M>, Error> {
    let found = find_row::<M>(tx, &key, false).await?;
    loaded(found).await
}

async fn loaded<M: Model>(found: Option<M>) -> Result<Option<M>, Error> {
    match found {
        Some(mut model) => {
            run_detached(HookPhase::AfterLoad, &mut model).await?;
            Ok(Some(model))
        }
        None => Ok(None),
    }
}

/// `M::all`: every row ordered by key, then `after_load` on each.
pub(crate) async fn all<M: Model>(db: &Db) -> Result<Vec<M>, Error> {
    let mut conn = db.acquire().await?;
    let mut rows = with_backend!(&mut conn, |c, DB| all_on::<DB, M>(c).await)
        .map_err(db_error::<M>("select"))?;
    drop(conn);
    if M::hooks().has(HookPhase::AfterLoad) {
        for row in &mut rows {
            run_detached(HookPhase::AfterLoad, row).await?;
        }
    }
    Ok(rows)
}
