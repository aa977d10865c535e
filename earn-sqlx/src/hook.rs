//! Typed hooks, the context they receive, and the loop that runs a phase.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use earn_core::{Error, FieldErrors, HookError, HookPhase, Operation};

use crate::deferred::{BoxFuture, Outcome};
use crate::model::Entity;
use crate::tx::Tx;

/// What a generated hook shim returns: a finished result for a sync hook
/// (no allocation), or the future of an async one.
pub enum HookStep<'a> {
    /// The hook already ran.
    Ready(Result<(), HookError>),
    /// The hook's future.
    Pending(Pin<Box<dyn Future<Output = Result<(), HookError>> + Send + 'a>>),
}

/// The call of a hook, adapted by the shim `#[hooks]` generates around the
/// user's method.
pub enum HookFn<M> {
    /// A hook of an in-transaction phase.
    InTx(for<'a, 'b> fn(&'a mut M, &'a mut HookContext<'b>) -> HookStep<'a>),
    /// A hook of `after_commit`, `after_rollback` or `after_load`, which run
    /// outside any transaction.
    Detached(for<'a> fn(&'a mut M) -> HookStep<'a>),
    /// An `after_commit` hook that takes what the whole transaction changed
    /// in the row.
    Committed(for<'a> fn(&'a mut M, &'a TransactionChanges<M>) -> HookStep<'a>),
}

/// One hook of a model with its conditions, built by `#[hooks]`.
pub struct Hook<M> {
    /// The shim calling the user's method.
    pub call: HookFn<M>,
    /// `on = "create" | "update" | "delete"`: the only operation it runs for.
    pub on: Option<Operation>,
    /// `if = path`: runs only when this returns `true`.
    pub condition: Option<fn(&M) -> bool>,
    /// `when_changed = "field"`: on update, runs only when one of these
    /// fields changed (on create every field counts as changed).
    pub when_changed: &'static [&'static str],
}

impl std::fmt::Debug for HookStep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookStep::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            HookStep::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

impl<M> std::fmt::Debug for HookFn<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookFn::InTx(_) => "InTx(..)",
            HookFn::Detached(_) => "Detached(..)",
            HookFn::Committed(_) => "Committed(..)",
        })
    }
}

impl<M> std::fmt::Debug for Hook<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("call", &self.call)
            .field("on", &self.on)
            .field("condition", &self.condition.is_some())
            .field("when_changed", &self.when_changed)
            .finish()
    }
}

impl<M> Hook<M> {
    #[inline]
    fn applies(&self, model: &M, operation: Operation, changed: &[&'static str]) -> bool {
        if self.on.is_some_and(|on| on != operation) {
            return false;
        }
        if !self.when_changed.is_empty()
            && operation == Operation::Update
            && !self.when_changed.iter().any(|f| changed.contains(f))
        {
            return false;
        }
        self.condition.is_none_or(|condition| condition(model))
    }
}

/// Whether a write runs hooks and raises events (`Run`), or is one of the
/// `_quietly` forms (`Skip`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hooks {
    /// Hooks run and events are raised.
    Run,
    /// Neither: a `_quietly` write.
    Skip,
}

/// Converts what a hook returns, `()` or `Result<(), E: Into<HookError>>`,
/// into its result.
#[diagnostic::on_unimplemented(
    message = "a hook must return `()` or `Result<(), E>` where `E: Into<HookError>`, not `{Self}`",
    label = "this hook returns `{Self}`",
    note = "return `Result<(), HookError>` and use `HookError::invalid(field, message)`, `HookError::abort(message)` (for a `String` error), or `?` on any std error"
)]
pub trait IntoHookResult {
    /// The result.
    fn into_hook_result(self) -> Result<(), HookError>;
}

impl IntoHookResult for () {
    #[inline]
    fn into_hook_result(self) -> Result<(), HookError> {
        Ok(())
    }
}

