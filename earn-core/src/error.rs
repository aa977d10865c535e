use std::borrow::Cow;
use std::fmt;

use crate::field_errors::FieldErrors;
use crate::phase::{HookPhase, Operation};

/// A boxed error from a lower layer (the database driver, a user's hook).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a hook returns to halt an operation.
///
/// Two kinds, so callers can tell "not saved on purpose" from "broken":
///
/// - [`HookError::abort`]: a deliberate halt (the model declined the write);
///   [`Error::is_abort`] is `true`.
/// - A failure: [`HookError::invalid`] for a field that failed validation
///   ([`FieldErrors`] for several), or any `std::error::Error` converted
///   with `?` / `.into()`.
///
/// ```
/// use earn::HookError;
///
/// fn check(email: &str) -> Result<(), HookError> {
///     if !email.contains('@') {
///         return Err(HookError::invalid("email", "must contain '@'"));
///     }
///     let _port: u16 = "8080".parse()?; // any std error converts
///     Ok(())
/// }
/// assert!(check("nobody").is_err());
/// ```
///
/// `HookError` deliberately does not implement `std::error::Error` itself,
/// which is what lets every error type convert into it with `?`.
pub enum HookError {
    /// A deliberate halt with the reason given.
    Abort(Cow<'static, str>),
    /// Fields failed validation: each with its messages.
    Invalid(FieldErrors),
    /// Any other failure.
    Failed(BoxError),
}

impl HookError {
    /// A deliberate halt: the operation is cancelled and the caller can see it
    /// was on purpose ([`Error::is_abort`]).
    pub fn abort(reason: impl Into<Cow<'static, str>>) -> Self {
        HookError::Abort(reason.into())
    }

    /// A validation failure of `field`.
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        let mut errors = FieldErrors::new();
        errors.add(field, message);
        HookError::Invalid(errors)
    }

    /// A failure described by a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        HookError::Failed(message.to_string().into())
    }

    /// Whether this is a deliberate [`abort`](HookError::abort).
    pub fn is_abort(&self) -> bool {
        matches!(self, HookError::Abort(_))
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HookError {
    fn from(error: E) -> Self {
        HookError::Failed(Box::new(error))
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookError::Abort(reason) => f.write_str(reason),
            HookError::Invalid(errors) => fmt::Display::fmt(errors, f),
            HookError::Failed(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl fmt::Debug for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookError::Abort(reason) => f.debug_tuple("Abort").field(reason).finish(),
            HookError::Invalid(errors) => f.debug_tuple("Invalid").field(errors).finish(),
            HookError::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
        }
    }
}

/// A hook that halted an operation: which model, phase and function, and why.
///
/// Displays as `User::validate (before_save) failed: email: must contain '@'`
/// or `User::guard (before_delete) aborted: <reason>`.
#[derive(Debug)]
pub struct HookFailure {
    /// The model's type name.
    pub model: &'static str,
    /// The phase the hook ran in.
    pub phase: HookPhase,
    /// The hook's function name.
    pub hook: &'static str,
    /// What the hook returned.
    pub error: HookError,
}

impl fmt::Display for HookFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.error.is_abort() {
            "aborted"
        } else {
            "failed"
        };
        write!(
            f,
            "{}::{} ({}) {verb}: {}",
            self.model, self.hook, self.phase, self.error
        )
    }
}

impl std::error::Error for HookFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.error {
            HookError::Failed(error) => Some(&**error),
            _ => None,
        }
    }
}

