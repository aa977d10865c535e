//! Runtime core of [earn](https://docs.rs/earn): lifecycle phases, the hook
//! registry collected at link time, and the one error type.
//!
//! This crate knows nothing about SQL. `earn-sqlx` builds persistence on top
//! of it; users depend on the `earn` facade and never on this crate directly.

mod error;
mod panic;
mod phase;
mod registry;

pub use error::{BoxError, Error, HookError, HookFailure};
pub use panic::catch_unwind;
pub use phase::{HookPhase, Operation};
pub use registry::{HookRegistration, HookTable, registry};

#[doc(hidden)]
pub mod __private {
    pub use inventory;

    /// `TypeId::of` as a function pointer, usable in a `static` initializer.
    pub fn type_id<T: 'static>() -> std::any::TypeId {
        std::any::TypeId::of::<T>()
    }
}
