//! The vocabulary [earn](https://docs.rs/earn)'s runtime (`earn-core`) and
//! its procedural macros (`earn-macros`) share, written once: the hook
//! phases and operations, and the grammar of event names and patterns.
//! The macros check at compile time with the same code the runtime checks
//! with, and attribute names come from the same list as the phases.
//!
//! Users depend on the `earn` facade, which re-exports what they need.

mod grammar;
mod phase;

pub use grammar::{Fault, Grammar, Problem, scan};
pub use phase::{HookPhase, Operation};