// Not recommended in errors: a `Result<(), String>` then gets the trait's
// own message (what to return instead) rather than a chain of `From`
// bounds ending in `String: std::error::Error`.
#[diagnostic::do_not_recommend]
impl<E: Into<HookError>> IntoHookResult for Result<(), E> {
    #[inline]
    fn into_hook_result(self) -> Result<(), HookError> {
        self.map_err(Into::into)
    }
}

/// What an in-transaction hook can see and do.
///
/// ```no_run
/// use earn::prelude::*;
///
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "accounts")]
/// struct Account {
///     #[model(primary_key, auto)]
///     id: Option<i64>,
///     balance: i64,
/// }
///
/// #[hooks]
/// impl Account {
///     #[before_update]
///     fn no_overdraft(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
///         let before = ctx.previous::<Account>().map_or(0, |a| a.balance);
///         if ctx.is_changed("balance") && self.balance < 0 {
///             return Err(HookError::invalid("balance", format!("{before} → {} is an overdraft", self.balance)));
///         }
///         Ok(())
///     }
/// }
/// ```
pub struct HookContext<'t> {
    pub(crate) tx: &'t mut Tx,
    pub(crate) operation: Operation,
    pub(crate) changed: &'t [&'static str],
    pub(crate) previous: Option<&'t (dyn Any + Send + Sync)>,
    pub(crate) touched: bool,
    pub(crate) bulk: bool,
    /// Added with [`HookContext::invalid`], and the first hook that added
    /// one: the write fails with them when its phase ends.
    pub(crate) errors: FieldErrors,
    pub(crate) reported_by: Option<&'static str>,
    pub(crate) soft_delete: bool,
}

impl std::fmt::Debug for HookContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookContext")
            .field("operation", &self.operation)
            .field("changed", &self.changed)
            .field("bulk", &self.bulk)
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

