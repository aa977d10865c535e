#![doc = include_str!("../docs/crate.md")]
// On docs.rs: "Available on crate feature `redis` only" on gated items.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "encryption")]
pub use earn_core::KeyRing;
pub use earn_core::aggregate;
pub use earn_core::envelope;
pub use earn_core::reply;
pub use earn_core::testing;
#[cfg(feature = "otel")]
pub use earn_core::trace_context;
pub use earn_core::{
    AppliedHook, Attachment, Backoff, BatchError, BusDeadLetters, BusError, DeadLetter,
    DeadLetterFilter, DeadLetterFuture, DeadLetterStore, DeadLetters, Delivery, EmitReport,
    Envelope, EnvelopeError, EnvelopeProblem, Error, Event, EventBus, EventBusBuilder, EventData,
    EventError, EventMatch, EventName, EventSink, Failure, FieldErrors, Finished, HandlerError,
    HandlerStats, HookError, HookFailure, HookPhase, HookRegistration, MemoryDeadLetters,
    NameError, Operation, Overflow, PageRequest, Pattern, PatternError, PayloadError, Propagation,
    RedactedUrl, Registry, RetryPolicy, Service, ShutdownReport, SinkFuture, SubscriptionGuard,
    SubscriptionId, registry,
};

// The macros' reference pages live here, on the re-exports, so that their
// examples run as doctests of the facade, as users write them.
#[doc = include_str!("../docs/derive-model.md")]
pub use earn_macros::Model;

#[doc = include_str!("../docs/derive-field.md")]
pub use earn_macros::Field;

#[doc = include_str!("../docs/hooks.md")]
pub use earn_macros::hooks;

#[doc = include_str!("../docs/hooks/before_save.md")]
pub use earn_macros::before_save;

#[doc = include_str!("../docs/hooks/before_create.md")]
pub use earn_macros::before_create;

#[doc = include_str!("../docs/hooks/before_update.md")]
pub use earn_macros::before_update;

#[doc = include_str!("../docs/hooks/before_delete.md")]
pub use earn_macros::before_delete;

#[doc = include_str!("../docs/hooks/after_create.md")]
pub use earn_macros::after_create;

#[doc = include_str!("../docs/hooks/after_update.md")]
pub use earn_macros::after_update;

#[doc = include_str!("../docs/hooks/after_delete.md")]
pub use earn_macros::after_delete;

#[doc = include_str!("../docs/hooks/before_restore.md")]
pub use earn_macros::before_restore;

#[doc = include_str!("../docs/hooks/after_restore.md")]
pub use earn_macros::after_restore;

#[doc = include_str!("../docs/hooks/after_save.md")]
pub use earn_macros::after_save;

#[doc = include_str!("../docs/hooks/after_commit.md")]
pub use earn_macros::after_commit;

#[doc = include_str!("../docs/hooks/after_rollback.md")]
pub use earn_macros::after_rollback;

#[doc = include_str!("../docs/hooks/after_load.md")]
pub use earn_macros::after_load;

#[doc = include_str!("../docs/behaviour.md")]
pub use earn_macros::behaviour;

#[doc = include_str!("../docs/event-handler.md")]
pub use earn_macros::event_handler;

#[doc = include_str!("../docs/service.md")]
pub use earn_macros::service;

pub use earn_sqlx::{
    BelongsTo, CHANGES_KEY, Col, Db, Dialect, Direction, Field, Filter, ForeignKey, HasMany,
    HasOne, HookContext, INBOX_TABLE, IntoHookResult, IntoParam, IntoValue, Model, Models,
    Nullable, OUTBOX_DEAD_TABLE, OUTBOX_TABLE, OnDelete, Order, Outbox, OutboxDeadLetters,
    OutboxMode, OutboxRelay, Page, Query, RawQuery, RowStream, Savepoint, Set, SoftDelete,
    SoftDeletes, SqlValue, Storable, Timestamp, TransactionChanges, Tx, create_tables_sql,
};

pub mod admin;

#[cfg(feature = "console")]
pub mod console;

#[cfg(feature = "cli")]
pub mod cli;

// A page only: earn records through the `metrics` facade, and the
// application installs the exporter.
pub mod metrics {
    #![doc = include_str!("../docs/metrics.md")]
}

/// Redis Streams transport: [`RedisStreams`](redis::RedisStreams) publishes
/// events to a stream and consumes them into an [`EventBus`] with a
/// consumer group (feature `redis`).
#[cfg(feature = "redis")]
pub mod redis {
    pub use earn_redis::*;
}

/// NATS JetStream transport: [`NatsStreams`](nats::NatsStreams) publishes
/// events to a JetStream stream and consumes them into an
/// [`EventBus`] with a durable consumer per group (feature `nats`).
#[cfg(feature = "nats")]
pub mod nats {
    pub use earn_nats::*;
}

/// The event store: streams with expected versions, a global order
/// readers can trust, catch-up subscriptions, projections, upcasters and
/// snapshots. See the guide's event-sourcing section.
pub mod store {
    pub use earn_core::Expected;
    pub use earn_sqlx::store::*;
}

/// Sagas (process managers): a workflow across services with its state in
/// the database, steps, compensations and timeouts. See [`saga::Saga`].
pub mod saga {
    pub use earn_sqlx::saga::*;
}

/// The lower layers, for code that needs them by name.
pub mod sqlx {
    pub use earn_sqlx::__private::sqlx::*;
}

/// Everything a model file needs: `use earn::prelude::*;`.
pub mod prelude {
    // Links to the items' pages rather than copies of them.
    #[doc(no_inline)]
    pub use crate::{
        BatchError, Db, Error, Event, EventBus, Field, HandlerError, HookContext, HookError, Model,
        Operation, Propagation, SoftDeletes, Tx, after_commit, after_create, after_delete,
        after_load, after_restore, after_rollback, after_save, after_update, before_create,
        before_delete, before_restore, before_save, before_update, behaviour, event_handler, hooks,
        service,
    };
}

/// What generated code refers to. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use earn_core::__private::{inventory, type_id};
    pub use earn_core::Error;
    pub use earn_core::batch;
    pub use earn_core::{
        AppliedHook, BatchHandler, BatchStep, BehaviourHook, BehaviourHooks, BehaviourRegistration,
        Event, HandlerError, HandlerOptions, HandlerRegistration, HandlerStep, HookPhase,
        HookRegistration, HookTable, IntoBatchResult, IntoHandlerResult, Operation, Service,
        ServiceHandler,
    };
    pub use earn_sqlx::__private::{
        BoxDynError, child, child_in, children, children_in, column_error, column_positions,
        foreign_key, has_field, json_eq, parent, parent_in, run_phase, serde, serde_json, set_null,
        sqlx, storable, unknown_discriminant, unknown_name,
    };
    pub use earn_sqlx::{
        Backend, BelongsTo, Col, Column, ColumnType, Db, Entity, Field, ForeignKeyColumn, HasMany,
        HasOne, Hook, HookContext, HookFn, HookStep, Hooks, IntoHookResult, Model, ModelInfo,
        ModelRegistration, OnDelete, Row, Set, SoftDelete, SoftDeletes, Statements, Timestamp,
        TransactionChanges, Tx,
    };
}
