//! `#[model(soft_delete)]`: `delete` marks the row, queries leave marked
//! rows out unless asked, `restore` brings one back, `force_delete`
//! removes it.

use std::future::Future;
use std::time::SystemTime;

use earn_core::{Error, HookPhase, Operation};

use crate::db::Db;
use crate::guard::{guarded, refuse_inside_a_write};
use crate::hook::Hooks;
use crate::model::{Entity, Model};
use crate::query::{Query, Scope};
use crate::statement::{self, find_row, not_found};
use crate::timestamp;
use crate::tx::Tx;
use crate::write::{self, Progress, Removal, finish, has_outcome_hooks};

/// A model with a `#[model(soft_delete)]` field, implemented by
/// `#[derive(Model)]`: [`delete`](Model::delete) sets the field to the
/// instant of the delete instead of removing the row (its `before_delete`
/// and `after_delete` hooks run, and its `deleted` event is raised, as for
/// any delete), and the row is left out of [`find`](Model::find),
/// [`all`](Model::all), queries and relations until it is restored. Rows
/// that refer to it are left as they are: the relations' `on_delete`
/// actions run when a row is removed, by [`force_delete`](SoftDeletes::force_delete).
///
/// ```
/// use earn::prelude::*;
/// use chrono::{DateTime, Utc};
///
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "documents")]
/// struct Document {
///     #[model(primary_key, auto)]
///     id: Option<i64>,
///     title: String,
///     #[model(soft_delete)]
///     deleted_at: Option<DateTime<Utc>>,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), earn::Error> {
/// # let db = Db::connect("sqlite::memory:").await?;
/// # db.create_table::<Document>().await?;
/// let mut doc = Document { id: None, title: "draft".into(), deleted_at: None };
/// doc.save(&db).await?;
/// let id = doc.id.unwrap();
///
/// doc.delete(&db).await?; // UPDATE documents SET deleted_at = … WHERE id = …
/// assert!(Document::find(&db, id).await?.is_none());
/// assert_eq!(Document::query().count(&db).await?, 0);
///
/// let mut trashed = Document::query().only_deleted().one(&db).await?;
/// assert!(trashed.deleted_at.is_some());
/// trashed.restore(&db).await?; // before_restore, UPDATE, after_restore
/// assert!(Document::find(&db, id).await?.is_some());
///
/// trashed.force_delete(&db).await?; // DELETE FROM documents …
/// assert_eq!(Document::query().with_deleted().count(&db).await?, 0);
/// # Ok(()) }
/// ```
pub trait SoftDeletes: Model {
    /// Removes the row for good (`DELETE`), soft-deleted or not, running
    /// the delete hooks ([`HookContext::is_soft_delete`](crate::HookContext::is_soft_delete)
    /// is `false`), the relations' `on_delete` actions and the `deleted`
    /// event; [`Error::NotFound`] if there is no row.
    fn force_delete(&self, db: &Db) -> impl Future<Output = Result<(), Error>> + Send {
        write::standalone_delete(db, self, Hooks::Run, Removal::Force)
    }

    /// [`force_delete`](SoftDeletes::force_delete) inside the caller's
    /// transaction.
    fn force_delete_in(&self, tx: &mut Tx) -> impl Future<Output = Result<(), Error>> + Send {
        write::delete(tx, self, Hooks::Run, Removal::Force)
    }

    /// Brings a soft-deleted row back: reads it (locked), runs the
    /// `before_restore` hooks, clears the `soft_delete` field (and sets
    /// `updated_at`), runs the `after_restore` hooks and raises the
    /// `restored` event; `after_commit` hooks with `on = "restore"` run
    /// after the commit. The model then holds the row as stored: fields
    /// changed on it before the call are not written (save them after).
    ///
    /// A row that is not deleted is left alone (no hooks, no event);
    /// [`Error::NotFound`] if there is no row.
    fn restore(&mut self, db: &Db) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            refuse_inside_a_write::<Self>(Operation::Restore)?;
            let mut tx = db.begin().await?;
            let result = restore_in(&mut tx, self).await;
            finish::<Self, _>(tx, result).await
        }
    }

    /// [`restore`](SoftDeletes::restore) inside the caller's transaction.
    fn restore_in(&mut self, tx: &mut Tx) -> impl Future<Output = Result<(), Error>> + Send {
        restore_in(tx, self)
    }
}