impl<'t> HookContext<'t> {
    pub(crate) fn new(
        tx: &'t mut Tx,
        operation: Operation,
        changed: &'t [&'static str],
        previous: Option<&'t (dyn Any + Send + Sync)>,
        bulk: bool,
    ) -> Self {
        HookContext {
            tx,
            operation,
            changed,
            previous,
            touched: false,
            bulk,
            errors: FieldErrors::new(),
            reported_by: None,
            soft_delete: false,
        }
    }

    /// The live transaction of the write. SQL run on it, and models saved
    /// with `save_in(ctx.tx())`, join the write: they commit or roll back
    /// with it.
    pub fn tx(&mut self) -> &mut Tx {
        self.touched = true;
        self.tx
    }

    /// The operation being performed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// On update, the fields whose value differs from the persisted row; on
    /// create, every field; on delete, none.
    pub fn changed(&self) -> &[&'static str] {
        self.changed
    }

    /// Raises `event` in the write's transaction: it is published after the
    /// outermost commit (after every `after_commit` hook), and dropped if
    /// the write or the transaction (or the savepoint it was raised in)
    /// rolls back. See [`Tx::raise`].
    ///
    /// ```
    /// use earn::prelude::*;
    ///
    /// #[derive(Debug, Clone, Model)]
    /// #[model(table = "payments")]
    /// struct Payment {
    ///     #[model(primary_key, auto)]
    ///     id: Option<i64>,
    ///     cents: i64,
    /// }
    ///
    /// #[hooks]
    /// impl Payment {
    ///     #[after_create]
    ///     fn announce(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
    ///         if self.cents > 100_000 {
    ///             ctx.raise(Event::new("payment.large", &self.cents)?)?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn raise(&mut self, event: earn_core::Event) -> Result<(), Error> {
        self.tx.raise(event)
    }

    /// Whether the write is one row of a bulk write
    /// ([`insert_many`](crate::Model::insert_many),
    /// [`update_all`](crate::Query::update_all),
    /// [`delete_all`](crate::Query::delete_all)), which runs the before
    /// hooks of every row, then its statements, then the after hooks of
    /// every row. A hook that is costly per row can do its work once per
    /// batch elsewhere, or skip what a bulk write does not need.
    pub fn is_bulk(&self) -> bool {
        self.bulk
    }

    /// Records that `field` is invalid and lets the hook, and the other
    /// hooks of its phase, go on: the write fails once the phase's hooks
    /// have run, with every error recorded (and those of a hook that
    /// returns [`HookError::Invalid`]), read back with
    /// [`Error::field_errors`]. Validation hooks written this way report
    /// every problem of a model at once, not the first.
    ///
    /// ```
    /// use earn::prelude::*;
    ///
    /// #[derive(Debug, Clone, Model)]
    /// #[model(table = "signups")]
    /// struct Signup {
    ///     #[model(primary_key, auto)]
    ///     id: Option<i64>,
    ///     email: String,
    ///     name: String,
    /// }
    ///
    /// #[hooks]
    /// impl Signup {
    ///     #[before_save]
    ///     fn email_valid(&self, ctx: &mut HookContext<'_>) {
    ///         if !self.email.contains('@') {
    ///             ctx.invalid("email", "must contain '@'");
    ///         }
    ///     }
    ///
    ///     #[before_save]
    ///     fn name_present(&self, ctx: &mut HookContext<'_>) {
    ///         if self.name.is_empty() {
    ///             ctx.invalid("name", "must not be empty");
    ///         }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), earn::Error> {
    /// # let db = Db::connect("sqlite::memory:").await?;
    /// # db.create_table::<Signup>().await?;
    /// let mut signup = Signup { id: None, email: "nobody".into(), name: String::new() };
    /// let error = signup.save(&db).await.unwrap_err();
    /// let errors = error.field_errors().expect("validation failed");
    /// assert_eq!(errors.get("email"), ["must contain '@'"]);
    /// assert_eq!(errors.get("name"), ["must not be empty"]);
    /// assert!(signup.id.is_none()); // nothing was written
    /// # Ok(()) }
    /// ```
    pub fn invalid(
        &mut self,
        field: impl Into<std::borrow::Cow<'static, str>>,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) {
        self.errors.add(field, message);
    }

    /// Whether a hook of this write recorded an error with
    /// [`invalid`](HookContext::invalid), so far.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Whether the write is a delete that marks the row of a
    /// `#[model(soft_delete)]` model deleted rather than removing it (see
    /// [`SoftDeletes`](crate::SoftDeletes)); `false` for a
    /// [`force_delete`](crate::SoftDeletes::force_delete).
    pub fn is_soft_delete(&self) -> bool {
        self.soft_delete
    }

    /// Whether `field` is in [`changed`](HookContext::changed).
    pub fn is_changed(&self, field: &str) -> bool {
        self.changed.contains(&field)
    }

    /// On update, the row as it was persisted before this write (read in
    /// the same transaction, locked where the database allows). `None` on
    /// create and delete, or if `M` is not the model being written.
    pub fn previous<M: Entity>(&self) -> Option<&M> {
        self.previous?.downcast_ref::<M>()
    }
}

/// Runs the hooks of an in-transaction `phase`, in order, stopping at the
/// first error.
pub(crate) async fn run_in_tx<M: Entity>(
    phase: HookPhase,
    model: &mut M,
    ctx: &mut HookContext<'_>,
) -> Result<(), Error> {
    for (hook, name) in M::hooks().phase(phase) {
        if !hook.applies(model, ctx.operation, ctx.changed) {
            continue;
        }
        let step = match hook.call {
            HookFn::InTx(call) => call(model, ctx),
            HookFn::Detached(call) => call(model),
            // Only `after_commit` hooks take changes: never in a transaction.
            HookFn::Committed(_) => continue,
        };
        let ran = finish(step).await;
        if ctx.reported_by.is_none() && !ctx.errors.is_empty() {
            ctx.reported_by = Some(name);
        }
        if let Err(mut error) = ran {
            // Errors recorded with `ctx.invalid` come first, then the
            // hook's own: the caller gets every one.
            if let HookError::Invalid(errors) = &mut error
                && !ctx.errors.is_empty()
            {
                let mut all = std::mem::take(&mut ctx.errors);
                all.merge(std::mem::take(errors));
                *errors = all;
            }
            return Err(Error::hook(M::INFO.name, phase, name, error));
        }
    }
    match ctx.reported_by.take() {
        Some(name) => Err(Error::hook(
            M::INFO.name,
            phase,
            name,
            HookError::Invalid(std::mem::take(&mut ctx.errors)),
        )),
        None => Ok(()),
    }
}

