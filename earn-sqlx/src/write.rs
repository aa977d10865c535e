//! The write path: hooks around the SQL, in lifecycle order, in one
//! transaction.

use std::any::Any;

use earn_core::{Error, HookPhase, Operation};

use crate::db::Db;
use crate::guard::{guarded, refuse_inside_a_write};
use crate::hook::{HookContext, Hooks, run_in_tx};
use crate::model::{Entity, Model};
use crate::soft_delete;
use crate::statement::{self, find_row, not_found, stale};
use crate::timestamp;
use crate::tx::Tx;

/// Which write the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Save,
    Insert,
    Update,
    SaveQuietly,
}

/// Runs a write in a transaction of its own: commit on success, roll back
/// (and run `after_rollback`) on failure.
pub(crate) async fn standalone<M: Model>(db: &Db, model: &mut M, how: Write) -> Result<(), Error> {
    let operation = match (how, model.key()) {
        (Write::Insert, _) | (_, None) => Operation::Create,
        _ => Operation::Update,
    };
    refuse_inside_a_write::<M>(operation)?;
    let mut tx = db.begin().await?;
    let result = write(&mut tx, model, how).await;
    finish::<M, _>(tx, result).await
}

/// Whether a delete of a `#[model(soft_delete)]` model marks its row
/// deleted (`Soft`) or removes it (`Force`); a model without one always
/// removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Soft,
    Force,
}

impl Removal {
    /// Whether the delete only marks the rows of `M`.
    pub(crate) fn is_soft<M: Entity>(self) -> bool {
        self == Removal::Soft && M::INFO.soft_delete.is_some()
    }
}

/// Deletes in a transaction of its own.
pub(crate) async fn standalone_delete<M: Model>(
    db: &Db,
    model: &M,
    how: Hooks,
    removal: Removal,
) -> Result<(), Error> {
    refuse_inside_a_write::<M>(Operation::Delete)?;
    let mut tx = db.begin().await?;
    let result = delete(&mut tx, model, how, removal).await;
    finish::<M, _>(tx, result).await
}