impl<M: SoftDeletes> Query<M> {
    /// The query over every row, soft-deleted or not.
    #[must_use]
    pub fn with_deleted(mut self) -> Self {
        self.scope = Scope::All;
        self
    }

    /// The query over soft-deleted rows only (the trash).
    #[must_use]
    pub fn only_deleted(mut self) -> Self {
        self.scope = Scope::Deleted;
        self
    }

    /// Removes every matching row for good, with hooks, relations'
    /// `on_delete` actions and events, as
    /// [`delete_all`](Query::delete_all) does for a model without soft
    /// delete. `M::query().only_deleted().force_delete_all(&db)` empties
    /// the trash.
    pub async fn force_delete_all(&self, db: &Db) -> Result<u64, Error> {
        crate::bulk::standalone(db, crate::bulk::Bulk::Delete(self, Removal::Force)).await
    }

    /// [`force_delete_all`](Query::force_delete_all) in the caller's
    /// transaction.
    pub async fn force_delete_all_in(&self, tx: &mut Tx) -> Result<u64, Error> {
        crate::bulk::write(tx, crate::bulk::Bulk::Delete(self, Removal::Force)).await
    }
}

/// The fields a soft delete writes: the mark, `updated_at` and the
/// version, in declaration order.
pub(crate) fn marked_fields<M: Entity>() -> Vec<&'static str> {
    let info = M::INFO;
    let mut columns: Vec<usize> = [info.soft_delete, info.updated_at, info.version_index]
        .into_iter()
        .flatten()
        .collect();
    // In declaration order, as `changed` lists fields.
    columns.sort_unstable();
    columns
        .into_iter()
        .map(|index| info.columns[index].field)
        .collect()
}

/// Makes `model` what its row is after a soft delete at `at`: marked,
/// updated then, at the next version.
pub(crate) fn mark<M: Entity>(model: &mut M, at: SystemTime) {
    model.set_deleted(Some(at));
    model.stamp(at, Operation::Update);
    if let Some(version) = model.version() {
        model.set_version(version + 1);
    }
}

async fn restore_in<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    tx.ensure_usable()?;
    tx.write_begins();
    let restored = restore_begun(tx, model).await;
    tx.write_ends();
    restored
}

async fn restore_begun<M: Model>(tx: &mut Tx, model: &mut M) -> Result<(), Error> {
    let key = model.key().ok_or(Error::MissingKey {
        model: M::INFO.name,
        operation: Operation::Restore,
    })?;
    let original = model.clone();
    let mark = tx.mark();
    let mut progress = Progress::of(Operation::Restore);
    let result = guarded::<M, _, _>(Some(&key), Operation::Restore, async {
        let previous = find_row::<M>(tx, &key, true)
            .await?
            .ok_or_else(|| not_found::<M>(&key, Operation::Restore))?;
        *model = previous.clone();
        if !previous.is_deleted() {
            return Ok(None);
        }
        let now = timestamp::now();
        model.set_deleted(None);
        model.stamp(now, Operation::Update);
        if let Some(version) = previous.version() {
            model.set_version(version + 1);
        }
        let changed = model.changed_fields(&previous);
        progress
            .run(
                &[HookPhase::BeforeRestore],
                tx,
                model,
                &changed,
                Some(&previous),
            )
            .await?;
        progress.wrote = true;
        if statement::mark_deleted::<M>(tx, std::slice::from_ref(&key), None, now).await? == 0 {
            return Err(not_found::<M>(&key, Operation::Restore));
        }
        progress
            .run(
                &[HookPhase::AfterRestore],
                tx,
                model,
                &changed,
                Some(&previous),
            )
            .await?;
        crate::model_event::raise(tx, model, Operation::Restore, Some(&previous), &changed).await?;
        Ok(Some((previous, changed)))
    })
    .await;
    match result {
        Ok(restored) => {
            if let Some((previous, changed)) = restored
                && has_outcome_hooks::<M>()
            {
                tx.queue_written(model.clone(), Operation::Restore, Some(&previous), &changed);
            }
            Ok(())
        }
        Err(error) => {
            *model = original;
            tx.drop_events_since(mark);
            progress.poison_on(tx, &error);
            if M::hooks().has(HookPhase::AfterRollback) {
                tx.queue_outcome(model.clone(), Operation::Restore, false);
            }
            Err(error)
        }
    }
}