/// Runs the hooks of a detached `phase` (`after_load`), stopping at the
/// first error.
pub(crate) async fn run_detached<M: Entity>(phase: HookPhase, model: &mut M) -> Result<(), Error> {
    for (hook, name) in M::hooks().phase(phase) {
        if !hook.applies(model, Operation::Create, &[]) {
            continue;
        }
        if let HookFn::Detached(call) = hook.call {
            finish(call(model))
                .await
                .map_err(|error| Error::hook(M::INFO.name, phase, name, error))?;
        }
    }
    Ok(())
}

/// What a whole transaction changed in one row: every field changed by any
/// write of it in the transaction, from the row as it was before the
/// transaction to the row as its last write left it. An `after_commit`
/// hook receives it as a second parameter (Rails' `transaction_changes`):
/// a row saved three times in one transaction runs the hook three times,
/// and each call sees the same, whole, changes.
///
/// Writes rolled back (a failed write, a savepoint rolled back) are not in
/// it.
///
/// ```
/// use earn::prelude::*;
/// use earn::TransactionChanges;
///
/// #[derive(Debug, Clone, Model)]
/// #[model(table = "accounts")]
/// struct Account {
///     #[model(primary_key, auto)]
///     id: Option<i64>,
///     email: String,
///     plan: String,
/// }
///
/// #[hooks]
/// impl Account {
///     #[after_commit(on = "update")]
///     fn notify(&self, changes: &TransactionChanges<Account>) {
///         if changes.is_changed("email") {
///             let old = changes.before().map(|a| a.email.as_str());
///             println!("email {old:?} → {}", changes.after().email);
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TransactionChanges<M> {
    before: Option<M>,
    after: M,
    changed: Vec<&'static str>,
    created: bool,
    deleted: bool,
}

impl<M> TransactionChanges<M> {
    /// The row as it was before the transaction; `None` for a row the
    /// transaction created.
    pub fn before(&self) -> Option<&M> {
        self.before.as_ref()
    }

    /// The row as the transaction's last write of it left it (for a delete,
    /// the row as it was when deleted).
    pub fn after(&self) -> &M {
        &self.after
    }

    /// Every field a write of the transaction changed (every field for a
    /// row it created), in the order first changed. A field changed and
    /// changed back is listed: compare [`before`](Self::before) and
    /// [`after`](Self::after) to tell.
    pub fn changed(&self) -> &[&'static str] {
        &self.changed
    }

    /// Whether `field` is in [`changed`](Self::changed).
    pub fn is_changed(&self, field: &str) -> bool {
        self.changed.contains(&field)
    }

    /// Whether the transaction created the row.
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// Whether the transaction deleted the row (or soft-deleted it).
    pub fn was_deleted(&self) -> bool {
        self.deleted
    }
}

/// The changes of every row the transaction wrote, by model and key, built
/// when it commits.
#[derive(Default)]
pub(crate) struct Changes {
    by_model: std::collections::HashMap<std::any::TypeId, Box<dyn Any + Send + Sync>>,
}

type RowChanges<M> =
    std::collections::HashMap<<M as Entity>::Key, std::sync::Arc<TransactionChanges<M>>>;

impl Changes {
    fn rows<M: Entity>(&mut self) -> &mut RowChanges<M> {
        self.by_model
            .entry(std::any::TypeId::of::<M>())
            .or_insert_with(|| Box::new(RowChanges::<M>::new()))
            .downcast_mut()
            .expect("changes are stored by their model's TypeId")
    }

    fn of<M: Entity>(&self, key: &M::Key) -> Option<std::sync::Arc<TransactionChanges<M>>> {
        let rows: &RowChanges<M> = self
            .by_model
            .get(&std::any::TypeId::of::<M>())?
            .downcast_ref()?;
        rows.get(key).cloned()
    }
}

