//! Hook phases and write operations.

use std::fmt;

/// The operation a write performs, as seen by hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// An `INSERT` of a new row.
    Create,
    /// An `UPDATE` of a persisted row.
    Update,
    /// A `DELETE` of a persisted row, or for a `#[model(soft_delete)]`
    /// model, the `UPDATE` that marks it deleted.
    Delete,
    /// The `UPDATE` that brings a soft-deleted row back (`restore`).
    Restore,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 4] = [
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Restore,
    ];

    /// The lower-case name used in messages and in `on = "…"`: `create`,
    /// `update`, `delete`, `restore`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Restore => "restore",
        }
    }

    /// The operation named `name` (`"create"`, …).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Calls the macro `$callback` with every hook phase as
/// `attribute_name VariantName "doc"`, in lifecycle order: the one list
/// behind [`HookPhase`] and the `#[before_save]`… attribute macros.
#[macro_export]
macro_rules! for_each_phase {
    ($callback:ident) => {
        $callback! {
            before_save BeforeSave "Before an insert or an update.",
            before_create BeforeCreate "Before an insert, after `BeforeSave`.",
            before_update BeforeUpdate "Before an update, after `BeforeSave`.",
            before_delete BeforeDelete "Before a delete.",
            after_create AfterCreate "After the `INSERT`, inside the transaction.",
            after_update AfterUpdate "After the `UPDATE`, inside the transaction.",
            after_delete AfterDelete "After the `DELETE`, inside the transaction.",
            before_restore BeforeRestore "Before a soft-deleted row is restored.",
            after_restore AfterRestore "After a soft-deleted row was restored, inside the transaction.",
            after_save AfterSave "After the insert or update, following `AfterCreate` / `AfterUpdate`.",
            after_commit AfterCommit "After the outermost transaction committed.",
            after_rollback AfterRollback "After the transaction (or the savepoint holding the write) rolled back, or the write failed.",
            after_load AfterLoad "After a row was read from the database.",
        }
    };
}

macro_rules! define_phases {
    ($($name:ident $variant:ident $doc:literal,)*) => {
        /// A point in a model's lifecycle where hooks run.
        ///
        /// The in-transaction phases run inside the write's transaction and
        /// can veto it; [`AfterCommit`](HookPhase::AfterCommit) and
        /// [`AfterRollback`](HookPhase::AfterRollback) run once the outermost
        /// transaction has ended; [`AfterLoad`](HookPhase::AfterLoad) runs on
        /// every row read by `find` / `all`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum HookPhase {
            $(#[doc = $doc] $variant,)*
        }

        impl HookPhase {
            /// Every phase, in lifecycle order (the order of the enum).
            pub const ALL: [HookPhase; [$(HookPhase::$variant),*].len()] = [$(HookPhase::$variant),*];

            /// The attribute name of the phase, e.g. `before_save`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(HookPhase::$variant => stringify!($name),)*
                }
            }

            /// The variant's name, e.g. `BeforeSave` (for generated code).
            pub const fn variant_name(self) -> &'static str {
                match self {
                    $(HookPhase::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

for_each_phase!(define_phases);

impl HookPhase {
    /// The phase whose attribute is `name` (`"before_save"`, …).
    pub fn from_name(name: &str) -> Option<HookPhase> {
        HookPhase::ALL
            .into_iter()
            .find(|phase| phase.as_str() == name)
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

    /// Whether a hook of this phase may take `&mut self`: it runs before
    /// the write, or on a freshly loaded row.
    pub const fn may_mutate(self) -> bool {
        matches!(
            self,
            HookPhase::BeforeSave
                | HookPhase::BeforeCreate
                | HookPhase::BeforeUpdate
                | HookPhase::AfterLoad
        )
    }

    /// The operations `on = "…"` may name for this phase (none: the phase
    /// belongs to one operation, or to none).
    pub const fn on_choices(self) -> &'static [Operation] {
        match self {
            HookPhase::BeforeSave | HookPhase::AfterSave => &[Operation::Create, Operation::Update],
            HookPhase::AfterCommit | HookPhase::AfterRollback => &Operation::ALL,
            _ => &[],
        }
    }

    /// Whether `when_changed` makes sense: the phase runs on update.
    pub const fn tracks_changes(self) -> bool {
        matches!(
            self,
            HookPhase::BeforeSave
                | HookPhase::AfterSave
                | HookPhase::BeforeUpdate
                | HookPhase::AfterUpdate
        )
    }
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for phase in HookPhase::ALL {
            assert_eq!(HookPhase::from_name(phase.as_str()), Some(phase));
            assert_eq!(
                phase.index(),
                HookPhase::ALL.iter().position(|p| *p == phase).unwrap()
            );
        }
        assert_eq!(HookPhase::ALL.len(), 13);
        assert_eq!(HookPhase::AfterCommit.variant_name(), "AfterCommit");
        assert_eq!(HookPhase::from_name("before_saving"), None);
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.as_str()), Some(op));
        }
    }
}