/// The one error type of earn. Its message says what failed and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hook halted the operation; nothing was written.
    #[error(transparent)]
    Hook(Box<HookFailure>),

    /// The database refused a statement. `source` is the driver's error
    /// (a `sqlx::Error` for earn-sqlx; reach it with `downcast_ref`).
    #[error("database error on table `{table}` during {operation}: {source}")]
    Database {
        /// The table involved.
        table: Cow<'static, str>,
        /// What earn was doing: `insert`, `update`, `delete`, `select`, …
        operation: &'static str,
        /// The driver's error.
        source: BoxError,
    },

    /// A write refused by a unique constraint or index: another row already
    /// holds the value.
    #[error(
        "{operation} of {model} refused: another row of table `{table}` already has this value (unique constraint `{constraint}`)"
    )]
    UniqueViolation {
        /// The model's type name.
        model: &'static str,
        /// The table written.
        table: &'static str,
        /// The constraint or index, as the database names it (PostgreSQL:
        /// the constraint; MySQL: the key; SQLite: `table.column`).
        constraint: String,
        /// `insert`, `update`, …
        operation: &'static str,
        /// The driver's error.
        source: BoxError,
    },

    /// A write refused by a foreign key: the row refers to a missing row, or
    /// rows still refer to the one deleted.
    #[error(
        "{operation} of {model} refused by foreign key `{constraint}` of table `{table}`: {source}"
    )]
    ForeignKeyViolation {
        /// The model's type name.
        model: &'static str,
        /// The table written.
        table: &'static str,
        /// The constraint, as the database names it (SQLite names none:
        /// `FOREIGN KEY`).
        constraint: String,
        /// `insert`, `update`, `delete`, …
        operation: &'static str,
        /// The driver's error.
        source: BoxError,
    },

    /// A table that does not match its model: found by `Db::check_schema`.
    #[error("table `{table}` does not match {model}: {}", problems.join("; "))]
    SchemaDrift {
        /// The model's type name.
        model: &'static str,
        /// The table checked.
        table: &'static str,
        /// Each difference, naming the column: a missing table or column,
        /// a wrong type, a nullability that differs.
        problems: Vec<String>,
    },

    /// Several tables that do not match their models: found by
    /// `Db::check_schemas`. Each is an [`Error::SchemaDrift`].
    #[error("{} tables do not match their models: {}", drifts.len(), join(drifts))]
    SchemasDrift {
        /// One [`Error::SchemaDrift`] per table.
        drifts: Vec<Error>,
    },

    /// A table earn needs is not in the database (the outbox's, before it
    /// was installed): what to run or migrate.
    #[error("table `{table}` does not exist: {fix}")]
    MissingTable {
        /// The table.
        table: &'static str,
        /// What creates it.
        fix: &'static str,
    },

    /// A connection or transaction-level failure that involves no table.
    #[error("database error during {operation}: {source}")]
    Connection {
        /// What earn was doing: `connect`, `begin`, `commit`, …
        operation: &'static str,
        /// The driver's error.
        source: BoxError,
    },

    /// A database URL earn cannot use.
    #[error("cannot use database URL `{url}`: {reason}")]
    Url {
        /// The URL, with any password removed.
        url: String,
        /// Why it cannot be used and what to do instead.
        reason: Cow<'static, str>,
    },

    /// An update or delete found no row with the model's key.
    #[error("{operation} of {model}: no row with key {key} in table `{table}`")]
    NotFound {
        /// The model's type name.
        model: &'static str,
        /// The table searched.
        table: &'static str,
        /// The key, formatted with `Debug`.
        key: String,
        /// `update` or `delete`.
        operation: Operation,
    },

    /// A write of a row that is soft-deleted (`#[model(soft_delete)]`):
    /// `restore` it first, or `force_delete` it.
    #[error(
        "{operation} of {model}: the row with key {key} in table `{table}` is soft-deleted; restore it first"
    )]
    SoftDeleted {
        /// The model's type name.
        model: &'static str,
        /// The table.
        table: &'static str,
        /// The key, formatted with `Debug`.
        key: String,
        /// The write refused.
        operation: Operation,
    },

    /// `Query::one` found no row.
    #[error("expected exactly one {model} row in table `{table}` where {filter}, found none")]
    NoRow {
        /// The model's type name.
        model: &'static str,
        /// The table searched.
        table: &'static str,
        /// The query's condition, with `?` for each bound value.
        filter: String,
    },

    /// `Query::one` found more than one row.
    #[error(
        "expected exactly one {model} row in table `{table}` where {filter}, found more; add a filter or use `first`"
    )]
    TooManyRows {
        /// The model's type name.
        model: &'static str,
        /// The table searched.
        table: &'static str,
        /// The query's condition, with `?` for each bound value.
        filter: String,
    },

    /// A query that cannot be run as written (a page number of 0, …).
    #[error("invalid query of {model}: {reason}")]
    InvalidQuery {
        /// The model's type name.
        model: &'static str,
        /// What is wrong and what to write instead.
        reason: Cow<'static, str>,
    },

    /// A delete refused by a relation declared `on_delete = "restrict"`:
    /// rows of another model still refer to the row.
    #[error(
        "delete of {model} {key} refused: {count} {dependent} row(s) refer to it (`on_delete = \"restrict\"`); delete them first or declare `on_delete = \"cascade\"` or `\"nullify\"`"
    )]
    Restricted {
        /// The model whose row was to be deleted.
        model: &'static str,
        /// Its key, formatted with `Debug`.
        key: String,
        /// The model whose rows refer to it.
        dependent: &'static str,
        /// How many of them.
        count: u64,
    },

    /// An update or delete of a model that has no key value (never saved).
    #[error("{operation} of {model}: the model has no primary key value; save it first")]
    MissingKey {
        /// The model's type name.
        model: &'static str,
        /// `update` or `delete`.
        operation: Operation,
    },

    /// An update or delete of a `#[model(version)]` model whose row was
    /// changed since the model was read: saving it would lose that change.
    #[error(
        "{operation} of {model} with key {key} refused: it was read at version {expected}, but the \
         row in table `{table}` is at version {found} (changed since); read it again and reapply \
         the change"
    )]
    Stale {
        /// The model's type name.
        model: &'static str,
        /// The table.
        table: &'static str,
        /// The key, formatted with `Debug`.
        key: String,
        /// `update` or `delete`.
        operation: Operation,
        /// The version the model holds.
        expected: i128,
        /// The version of the row.
        found: i128,
    },

    /// `insert` of a model whose database-generated key is already set.
    #[error(
        "insert of {model}: the model already has key {key}; use save or update to change a persisted row"
    )]
    AlreadyPersisted {
        /// The model's type name.
        model: &'static str,
        /// The key, formatted with `Debug`.
        key: String,
    },

    /// A hook wrote the model it is running for, which would loop forever.
    #[error(
        "re-entrant {operation} of {model}{key}: a hook wrote the same model while its own write \
         was in progress; change the model in a before_* hook instead of saving it again"
    )]
    Reentrant {
        /// The model's type name.
        model: &'static str,
        /// The operation that re-entered.
        operation: Operation,
        /// ` with key …`, or empty for a new model.
        key: String,
    },

    /// A hook (or a handler it ran inline) wrote a model with `save(&db)`,
    /// `delete(&db)`, …: a transaction of its own beside the running
    /// write's. That one would wait for the running write's locks
    /// (SQLite: a pool timeout or "database is locked") or commit whatever
    /// becomes of it.
    #[error(
        "{operation} of {model} in a transaction of its own while a write of {running} runs in \
         this task (from one of its hooks): use `save_in(ctx.tx())` / `delete_in(ctx.tx())` to \
         make it part of the running write"
    )]
    WriteInsideHook {
        /// The model written.
        model: &'static str,
        /// Its operation.
        operation: Operation,
        /// The model whose write is running.
        running: &'static str,
    },

    /// An event could not be built (invalid name, payload not serializable).
    #[error(transparent)]
    Event(#[from] crate::event::EventError),

    /// The event bus refused something (shut down, queue full, bad pattern).
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    /// An event could not be sealed (encrypted or signed) as it left.
    #[error(transparent)]
    Envelope(#[from] crate::envelope::EnvelopeError),
    /// A key given to a [`KeyRing`](crate::KeyRing) (feature `encryption`)
    /// is not usable.
    #[error("key `{id}`: {reason}")]
    InvalidKey {
        /// The key's id (never the key).
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An earlier write in this transaction failed after it had changed the
    /// database, so the transaction can only be rolled back.
    #[error(
        "the transaction cannot commit because an earlier write in it failed: {reason}; \
         it was rolled back (use a savepoint, `tx.begin()`, to recover from a failed write)"
    )]
    TransactionAborted {
        /// The message of the error that poisoned the transaction.
        reason: String,
    },

    /// A message broker (Redis Streams) refused or could not be reached.
    /// Nothing was lost: a publish that fails was not stored, and an entry
    /// being consumed stays pending for redelivery.
    #[error("{transport} error during {operation}: {source}")]
    Transport {
        /// `redis`, …
        transport: &'static str,
        /// What earn was doing: `publish`, `read`, `ack`, `claim`, …
        operation: Cow<'static, str>,
        /// The client's error.
        source: BoxError,
    },

    /// An operator named a dead-letter source that is not configured.
    #[error("no dead-letter source `{name}`; the sources are: {}", known.join(", "))]
    NoDeadLetterSource {
        /// The name asked for.
        name: String,
        /// The sources there are.
        known: Vec<String>,
    },

    /// A dead-letter filter a store cannot apply (see `DeadLetterFilter`).
    #[error("invalid dead-letter filter: {reason}")]
    InvalidFilter {
        /// What is wrong and what to write instead.
        reason: Cow<'static, str>,
    },

    /// An operator asked for a dead letter that is not there: it never
    /// was, or it was requeued or purged already.
    #[error(
        "no dead letter with id `{id}` in `{store}`: it was never there, or was already requeued or purged"
    )]
    NoDeadLetter {
        /// Where dead letters are kept: a table (`earn_outbox_dead`) or a stream.
        store: Cow<'static, str>,
        /// The id asked for.
        id: String,
    },

    /// An operator asked for a delayed event that is not waiting: it never
    /// was, it fell due and was moved to its stream, or it was run or
    /// deleted already.
    #[error(
        "no delayed event with id `{id}` in `{store}`: it was never there, or was already moved to the stream, run or deleted"
    )]
    NoDelayedEvent {
        /// Where delayed events wait (`{stream}:delayed`).
        store: String,
        /// The id asked for.
        id: String,
    },

    /// An append to an event stream that is not at the expected version:
    /// another writer appended first. Read the stream again, decide again,
    /// append with the new version.
    #[error(
        "append to stream `{stream}` refused: expected {expected}, but {}; read the stream \
         again and retry",
        crate::expected::Actual(*actual)
    )]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What the append expected.
        expected: crate::Expected,
        /// The stream's version (`None`: no such stream).
        actual: Option<u64>,
    },

    /// An append whose events are partly stored already (an event id is
    /// unique in the store). An append whose events are all stored is a
    /// retry and succeeds without writing.
    #[error(
        "append to stream `{stream}` refused: event {id} is already stored (in stream \
         `{stored_in}`), and the append's other events are not; an append is a no-op only \
         when all its events are stored"
    )]
    DuplicateEvent {
        /// The stream appended to.
        stream: String,
        /// The event already stored.
        id: uuid::Uuid,
        /// The stream it is stored in.
        stored_in: String,
    },

    /// A stream name the store cannot hold.
    #[error("invalid stream name `{stream}`: {reason}")]
    InvalidStream {
        /// The name given.
        stream: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A stored event that could not be read back: its JSON is malformed,
    /// or an upcaster refused it.
    #[error(
        "stored event at position {position} (stream `{stream}`, version {version}) cannot be \
         read: {reason}"
    )]
    StoredEvent {
        /// Its global position.
        position: u64,
        /// Its stream.
        stream: String,
        /// Its version in the stream.
        version: u64,
        /// What went wrong.
        reason: String,
    },

    /// A projection, subscription or aggregate failed on a stored event.
    #[error("applying the event at position {position} to {target} failed: {source}")]
    Apply {
        /// What it was applied to: a projection or an aggregate.
        target: String,
        /// The event's global position.
        position: u64,
        /// What went wrong.
        source: BoxError,
    },

    /// An event whose serialized form is larger than the transport allows;
    /// refused at publish.
    #[error(
        "event `{event}` ({id}) is {size} bytes serialized, over the limit of {max} bytes; \
         it was not published (store large data elsewhere and send a reference)"
    )]
    PayloadTooLarge {
        /// The event's name.
        event: String,
        /// The event's id.
        id: uuid::Uuid,
        /// Its serialized size in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}

fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A hook failure.
    pub fn hook(
        model: &'static str,
        phase: HookPhase,
        hook: &'static str,
        error: HookError,
    ) -> Self {
        Error::Hook(Box::new(HookFailure {
            model,
            phase,
            hook,
            error,
        }))
    }

    /// Whether a hook deliberately halted the operation with [`HookError::abort`].
    pub fn is_abort(&self) -> bool {
        matches!(self, Error::Hook(failure) if failure.error.is_abort())
    }

    /// The hook failure, if a hook halted the operation.
    pub fn as_hook_failure(&self) -> Option<&HookFailure> {
        match self {
            Error::Hook(failure) => Some(failure),
            _ => None,
        }
    }

    /// The validation errors that failed the write, by field: those of a
    /// hook of the model written, or of a nested write a hook ran (a child
    /// saved with `save_in(ctx.tx()).await?`), however deep. `None` for any
    /// other failure, so an API can answer 422 with these and 500 without.
    ///
    /// ```
    /// use earn::{Error, HookError, HookPhase};
    ///
    /// let error = Error::hook("User", HookPhase::BeforeSave, "validate", HookError::invalid("email", "is taken"));
    /// assert_eq!(error.field_errors().unwrap().get("email"), ["is taken"]);
    /// // The same error, returned with `?` by a hook of another model:
    /// let nested = Error::hook("Team", HookPhase::AfterCreate, "add_owner", HookError::from(error));
    /// assert!(nested.field_errors().is_some());
    /// ```
    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match &self.as_hook_failure()?.error {
            HookError::Invalid(errors) => Some(errors),
            HookError::Failed(source) => source.downcast_ref::<Error>()?.field_errors(),
            HookError::Abort(_) => None,
        }
    }

    /// Whether validation failed: [`field_errors`](Error::field_errors) is `Some`.
    pub fn is_invalid(&self) -> bool {
        self.field_errors().is_some()
    }
}
