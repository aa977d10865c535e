//! How many handler calls a bus made and how many failed, for operators
//! (the console's per-minute graph) who cannot read the `metrics` facade
//! back.

use std::sync::atomic::{AtomicU64, Ordering};

/// Handler calls of one bus since it was built: from
/// [`EventBus::handler_stats`](super::EventBus::handler_stats). Every
/// attempt counts, in `emit` and on the workers; a retry is a call of its
/// own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerStats {
    /// Calls that succeeded.
    pub succeeded: u64,
    /// Calls that failed: an error, a panic or a timeout.
    pub failed: u64,
}

/// The counters behind [`HandlerStats`]: two relaxed atomic adds per call.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    succeeded: AtomicU64,
    failed: AtomicU64,
}

impl Stats {
    #[inline]
    pub(crate) fn record(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HandlerStats {
        HandlerStats {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
