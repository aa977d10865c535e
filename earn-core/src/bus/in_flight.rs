//! Counts published events not yet fully handled, without a cache line
//! that the publisher and every worker fight over.

use std::sync::atomic::{AtomicUsize, Ordering};

/// An atomic on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicUsize);

#[derive(Default)]
pub(crate) struct InFlight {
    /// Incremented by publishers (and by retries and delays).
    started: Padded,
    /// Incremented by workers, once per batch.
    finished: Padded,
    idle: tokio::sync::Notify,
}

impl InFlight {
    pub(crate) fn start(&self) {
        self.started.0.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts one event until it is handed on ([`Claim::keep`]); a claim
    /// dropped before (a publish cancelled while waiting for room, or
    /// refused) gives the count back.
    pub(crate) fn claim(&self) -> Claim<'_> {
        self.start();
        Claim(Some(self))
    }

    pub(crate) fn finish(&self, n: usize) {
        let finished = self.finished.0.fetch_add(n, Ordering::AcqRel) + n;
        if finished == self.started.0.load(Ordering::Acquire) {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn count(&self) -> usize {
        // `finished` first: it never runs ahead of `started`.
        let finished = self.finished.0.load(Ordering::Acquire);
        self.started
            .0
            .load(Ordering::Acquire)
            .saturating_sub(finished)
    }

    pub(crate) async fn wait_idle(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it from here on.
            let idle = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One event's count, given back on drop unless kept.
pub(crate) struct Claim<'a>(Option<&'a InFlight>);

impl Claim<'_> {
    /// The event was handed on (queued, scheduled): whoever has it now
    /// finishes its count.
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(in_flight) = self.0 {
            in_flight.finish(1);
        }
    }
}
