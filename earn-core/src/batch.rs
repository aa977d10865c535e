//! Batch-consuming handlers: a handler that takes up to `size` events at
//! once, called when that many are waiting or `linger` after the first.
//!
//! The bus still delivers, retries and dead-letters event by event: each
//! event waits for the batch it joined, and succeeds or fails with it, or
//! alone when the handler names the events that failed
//! ([`BatchError::at`]). A retried event joins a later batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::event::Event;
use crate::handler::{HandlerError, HandlerResult, HandlerStep, Propagation};

/// What a batch handler's call returns.
pub type BatchStep = Pin<Box<dyn Future<Output = Result<(), BatchError>> + Send + 'static>>;

/// The batch options of an `#[event_handler(…, batch = N, linger_ms = M)]`
/// function, with its generated call.
#[derive(Debug, Clone, Copy)]
pub struct BatchHandler {
    /// The most events in one call.
    pub size: usize,
    /// How long the first event of a batch waits for others, in
    /// milliseconds.
    pub linger_ms: u64,
    /// The generated shim.
    pub call: fn(Vec<Event>) -> BatchStep,
}

/// Why a batch handler failed: the whole batch, or some of its events,
/// named by their index in the `Vec` the handler was given. Events not
/// named succeeded; each named one is retried (or dead-lettered) alone,
/// with its own error.
///
/// Any error converts into a failure of the whole batch with `?`.
///
/// ```
/// use earn::{BatchError, Event, HandlerError};
///
/// fn store(events: Vec<Event>) -> Result<(), BatchError> {
///     let mut failed = BatchError::none();
///     for (i, event) in events.iter().enumerate() {
///         if event.payload_json().is_null() {
///             failed = failed.at(i, HandlerError::permanent("no reading"));
///         }
///     }
///     failed.into_result()
/// }
/// ```
pub struct BatchError {
    all: Option<HandlerError>,
    events: Vec<(usize, HandlerError)>,
}

impl BatchError {
    /// The whole batch failed with `error`.
    pub fn all(error: impl Into<HandlerError>) -> BatchError {
        BatchError {
            all: Some(error.into()),
            events: Vec::new(),
        }
    }

    /// Nothing failed yet: add failures with [`at`](Self::at).
    pub fn none() -> BatchError {
        BatchError {
            all: None,
            events: Vec::new(),
        }
    }

    /// The event at `index` of the batch failed with `error`.
    pub fn at(mut self, index: usize, error: impl Into<HandlerError>) -> BatchError {
        self.events.push((index, error.into()));
        self
    }

    /// Whether no failure was recorded.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.events.is_empty()
    }

    /// `Ok(())` when nothing failed, else `Err(self)`.
    pub fn into_result(self) -> Result<(), BatchError> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The failed events' indexes, with their errors (empty when the whole
    /// batch failed).
    pub fn events(&self) -> &[(usize, HandlerError)] {
        &self.events
    }
}

impl std::fmt::Debug for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchError")
            .field("all", &self.all)
            .field("events", &self.events)
            .finish()
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.all {
            Some(error) => write!(f, "the batch failed: {error}"),
            None => write!(f, "{} event(s) of the batch failed", self.events.len()),
        }
    }
}

impl<E: Into<HandlerError>> From<E> for BatchError {
    fn from(error: E) -> Self {
        BatchError::all(error)
    }
}

/// What a batch handler may return: `()`, or `Result<(), E>` with `E`
/// convertible into [`BatchError`] (any error, or a `BatchError`).
#[diagnostic::on_unimplemented(
    message = "a batch handler must return `()` or `Result<(), E>` with `E` convertible into `BatchError`, not `{Self}`",
    label = "this batch handler returns `{Self}`"
)]
pub trait IntoBatchResult {
    /// The result.
    fn into_batch_result(self) -> Result<(), BatchError>;
}

impl IntoBatchResult for () {
    fn into_batch_result(self) -> Result<(), BatchError> {
        Ok(())
    }
}

impl<E: Into<BatchError>> IntoBatchResult for Result<(), E> {
    fn into_batch_result(self) -> Result<(), BatchError> {
        self.map_err(Into::into)
    }
}

/// The per-event call of a batch handler's registration: never called,
/// since the bus subscribes a batch handler through its
/// [`BatchHandler`].
#[doc(hidden)]
pub fn per_event(_: &Event) -> HandlerStep {
    HandlerStep::Ready(Err(HandlerError::permanent(
        "a batch handler is called with batches; this call is a bug in earn",
    )))
}

/// Events that deserialize as `T` for a handler taking `Vec<T>`, with the
/// index each came from; the others fail alone with their
/// [`PayloadError`](crate::PayloadError), which is permanent.
#[doc(hidden)]
pub fn payloads<T: serde::de::DeserializeOwned>(
    events: &[Event],
) -> (Vec<T>, Vec<usize>, BatchError) {
    let mut payloads = Vec::with_capacity(events.len());
    let mut from = Vec::with_capacity(events.len());
    let mut failed = BatchError::none();
    for (index, event) in events.iter().enumerate() {
        match event.payload::<T>() {
            Ok(payload) => {
                payloads.push(payload);
                from.push(index);
            }
            Err(error) => failed = failed.at(index, error),
        }
    }
    (payloads, from, failed)
}

