//! The bus's timer: one task per bus, on the bus's own runtime, holding
//! delayed events and retries until they are due, then queueing them
//! (waiting for room: the bus accepted them already).
//!
//! What it holds counts as in flight. What it can no longer queue (every
//! handle of the bus dropped, its workers or its runtime gone) becomes a
//! dead letter with the reason, never a silent drop.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;

use super::Shared;
use super::worker::Job;

/// Where workers and the bus hand delayed work to the timer.
#[derive(Clone)]
pub(crate) struct TimerHandle(UnboundedSender<Delayed>);

impl TimerHandle {
    /// Queues `job` at `due`; gives it back if the timer is gone (its
    /// runtime shut down).
    pub(crate) fn schedule(&self, job: Job, due: Instant) -> Result<(), Job> {
        self.0
            .send(Delayed { due, job })
            .map_err(|refused| refused.0.job)
    }
}

pub(crate) struct Delayed {
    due: Instant,
    job: Job,
}

// Earliest due first in the max-heap.
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        other.due.cmp(&self.due)
    }
}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}

impl Eq for Delayed {}

/// Starts the timer on `runtime`; `queue` is weak so that dropping every
/// handle of the bus still closes the queue and stops the workers.
pub(crate) fn spawn(
    runtime: &tokio::runtime::Handle,
    shared: Arc<Shared>,
    queue: async_channel::WeakSender<Job>,
) -> TimerHandle {
    let (sender, incoming) = unbounded_channel();
    let timer = Timer {
        shared,
        incoming,
        waiting: BinaryHeap::new(),
        in_transit: None,
    };
    runtime.spawn(timer.run(queue));
    TimerHandle(sender)
}

const BUS_DROPPED: &str = "every handle of the event bus was dropped before the event was due \
     (shut the bus down to let delayed events and retries run)";
const WORKERS_GONE: &str =
    "the event bus's workers are gone (their runtime shut down) before the event was due";
const RUNTIME_GONE: &str = "the event bus's runtime shut down before the event was due";

/// The timer's state. Dropped with its task when the runtime shuts down:
/// whatever it still holds is dead-lettered then.
struct Timer {
    shared: Arc<Shared>,
    incoming: UnboundedReceiver<Delayed>,
    waiting: BinaryHeap<Delayed>,
    /// A copy of the job being queued, until the queue has it.
    in_transit: Option<Job>,
}

impl Timer {
    async fn run(mut self, queue: async_channel::WeakSender<Job>) {
        loop {
            let next = self.waiting.peek().map(|delayed| delayed.due);
            tokio::select! {
                received = self.incoming.recv() => match received {
                    Some(delayed) => self.waiting.push(delayed),
                    // Every sender is gone: the bus and its workers.
                    None => break,
                },
                () = sleep_until(next), if next.is_some() => {
                    while self.waiting.peek().is_some_and(|d| d.due <= Instant::now()) {
                        let Some(Delayed { job, .. }) = self.waiting.pop() else { break };
                        self.queue(job, &queue).await;
                    }
                }
            }
        }
        self.abandon_all(BUS_DROPPED);
    }

    /// Hands a due job to the workers, waiting for room.
    async fn queue(&mut self, job: Job, queue: &async_channel::WeakSender<Job>) {
        let Some(sender) = queue.upgrade() else {
            self.shared.abandon(job, BUS_DROPPED);
            return;
        };
        self.in_transit = Some(job.clone());
        let sent = sender.send(job).await;
        self.in_transit = None;
        if let Err(refused) = sent {
            self.shared.abandon(refused.0, WORKERS_GONE);
        }
    }

    fn abandon_all(&mut self, reason: &str) {
        self.incoming.close();
        while let Ok(delayed) = self.incoming.try_recv() {
            self.waiting.push(delayed);
        }
        for delayed in std::mem::take(&mut self.waiting)
            .into_sorted_vec()
            .into_iter()
            .rev()
        {
            self.shared.abandon(delayed.job, reason);
        }
        if let Some(job) = self.in_transit.take() {
            self.shared.abandon(job, reason);
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.abandon_all(RUNTIME_GONE);
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}