/// Commits after a successful write; rolls back after a failed one and
/// returns its error (a failing rollback is only logged: the write's error
/// is the one the caller needs).
pub(crate) async fn finish<M: Entity, T>(tx: Tx, result: Result<T, Error>) -> Result<T, Error> {
    match result {
        Ok(value) => tx.commit().await.map(|()| value),
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
pub(crate) struct Progress {
    /// The model's own statement ran.
    pub(crate) wrote: bool,
    /// A hook used the transaction for its own SQL.
    touched: bool,
    operation: Option<Operation>,
    /// A bulk write (`insert_many`, `update_all`, `delete_all`).
    bulk: bool,
    /// A delete that marks the row of a `#[model(soft_delete)]` model.
    pub(crate) soft_delete: bool,
}

impl Progress {
    /// The progress of a single write of `operation`.
    pub(crate) fn of(operation: Operation) -> Progress {
        Progress {
            operation: Some(operation),
            ..Progress::default()
        }
    }

    /// The progress of a bulk write of `operation`.
    pub(crate) fn bulk(operation: Operation) -> Progress {
        Progress {
            operation: Some(operation),
            bulk: true,
            ..Progress::default()
        }
    }

    /// Runs `phases` in order with a context on `tx`, noting whether a hook
    /// used the transaction.
    pub(crate) async fn run<M: Entity>(
        &mut self,
        phases: &[HookPhase],
        tx: &mut Tx,
        model: &mut M,
        changed: &[&'static str],
        previous: Option<&M>,
    ) -> Result<(), Error> {
        let mut ctx = HookContext::new(
            tx,
            self.operation.unwrap_or(Operation::Create),
            changed,
            previous.map(|p| p as &(dyn Any + Send + Sync)),
            self.bulk,
        );
        ctx.soft_delete = self.soft_delete;
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
    pub(crate) fn poison_on(&self, tx: &mut Tx, error: &Error) {
        if self.wrote || self.touched || matches!(error, Error::Database { .. }) {
            tx.poison(error);
        }
    }
}

/// Whether hooks, events, a version, an `updated_at` (which an update that
/// changes nothing must leave alone) or a soft delete (a soft-deleted row
/// is not updated) need the write to read the persisted row of an update
/// first, and to be guarded.
pub(crate) fn tracked<M: Model>() -> bool {
    !M::hooks().is_empty()
        || M::INFO.events.is_some()
        || M::INFO.version_index.is_some()
        || M::INFO.updated_at.is_some()
        || M::INFO.soft_delete.is_some()
}

pub(crate) fn has_outcome_hooks<M: Model>() -> bool {
    let hooks = M::hooks();
    hooks.has(HookPhase::AfterCommit) || hooks.has(HookPhase::AfterRollback)
}

/// A write of a row that is soft-deleted: refused, as `find` would not find
/// it; `restore` brings it back.
fn soft_deleted<M: Entity>(key: &M::Key, operation: Operation) -> Error {
    Error::SoftDeleted {
        model: M::INFO.name,
        table: M::INFO.table,
        key: format!("{key:?}"),
        operation,
    }
}

/// A write inside the caller's transaction.
pub(crate) async fn write<M: Model>(tx: &mut Tx, model: &mut M, how: Write) -> Result<(), Error> {
    tx.ensure_usable()?;
    tx.write_begins();
    let written = write_begun(tx, model, how).await;
    tx.write_ends();
    written
}

async fn write_begun<M: Model>(tx: &mut Tx, model: &mut M, how: Write) -> Result<(), Error> {
    if how == Write::SaveQuietly {
        tracing::debug!(
            model = M::INFO.name,
            table = M::INFO.table,
            "save_quietly: hooks skipped"
        );
        let written = write_quietly(tx, model).await;
        return Progress::default().settle(tx, written);
    }
    if !tracked::<M>() {
        let mut progress = Progress::default();
        let written = write_steps(tx, model, how, &mut progress).await.map(|_| ());
        return progress.settle(tx, written);
    }
    let (original_key, original_version) = (model.key(), model.version());
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
        Ok(Some(done)) => {
            if has_outcome_hooks::<M>() {
                tx.queue_written(
                    model.clone(),
                    done.operation,
                    done.previous.as_ref(),
                    &done.changed,
                );
            }
            Ok(())
        }
        // Nothing changed: nothing written, nothing to announce.
        Ok(None) => Ok(()),
        Err(error) => {
            model.set_key(original_key);
            if let Some(version) = original_version {
                model.set_version(version);
            }
            tx.drop_events_since(mark);
            progress.poison_on(tx, &error);
            if M::hooks().has(HookPhase::AfterRollback) {
                let operation = progress.operation.unwrap_or(operation);
                tx.queue_outcome(model.clone(), operation, false);
            }
            Err(error)
        }
    }
}

async fn write_quietly<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    let operation = match model.key() {
        None => Operation::Create,
        Some(key) if !M::INFO.auto_key || M::INFO.soft_delete.is_some() => {
            match find_row::<M>(tx, &key, false).await? {
                Some(row) if row.is_deleted() => {
                    return Err(soft_deleted::<M>(&key, Operation::Update));
                }
                Some(_) => Operation::Update,
                None if !M::INFO.auto_key => Operation::Create,
                None => return Err(not_found::<M>(&key, Operation::Update)),
            }
        }
        Some(_) => Operation::Update,
    };
    // Timestamps are data, not hooks: a quiet write sets them too.
    timestamp::stamp(model, operation);
    match operation {
        Operation::Create => statement::insert(tx, model).await,
        _ => statement::update(tx, model).await,
    }
}

/// The changed columns to write: not the key (the row is found by it), the
/// version (always written) or the soft-delete mark (`delete` and `restore`
/// write it, with their hooks).
pub(crate) fn changed_columns<M: Entity>(changed: &[&'static str]) -> Vec<usize> {
    let info = M::INFO;
    info.columns
        .iter()
        .enumerate()
        .filter(|&(index, column)| {
            index != info.key_index
                && Some(index) != info.version_index
                && Some(index) != info.soft_delete
                && changed.contains(&column.field)
        })
        .map(|(index, _)| index)
        .collect()
}

/// A write done: what it did, from which row, to which fields.
struct Done<M> {
    operation: Operation,
    previous: Option<M>,
    changed: std::borrow::Cow<'static, [&'static str]>,
}

/// Decides insert or update, then runs hooks and SQL in lifecycle order,
/// and raises the model's event. `None`: an update that changed nothing,
/// so nothing was written.
async fn write_steps<M: Model>(
    tx: &mut Tx,
    model: &mut M,
    how: Write,
    progress: &mut Progress,
) -> Result<Option<Done<M>>, Error> {
    let tracked = tracked::<M>();
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
                Some(row) if row.is_deleted() => {
                    return Err(soft_deleted::<M>(&key, Operation::Update));
                }
                None if natural => (Operation::Create, None),
                None if tracked => {
                    return Err(not_found::<M>(&key, Operation::Update));
                }
                previous => (Operation::Update, previous),
            }
        }
    };
    progress.operation = Some(operation);
    if let Some(previous) = &previous
        && model.version() != previous.version()
    {
        return Err(stale(model, previous, Operation::Update));
    }

    let changed_before: Vec<&'static str>;
    let changed: &[&'static str] = match (&previous, operation) {
        (Some(previous), _) => {
            changed_before = model.changed_fields(previous);
            &changed_before
        }
        (None, Operation::Create) => M::field_names(),
        (None, _) => &[],
    };
    let (before, after) = match operation {
        Operation::Create => (HookPhase::BeforeCreate, HookPhase::AfterCreate),
        _ => (HookPhase::BeforeUpdate, HookPhase::AfterUpdate),
    };

    progress
        .run(
            &[HookPhase::BeforeSave, before],
            tx,
            model,
            changed,
            previous.as_ref(),
        )
        .await?;

    // Before hooks may have changed fields (normalisation): the write and
    // the after hooks see what is written.
    let mut changed_after: Vec<&'static str> = Vec::new();
    let mut columns = Vec::new();
    let changed: &[&'static str] = match &previous {
        Some(previous) => {
            changed_after = model.changed_fields(previous);
            columns = changed_columns::<M>(&changed_after);
            if columns.is_empty() {
                // Nothing to write: not even `updated_at` moves.
                return Ok(None);
            }
            if let Some(index) = M::INFO.updated_at {
                model.stamp(timestamp::now(), operation);
                let field = M::INFO.columns[index].field;
                if !changed_after.contains(&field) {
                    changed_after.push(field);
                    columns.push(index);
                }
            }
            &changed_after
        }
        None => {
            timestamp::stamp(model, operation);
            changed
        }
    };
    match (operation, &previous) {
        (Operation::Create, _) => {
            progress.wrote = true;
            statement::insert(tx, model).await?;
        }
        (_, Some(_)) => {
            progress.wrote = true;
            statement::update_columns(tx, model, &columns).await?;
        }
        // Untracked: no row was read to compare with.
        (_, None) => {
            progress.wrote = true;
            statement::update(tx, model).await?;
        }
    }

    progress
        .run(
            &[after, HookPhase::AfterSave],
            tx,
            model,
            changed,
            previous.as_ref(),
        )
        .await?;
    // Built and raised before the commit: a model that cannot be
    // serialized, or an event too large for the outbox's sink, fails the
    // write instead of losing its event.
    crate::model_event::raise(tx, model, operation, previous.as_ref(), changed).await?;
    let changed = match &previous {
        Some(_) => std::borrow::Cow::Owned(changed_after),
        None => std::borrow::Cow::Borrowed(M::field_names()),
    };
    Ok(Some(Done {
        operation,
        previous,
        changed,
    }))
}

