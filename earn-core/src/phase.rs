//! Hook phases and operations: defined in `earn-vocab`, which the macros
//! share.

pub use earn_vocab::{HookPhase, Operation};
