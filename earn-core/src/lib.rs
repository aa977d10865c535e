//! Runtime core of [earn](https://docs.rs/earn): lifecycle phases and the
//! hook registry collected at link time, events, patterns and the event
//! bus, and the one error type.
//!
//! This crate knows nothing about SQL. `earn-sqlx` builds persistence on top
//! of it; users depend on the `earn` facade and never on this crate directly.

pub mod aggregate;
mod backoff;
pub mod batch;
mod bus;
mod dead_letter;
pub mod envelope;
mod error;
mod event;
mod expected;
mod field_errors;
mod handler;
mod index;
mod name;
mod panic;
mod pattern;
mod phase;
mod redact;
mod registry;
pub mod reply;
mod service;
mod sink;
pub mod testing;
#[cfg(feature = "otel")]
pub mod trace_context;

pub use backoff::{Backoff, Failures};
pub use batch::{BatchError, BatchHandler, BatchStep, IntoBatchResult};
pub use bus::{
    BusDeadLetters, BusError, DeadLetterStore, Delivery, EmitReport, EventBus, EventBusBuilder,
    Finished, HandlerStats, MemoryDeadLetters, Overflow, RetryPolicy, ShutdownReport,
    SubscriptionGuard, SubscriptionId,
};
pub use dead_letter::{
    DeadLetter, DeadLetterFilter, DeadLetterFuture, DeadLetters, EventMatch, PageRequest,
};
#[cfg(feature = "encryption")]
pub use envelope::KeyRing;
pub use envelope::{Envelope, EnvelopeError, EnvelopeProblem};
pub use error::{BoxError, Error, HookError, HookFailure};
pub use event::{Event, EventData, EventError, PayloadError};
pub use expected::Expected;
pub use field_errors::FieldErrors;
pub use handler::{
    Failure, HandlerError, HandlerOptions, HandlerRegistration, HandlerResult, HandlerStep,
    IntoHandlerResult, Propagation, handler_registrations,
};
pub use index::{IndexKey, PatternIndex};
pub use name::{EventName, NameError};
pub use panic::catch_unwind;
pub use pattern::{Pattern, PatternError};
pub use phase::{HookPhase, Operation};
pub use redact::RedactedUrl;
pub use registry::{
    AppliedHook, BehaviourHook, BehaviourHooks, BehaviourRegistration, HookRegistration, HookTable,
    Registry, registry,
};
pub use service::{Attachment, Service, ServiceHandler};
pub use sink::{EventSink, SinkFuture};

#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use uuid;

    /// `TypeId::of` as a function pointer, usable in a `static` initializer.
    pub fn type_id<T: 'static>() -> std::any::TypeId {
        std::any::TypeId::of::<T>()
    }
}