/// A delete inside the caller's transaction.
pub(crate) async fn delete<M: Model>(
    tx: &mut Tx,
    model: &M,
    how: Hooks,
    removal: Removal,
) -> Result<(), Error> {
    tx.ensure_usable()?;
    tx.write_begins();
    let deleted = delete_begun(tx, model, how, removal).await;
    tx.write_ends();
    deleted
}

/// Removes the row of `model`, or for a soft delete marks it deleted `at`
/// (a row already marked is not found, as `find` would not find it). A
/// soft delete leaves the rows that refer to it alone: the relations'
/// `on_delete` actions run when a row is removed.
async fn remove<M: Model>(
    tx: &mut Tx,
    model: &M,
    key: &M::Key,
    soft: Option<std::time::SystemTime>,
    progress: &mut Progress,
    hooks: Hooks,
) -> Result<(), Error> {
    if let Some(at) = soft {
        if M::INFO.version_index.is_some() {
            // Optimistic locking, as a hard delete's `AND version = ?`.
            match find_row::<M>(tx, key, true).await? {
                Some(row) if !row.is_deleted() && row.version() != model.version() => {
                    return Err(stale(model, &row, Operation::Delete));
                }
                _ => {}
            }
        }
        return match statement::mark_deleted::<M>(tx, std::slice::from_ref(key), Some(at), at)
            .await?
        {
            // Already deleted, or no row: nothing was written.
            0 => Err(not_found::<M>(key, Operation::Delete)),
            _ => {
                progress.wrote = true;
                Ok(())
            }
        };
    }
    M::delete_dependents(tx, std::slice::from_ref(key), hooks).await?;
    progress.wrote = true;
    statement::delete(tx, model).await
}

