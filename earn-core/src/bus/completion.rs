//! What the caller of `publish_then` / `deliver` learns once the bus is
//! done with an event: a callback with the [`Delivery`], and the handlers
//! a redelivery skips ([`Finished`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::handler::Failure;

/// Who handles a handler's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The bus: it retries with its [`RetryPolicy`](super::RetryPolicy),
    /// then dead-letters (`publish`, `publish_then`).
    Bus,
    /// The transport that called `deliver`: it redelivers, so the bus
    /// makes one attempt per handler and reports the failure to it.
    Transport,
}

/// The handlers already finished with an event, by name: a redelivery
/// ([`EventBus::redeliver`](super::EventBus::redeliver),
/// [`deliver_then`](super::EventBus::deliver_then)) skips them.
///
/// A transport that redelivers an event after some of its handlers failed
/// keeps [`Delivery::finished`] with the event and passes it back, so the
/// handlers that succeeded do not run again.
///
/// ```
/// use earn::Finished;
///
/// let finished = Finished::from_names(["billing::receipt"]);
/// assert!(finished.contains("billing::receipt"));
/// assert!(Finished::none().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished(Vec<Arc<str>>);

impl Finished {
    /// No handler finished yet: a first delivery.
    pub fn none() -> Finished {
        Finished(Vec::new())
    }

    /// The handlers with these names are finished.
    pub fn from_names<S: Into<Arc<str>>>(names: impl IntoIterator<Item = S>) -> Finished {
        let mut names: Vec<Arc<str>> = names.into_iter().map(Into::into).collect();
        names.sort();
        names.dedup();
        Finished(names)
    }

    /// Whether the handler `name` is finished.
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|n| (**n).cmp(name)).is_ok()
    }

    /// Whether no handler is finished.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, sorted.
    pub fn names(&self) -> &[Arc<str>] {
        &self.0
    }
}

/// How the handlers of one delivered event finished
/// ([`EventBus::deliver`](super::EventBus::deliver)).
#[derive(Debug, Default)]
pub struct Delivery {
    failures: Vec<(Arc<str>, Failure)>,
    finished: Vec<Arc<str>>,
}

impl Delivery {
    /// Every matching handler succeeded (or the event matched none).
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The handlers that gave up, and why.
    pub fn failures(&self) -> &[(Arc<str>, Failure)] {
        &self.failures
    }

    /// The handlers finished with the event: those that succeeded in this
    /// delivery or an earlier one (the [`Finished`] it was given), and
    /// those a handler of higher priority kept it from
    /// ([`Propagation::Stop`](crate::Propagation::Stop)). Give them back
    /// with the next delivery of the event so they are skipped.
    pub fn finished(&self) -> &[Arc<str>] {
        &self.finished
    }

    /// Why the delivery failed, for a dead letter or a log line: each
    /// failure as ``handler `name` failure``, joined by `; `; empty when
    /// it did not fail.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use earn::{Event, EventBus, HandlerError};
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// bus.subscribe_sync("card.*", 0, |_: &Event| Err::<(), _>(HandlerError::msg("declined")))?;
    /// let delivery = bus.deliver(Event::new("card.charged", &1)?).await?;
    /// assert!(delivery.reason().contains("declined"), "{}", delivery.reason());
    /// assert!(!delivery.is_permanent());
    /// # Ok(()) }
    /// ```
    pub fn reason(&self) -> String {
        self.failures
            .iter()
            .map(|(handler, failure)| format!("handler `{handler}` {failure}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether a handler failed in a way another delivery cannot fix
    /// ([`Failure::is_retryable`] is false): a transport dead-letters the
    /// event at once.
    pub fn is_permanent(&self) -> bool {
        self.failures
            .iter()
            .any(|(_, failure)| !failure.is_retryable())
    }
}

/// What a [`Completion`] calls with the outcome.
pub(crate) type Callback = Box<dyn FnOnce(Delivery) + Send>;

/// Calls back once every delivery of one published event has finished
/// (its retries included), with how its handlers finished.
pub(crate) struct Completion {
    /// Deliveries of the event not finished yet (1, plus its retries).
    pending: AtomicUsize,
    pub(crate) owner: Owner,
    /// Handlers this delivery skips.
    pub(crate) skip: Finished,
    outcome: Mutex<Delivery>,
    callback: Mutex<Option<Callback>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Completion {
    pub(crate) fn new(owner: Owner, skip: Finished, callback: Callback) -> Arc<Completion> {
        Arc::new(Completion {
            pending: AtomicUsize::new(1),
            owner,
            skip,
            outcome: Mutex::new(Delivery::default()),
            callback: Mutex::new(Some(callback)),
        })
    }

    /// One more delivery (a retry) before the callback.
    pub(crate) fn add(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn gave_up(&self, handler: Arc<str>, failure: Failure) {
        lock(&self.outcome).failures.push((handler, failure));
    }

    /// Records a finished handler, for a transport to skip next time.
    pub(crate) fn finished(&self, handler: &Arc<str>) {
        if self.owner == Owner::Transport {
            lock(&self.outcome).finished.push(handler.clone());
        }
    }

    /// One delivery is over; the last one calls back.
    pub(crate) fn finish(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let callback = lock(&self.callback).take();
            if let Some(callback) = callback {
                callback(std::mem::take(&mut *lock(&self.outcome)));
            }
        }
    }
}

/// Finishes a delivery however its handling ends (dropped included).
pub(crate) struct FinishOnDrop(pub(crate) Option<Arc<Completion>>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(done) = &self.0 {
            done.finish();
        }
    }
}