/// Whether an `after_commit` hook of `M` takes the transaction's changes,
/// so its writes keep the row as it was before them.
pub(crate) fn wants_changes<M: Entity>() -> bool {
    M::hooks()
        .phase(HookPhase::AfterCommit)
        .any(|(hook, _)| matches!(hook.call, HookFn::Committed(_)))
}

/// What a write changed, kept for [`TransactionChanges`] when an
/// `after_commit` hook asks for it.
pub(crate) struct Step<M> {
    pub(crate) previous: Option<M>,
    pub(crate) changed: Vec<&'static str>,
}

/// The outcome hooks of one write of a model, queued on its transaction.
pub(crate) struct ModelOutcome<M> {
    pub(crate) model: M,
    pub(crate) operation: Operation,
    pub(crate) step: Option<Step<M>>,
}

impl<M: Entity> Outcome for ModelOutcome<M> {
    fn collect(&self, changes: &mut Changes) {
        let (Some(step), Some(key)) = (&self.step, self.model.key()) else {
            return;
        };
        let rows = changes.rows::<M>();
        match rows.get_mut(&key) {
            Some(row) => {
                let row = std::sync::Arc::make_mut(row);
                row.after = self.model.clone();
                for field in &step.changed {
                    if !row.changed.contains(field) {
                        row.changed.push(field);
                    }
                }
                row.deleted = self.operation == Operation::Delete;
            }
            None => {
                let row = TransactionChanges {
                    before: step.previous.clone(),
                    after: self.model.clone(),
                    changed: step.changed.clone(),
                    created: self.operation == Operation::Create,
                    deleted: self.operation == Operation::Delete,
                };
                rows.insert(key, std::sync::Arc::new(row));
            }
        }
    }

    fn run(self: Box<Self>, committed: bool, changes: &Changes) -> BoxFuture<'static> {
        let phase = if committed {
            HookPhase::AfterCommit
        } else {
            HookPhase::AfterRollback
        };
        let whole = match (&self.step, self.model.key()) {
            (Some(_), Some(key)) if committed => changes.of::<M>(&key),
            _ => None,
        };
        Box::pin(run_outcome(phase, self.model, self.operation, whole))
    }
}

/// Runs every outcome hook of `phase` for an `operation`, even when one
/// fails or panics; failures are reported through `tracing`, never returned.
async fn run_outcome<M: Entity>(
    phase: HookPhase,
    mut model: M,
    operation: Operation,
    changes: Option<std::sync::Arc<TransactionChanges<M>>>,
) {
    for (hook, name) in M::hooks().phase(phase) {
        if !hook.applies(&model, operation, &[]) {
            continue;
        }
        let outcome = match hook.call {
            HookFn::Detached(call) => {
                earn_core::catch_unwind(async { finish(call(&mut model)).await }).await
            }
            HookFn::Committed(call) => {
                // Every committed write of a model with such a hook keeps
                // its step; this one alone is the fallback.
                let changes = changes.clone().unwrap_or_else(|| {
                    std::sync::Arc::new(TransactionChanges {
                        before: None,
                        after: model.clone(),
                        changed: Vec::new(),
                        created: operation == Operation::Create,
                        deleted: operation == Operation::Delete,
                    })
                });
                earn_core::catch_unwind(async { finish(call(&mut model, &changes)).await }).await
            }
            HookFn::InTx(_) => continue,
        };
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error.to_string(),
            Err(panic) => format!("panicked: {panic}"),
        };
        tracing::error!(
            model = M::INFO.name,
            hook = name,
            phase = phase.as_str(),
            %operation,
            "{}::{name} ({phase}) failed: {failure}; the write itself is unaffected",
            M::INFO.name,
        );
    }
}

#[inline]
async fn finish(step: HookStep<'_>) -> Result<(), HookError> {
    match step {
        HookStep::Ready(result) => result,
        HookStep::Pending(future) => future.await,
    }
}