async fn delete_begun<M: Model>(
    tx: &mut Tx,
    model: &M,
    how: Hooks,
    removal: Removal,
) -> Result<(), Error> {
    let key = model.key().ok_or(Error::MissingKey {
        model: M::INFO.name,
        operation: Operation::Delete,
    })?;
    let hooks = M::hooks();
    if how == Hooks::Skip || (hooks.is_empty() && M::INFO.events.is_none()) {
        if how == Hooks::Skip {
            tracing::debug!(
                model = M::INFO.name,
                table = M::INFO.table,
                "delete_quietly: hooks skipped"
            );
        }
        let mut progress = Progress::default();
        let soft = removal.is_soft::<M>().then(timestamp::now);
        let deleted = remove(tx, model, &key, soft, &mut progress, how).await;
        return progress.settle(tx, deleted);
    }
    let mut progress = Progress {
        operation: Some(Operation::Delete),
        ..Progress::default()
    };
    let mark = tx.mark();
    // In-transaction hooks take `&mut M`; delete hooks only read, so they
    // get a copy rather than forcing `delete(&mut self)` on users.
    let mut copy = model.clone();
    let soft = removal.is_soft::<M>();
    progress.soft_delete = soft;
    // What a soft delete changes: what its after hooks and after_commit see.
    let marked = if soft {
        soft_delete::marked_fields::<M>()
    } else {
        Vec::new()
    };
    let result = guarded::<M, _, _>(Some(&key), Operation::Delete, async {
        progress
            .run(&[HookPhase::BeforeDelete], tx, &mut copy, &[], None)
            .await?;
        let at = soft.then(timestamp::now);
        remove(tx, model, &key, at, &mut progress, Hooks::Run).await?;
        if let Some(at) = at {
            // After hooks, the event and after_commit see the row as it is
            // now: deleted at `at`.
            soft_delete::mark(&mut copy, at);
        }
        progress
            .run(&[HookPhase::AfterDelete], tx, &mut copy, &marked, None)
            .await?;
        crate::model_event::raise(tx, &copy, Operation::Delete, None, &[]).await?;
        Ok(())
    })
    .await;
    let written = result.is_ok();
    if !written {
        tx.drop_events_since(mark);
    }
    let result = progress.settle(tx, result);
    if has_outcome_hooks::<M>() {
        if written {
            tx.queue_written(copy, Operation::Delete, Some(model), &marked);
        } else {
            // The row as it is again, not as a soft delete marked it.
            tx.queue_outcome(model.clone(), Operation::Delete, false);
        }
    }
    result
}
