//! `EventBusBuilder`: the bus's settings, and starting its workers and
//! timer on a runtime.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::dead_letter::{DeadLetterStore, MemoryDeadLetters};
use super::subscriptions::{Registry, Subscription};
use super::{BusError, EventBus, Inner, Overflow, RetryPolicy, Shared, in_flight, timer, worker};
use crate::handler::handler_registrations;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) retry: RetryPolicy,
    pub(crate) handler_timeout: Option<Duration>,
    pub(crate) envelope: crate::envelope::Envelope,
}

/// Configures an [`EventBus`].
pub struct EventBusBuilder {
    config: Config,
    dead_letters: Arc<dyn DeadLetterStore>,
    registered: bool,
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for EventBusBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBusBuilder")
            .field("workers", &self.config.workers)
            .field("capacity", &self.config.capacity)
            .field("overflow", &self.config.overflow)
            .field("retry", &self.config.retry)
            .field("handler_timeout", &self.config.handler_timeout)
            .field("envelope", &self.config.envelope)
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

impl Default for EventBusBuilder {
    fn default() -> Self {
        EventBusBuilder {
            config: Config {
                workers: std::thread::available_parallelism().map_or(2, usize::from),
                capacity: 10_000,
                overflow: Overflow::Wait,
                retry: RetryPolicy::default(),
                handler_timeout: None,
                envelope: crate::envelope::Envelope::default(),
            },
            dead_letters: Arc::new(MemoryDeadLetters::default()),
            registered: true,
            runtime: None,
        }
    }
}

impl EventBusBuilder {
    /// Worker tasks running `publish`ed events (default: the number of
    /// CPUs). They share one queue: each takes the next waiting event when
    /// it is free, one at a time, so a slow handler holds up only its own
    /// worker.
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// How many published events may wait for a worker (default 10 000),
    /// all workers together. Events being handled, delayed events and
    /// retries not yet due do not count.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.capacity = capacity.max(1);
        self
    }

    /// Seals and opens events with `envelope` (feature `encryption`):
    /// [`publish`](EventBus::publish) and
    /// [`publish_delayed`](EventBus::publish_delayed) seal what they queue,
    /// so a dead letter holds the sealed event, and every event is opened
    /// just before its handlers run. An event that cannot be opened (a
    /// missing or wrong key, a bad or missing signature, plain text on an
    /// encrypted pattern) reaches no handler: each one that matched gives
    /// up on it at once, with the reason, as a permanent failure.
    ///
    /// [`emit`](EventBus::emit) keeps its event in the process: it opens
    /// what is sealed and requires nothing.
    ///
    /// ```
    /// # #[cfg(feature = "encryption")] {
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use earn::{Envelope, EventBus, KeyRing};
    ///
    /// let keys = KeyRing::new("k1", &[9u8; 32])?;
    /// let bus = EventBus::builder()
    ///     .without_registered_handlers()
    ///     .envelope(Envelope::new().encrypt("payment.*", &keys)?)
    ///     .build()?;
    /// # Ok(()) }
    /// # }
    /// ```
    pub fn envelope(mut self, envelope: crate::envelope::Envelope) -> Self {
        self.config.envelope = envelope;
        self
    }

    /// What `publish` does when the queue is full (default: wait).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Retries of failing handlers on `publish` (default: 3 attempts,
    /// 100 ms doubling, 20 % jitter). Not used by
    /// [`deliver`](EventBus::deliver): a transport that redelivers owns
    /// the retries (see [`RetryPolicy`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Where dead letters go (default: in memory).
    pub fn dead_letters(mut self, store: Arc<dyn DeadLetterStore>) -> Self {
        self.dead_letters = store;
        self
    }

    /// Default timeout of async handlers (default: none); a handler's own
    /// `timeout_ms` overrides it.
    ///
    /// Only an async handler can be interrupted (at an `.await`): a sync
    /// handler runs to its end on the worker's thread and is not timed.
    /// Make a handler that may block long `async` and move the blocking
    /// part to `tokio::task::spawn_blocking`.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.handler_timeout = Some(timeout);
        self
    }

    /// Leaves out the `#[event_handler]` functions linked into the program
    /// (they are included by default).
    pub fn without_registered_handlers(mut self) -> Self {
        self.registered = false;
        self
    }

    /// Runs the workers and the timer on this runtime instead of the
    /// current one.
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Builds the bus and starts its workers and its timer on the current
    /// tokio runtime (or the one given to [`runtime`](Self::runtime)).
    pub fn build(self) -> Result<EventBus, BusError> {
        let runtime = match self.runtime {
            Some(handle) => handle,
            None => tokio::runtime::Handle::try_current().map_err(|_| BusError::NoRuntime)?,
        };
        let mut registry = Registry::default();
        if self.registered {
            let mut statics: Vec<_> = handler_registrations().collect();
            // Registration order of link-time handlers is source order, never link order.
            statics.sort_by_key(|r| (r.file, r.line, r.name));
            for r in statics {
                match Subscription::from_options(r.name, &r.options, Arc::new(r.call)) {
                    Ok(subscription) => {
                        registry.insert(subscription);
                    }
                    // The macro checked the pattern; never skip a handler silently.
                    Err(error) => {
                        tracing::error!(handler = r.name, %error, "event handler not registered")
                    }
                }
            }
        }
        let shared = Arc::new(Shared {
            registry: RwLock::new(registry),
            config: self.config.clone(),
            dead_letters: self.dead_letters,
            in_flight: in_flight::InFlight::default(),
            stats: super::stats::Stats::default(),
            closed: AtomicBool::new(false),
        });
        let (queue, receiver) = async_channel::bounded(self.config.capacity);
        let timer = timer::spawn(&runtime, shared.clone(), queue.downgrade());
        for _ in 0..self.config.workers {
            runtime.spawn(worker::run(shared.clone(), receiver.clone(), timer.clone()));
        }
        Ok(EventBus {
            inner: Arc::new(Inner {
                shared,
                queue,
                timer,
            }),
        })
    }
}