/// [`payloads`]' failures together with the handler's, whose indexes
/// count the payloads it was given.
#[doc(hidden)]
pub fn merge(
    unreadable: BatchError,
    from: &[usize],
    result: Result<(), BatchError>,
) -> Result<(), BatchError> {
    let mut merged = unreadable;
    match result {
        Ok(()) => {}
        Err(BatchError {
            all: Some(error), ..
        }) => {
            let message = error.to_string();
            let permanent = error.is_permanent();
            merged.all = None;
            for &index in from {
                merged.events.push((index, copy(&message, permanent)));
            }
        }
        Err(BatchError { events, .. }) => {
            for (index, error) in events {
                match from.get(index) {
                    Some(&original) => merged.events.push((original, error)),
                    None => tracing::warn!(
                        index,
                        "a batch handler named a failed event past the end of its batch; ignored"
                    ),
                }
            }
        }
    }
    merged.into_result()
}

fn copy(message: &str, permanent: bool) -> HandlerError {
    if permanent {
        HandlerError::permanent(message.to_owned())
    } else {
        HandlerError::retryable(message.to_owned())
    }
}

pub(crate) type BatchFn = Arc<dyn Fn(Vec<Event>) -> BatchStep + Send + Sync>;

/// Collects the events of one batch subscription and calls its handler.
pub(crate) struct Batcher {
    size: usize,
    linger: Duration,
    run: BatchFn,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    events: Vec<Event>,
    outcomes: Vec<tokio::sync::oneshot::Sender<HandlerResult>>,
    /// Bumped by every batch taken, so a linger timer of an earlier batch
    /// leaves a later one alone.
    round: u64,
}

impl Waiting {
    fn take(&mut self) -> (Vec<Event>, Vec<tokio::sync::oneshot::Sender<HandlerResult>>) {
        self.round = self.round.wrapping_add(1);
        (
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.outcomes),
        )
    }
}

impl Batcher {
    pub(crate) fn new(size: usize, linger: Duration, run: BatchFn) -> Arc<Batcher> {
        Arc::new(Batcher {
            size: size.max(1),
            linger,
            run,
            waiting: Mutex::new(Waiting::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The per-event call: `event` joins the next batch, and the step
    /// resolves with its outcome in it.
    pub(crate) fn call(self: &Arc<Batcher>, event: &Event) -> HandlerStep {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return HandlerStep::Ready(Err(HandlerError::retryable(
                "a batch handler needs a tokio runtime",
            )));
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let full = {
            let mut waiting = self.lock();
            if waiting.events.is_empty() {
                let round = waiting.round;
                let batcher: Weak<Batcher> = Arc::downgrade(self);
                let linger = self.linger;
                runtime.spawn(async move {
                    tokio::time::sleep(linger).await;
                    if let Some(batcher) = batcher.upgrade() {
                        batcher.linger_over(round);
                    }
                });
            }
            waiting.events.push(event.clone());
            waiting.outcomes.push(sender);
            (waiting.events.len() >= self.size).then(|| waiting.take())
        };
        if let Some((events, outcomes)) = full {
            self.run(&runtime, events, outcomes);
        }
        HandlerStep::Pending(Box::pin(async move {
            receiver.await.unwrap_or_else(|_| {
                Err(HandlerError::retryable(
                    "the batch this event was in stopped before it finished (its runtime shut down)",
                ))
            })
        }))
    }

    fn linger_over(&self, round: u64) {
        let taken = {
            let mut waiting = self.lock();
            (waiting.round == round && !waiting.events.is_empty()).then(|| waiting.take())
        };
        if let (Some((events, outcomes)), Ok(runtime)) =
            (taken, tokio::runtime::Handle::try_current())
        {
            self.run(&runtime, events, outcomes);
        }
    }

    fn run(
        &self,
        runtime: &tokio::runtime::Handle,
        events: Vec<Event>,
        outcomes: Vec<tokio::sync::oneshot::Sender<HandlerResult>>,
    ) {
        let count = events.len();
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.run)(events)));
        runtime.spawn(async move {
            let result = match step {
                Ok(step) => crate::catch_unwind(step).await,
                Err(panic) => Err(crate::panic::message(&*panic)),
            };
            let mut each: Vec<HandlerResult> = (0..count).map(|_| Ok(Propagation::Continue)).collect();
            match result {
                Ok(Ok(())) => {}
                Ok(Err(BatchError {
                    all: Some(error), ..
                })) => {
                    let (message, permanent) = (error.to_string(), error.is_permanent());
                    each.iter_mut()
                        .for_each(|outcome| *outcome = Err(copy(&message, permanent)));
                }
                Ok(Err(BatchError { events, .. })) => {
                    for (index, error) in events {
                        match each.get_mut(index) {
                            Some(outcome) => *outcome = Err(error),
                            None => tracing::warn!(
                                index,
                                count,
                                "a batch handler named a failed event past the end of its batch; ignored"
                            ),
                        }
                    }
                }
                Err(panic) => {
                    let message = format!("the batch handler panicked: {panic}");
                    each.iter_mut()
                        .for_each(|outcome| *outcome = Err(copy(&message, false)));
                }
            }
            for (sender, outcome) in outcomes.into_iter().zip(each) {
                let _ = sender.send(outcome);
            }
        });
    }
}
