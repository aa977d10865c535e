use std::fmt;

/// The operation a write performs, as seen by hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// An `INSERT` of a new row.
    Create,
    /// An `UPDATE` of a persisted row.
    Update,
    /// A `DELETE` of a persisted row.
    Delete,
}

impl Operation {
    /// The lower-case name used in messages: `create`, `update`, `delete`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point in a model's lifecycle where hooks run.
///
/// The in-transaction phases run inside the write's transaction and can veto
/// it; [`AfterCommit`](HookPhase::AfterCommit) and
/// [`AfterRollback`](HookPhase::AfterRollback) run once the outermost
/// transaction has ended; [`AfterLoad`](HookPhase::AfterLoad) runs on every
/// row read by `find` / `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPhase {
    /// Before an insert or an update.
    BeforeSave,
    /// Before an insert, after `BeforeSave`.
    BeforeCreate,
    /// Before an update, after `BeforeSave`.
    BeforeUpdate,
    /// Before a delete.
    BeforeDelete,
    /// After the `INSERT`, inside the transaction.
    AfterCreate,
    /// After the `UPDATE`, inside the transaction.
    AfterUpdate,
    /// After the `DELETE`, inside the transaction.
    AfterDelete,
    /// After the insert or update, following `AfterCreate` / `AfterUpdate`.
    AfterSave,
    /// After the outermost transaction committed.
    AfterCommit,
    /// After the transaction (or the savepoint holding the write) rolled back.
    AfterRollback,
    /// After a row was read from the database.
    AfterLoad,
}

impl HookPhase {
    /// Every phase, in the order of the enum.
    pub const ALL: [HookPhase; 11] = [
        HookPhase::BeforeSave,
        HookPhase::BeforeCreate,
        HookPhase::BeforeUpdate,
        HookPhase::BeforeDelete,
        HookPhase::AfterCreate,
        HookPhase::AfterUpdate,
        HookPhase::AfterDelete,
        HookPhase::AfterSave,
        HookPhase::AfterCommit,
        HookPhase::AfterRollback,
        HookPhase::AfterLoad,
    ];

    /// The attribute name of the phase, e.g. `before_save`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HookPhase::BeforeSave => "before_save",
            HookPhase::BeforeCreate => "before_create",
            HookPhase::BeforeUpdate => "before_update",
            HookPhase::BeforeDelete => "before_delete",
            HookPhase::AfterCreate => "after_create",
            HookPhase::AfterUpdate => "after_update",
            HookPhase::AfterDelete => "after_delete",
            HookPhase::AfterSave => "after_save",
            HookPhase::AfterCommit => "after_commit",
            HookPhase::AfterRollback => "after_rollback",
            HookPhase::AfterLoad => "after_load",
        }
    }

    /// Index of the phase in [`HookPhase::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether hooks of this phase run inside the write's transaction (and
    /// may take a `HookContext`).
    pub const fn in_transaction(self) -> bool {
        !matches!(
            self,
            HookPhase::AfterCommit | HookPhase::AfterRollback | HookPhase::AfterLoad
        )
    }
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
