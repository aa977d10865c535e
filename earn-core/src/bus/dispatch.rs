//! Calling handlers: priority order, isolation of failures, panics and
//! timeouts, and the current event for correlation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::subscriptions::{Resolved, Subscription};
use crate::event::Event;
use crate::handler::{Failure, HandlerStep, Propagation};

tokio::task_local! {
    /// The event whose async handler is running in this task.
    static CURRENT: Event;
}

thread_local! {
    /// The event whose sync handler is running on this thread: a sync
    /// handler cannot yield, so a thread-local is enough and cheaper than
    /// entering a task-local scope on every call.
    static CURRENT_SYNC: std::cell::RefCell<Option<Event>> = const { std::cell::RefCell::new(None) };
}

/// Restores the previous sync current event, even if the handler panics.
struct SyncScope(Option<Event>);

impl SyncScope {
    fn enter(event: &Event) -> SyncScope {
        SyncScope(CURRENT_SYNC.with(|current| current.replace(Some(event.clone()))))
    }
}

impl Drop for SyncScope {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT_SYNC.with(|current| *current.borrow_mut() = previous);
    }
}

/// Ties `event` to the event being handled in this task or thread, if any:
/// same correlation id, and that event's id as causation id.
pub(crate) fn inherit(event: Event) -> Event {
    if event.causation_id().is_some() {
        return event;
    }
    if let Some(cause) = CURRENT_SYNC.with(|current| current.borrow().clone()) {
        return event.caused_by(&cause);
    }
    match CURRENT.try_with(Event::clone) {
        Ok(cause) => event.caused_by(&cause),
        Err(_) => event,
    }
}

/// The span of an inline dispatch, carrying the ids of the event's chain:
/// a consumer span under the producer's if the event carries a trace
/// context (feature `otel`).
pub(crate) fn emit_span(event: &Event) -> tracing::Span {
    #[cfg(feature = "otel")]
    if let Some(span) = crate::trace_context::consumer_span(event) {
        return span;
    }
    if !tracing::enabled!(tracing::Level::DEBUG) {
        // Without a subscriber that wants it, a span still costs: with
        // tracing's `log` feature (which sqlx turns on) its fields are
        // formatted for `log`. A dispatch's span is for tracing only.
        return tracing::Span::none();
    }
    tracing::debug_span!("earn.emit", event = event.name().as_str(), event_id = %event.id(), correlation_id = %event.correlation_id())
}

/// The span of a queued delivery (one attempt); a consumer span as in
/// [`emit_span`].
pub(crate) fn deliver_span(event: &Event) -> tracing::Span {
    #[cfg(feature = "otel")]
    if let Some(span) = crate::trace_context::consumer_span(event) {
        return span;
    }
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return tracing::Span::none();
    }
    tracing::debug_span!("earn.deliver", event = event.name().as_str(), event_id = %event.id(), correlation_id = %event.correlation_id(), attempt = event.attempt())
}

/// Calls one handler, turning an error, a panic or a timeout into a
/// [`Failure`]: one handler never stops the others.
pub(crate) async fn call(
    sub: &Subscription,
    event: &Event,
    default_timeout: Option<Duration>,
    stats: &super::stats::Stats,
) -> Result<Propagation, Failure> {
    settle(start(sub, event), sub, event, default_timeout, stats).await
}

/// A handler call's first, synchronous part: a sync handler runs, an async
/// one returns its future (a batch handler's event joins its batch here).
pub(crate) fn start(sub: &Subscription, event: &Event) -> std::thread::Result<HandlerStep> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _scope = SyncScope::enter(event);
        (sub.call)(event)
    }))
}

/// The rest of a handler call begun with [`start`]: its future run under
/// its timeout, and its outcome counted.
pub(crate) async fn settle(
    step: std::thread::Result<HandlerStep>,
    sub: &Subscription,
    event: &Event,
    default_timeout: Option<Duration>,
    stats: &super::stats::Stats,
) -> Result<Propagation, Failure> {
    let result = match step {
        Err(panic) => Err(Failure::Panic(crate::panic::message(&*panic))),
        Ok(HandlerStep::Ready(result)) => result.map_err(error_failure),
        Ok(HandlerStep::Pending(future)) => {
            // Latency is measured for async handlers; a sync handler's time
            // is the dispatch's own.
            let started = Instant::now();
            let span =
                tracing::debug_span!("earn.handler", handler = &*sub.name, event_id = %event.id());
            let future = CURRENT
                .scope(event.clone(), crate::catch_unwind(future))
                .instrument(span);
            let outcome = match sub.timeout.or(default_timeout) {
                Some(limit) => tokio::time::timeout(limit, future)
                    .await
                    .map_err(|_| Failure::Timeout(limit)),
                None => Ok(future.await),
            };
            metrics::histogram!("earn_handler_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(result)) => result.map_err(error_failure),
                Ok(Err(panic)) => Err(Failure::Panic(panic)),
                Err(timeout) => Err(timeout),
            }
        }
    };
    record(sub, result.as_ref().err());
    stats.record(result.is_ok());
    result
}

fn error_failure(error: crate::handler::HandlerError) -> Failure {
    Failure::Error {
        message: error.to_string(),
        permanent: error.is_permanent(),
    }
}

#[inline]
fn record(sub: &Subscription, failure: Option<&Failure>) {
    // Literal labels: the keys are static, nothing is allocated per call.
    let calls = match failure {
        None => metrics::counter!("earn_handler_calls_total", "outcome" => "ok"),
        Some(Failure::Error { .. }) => {
            metrics::counter!("earn_handler_calls_total", "outcome" => "error")
        }
        Some(Failure::Panic(_)) => {
            metrics::counter!("earn_handler_calls_total", "outcome" => "panic")
        }
        Some(Failure::Timeout(_)) => {
            metrics::counter!("earn_handler_calls_total", "outcome" => "timeout")
        }
    };
    calls.increment(1);
    if let Some(failure) = failure {
        metrics::counter!("earn_handler_failures_total").increment(1);
        tracing::warn!(handler = &*sub.name, pattern = sub.pattern.as_str(), %failure, "event handler {} {failure}", sub.name);
    }
}

/// How one handler fared in an emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotRun,
    Succeeded,
    Filtered,
    Failed,
}

/// What one inline [`emit`](super::EventBus::emit) did. Built without
/// allocating when every handler succeeds; names are looked up on demand.
#[derive(Clone)]
pub struct EmitReport {
    event_id: uuid::Uuid,
    names: Arc<[Arc<str>]>,
    /// One state per handler, two bits each, for the first 32 handlers;
    /// `overflow` holds the rest.
    states: u64,
    overflow: Vec<State>,
    failed: Vec<(Arc<str>, Failure)>,
    stopped: bool,
}

impl EmitReport {
    fn new(event_id: uuid::Uuid, names: Arc<[Arc<str>]>) -> Self {
        EmitReport {
            event_id,
            names,
            states: 0,
            overflow: Vec::new(),
            failed: Vec::new(),
            stopped: false,
        }
    }

    fn set(&mut self, index: usize, state: State) {
        if index < 32 {
            self.states |= (state as u64) << (2 * index);
        } else {
            let at = index - 32;
            if self.overflow.len() <= at {
                self.overflow.resize(at + 1, State::NotRun);
            }
            self.overflow[at] = state;
        }
    }

    fn state(&self, index: usize) -> State {
        if index < 32 {
            match (self.states >> (2 * index)) & 0b11 {
                1 => State::Succeeded,
                2 => State::Filtered,
                3 => State::Failed,
                _ => State::NotRun,
            }
        } else {
            self.overflow
                .get(index - 32)
                .copied()
                .unwrap_or(State::NotRun)
        }
    }

    fn named(&self, wanted: State) -> Vec<Arc<str>> {
        (0..self.names.len())
            .filter(|&i| self.state(i) == wanted)
            .map(|i| self.names[i].clone())
            .collect()
    }

    /// The event's id.
    pub fn event_id(&self) -> uuid::Uuid {
        self.event_id
    }

    /// Handlers that ran and succeeded, in the order they ran.
    pub fn succeeded(&self) -> Vec<Arc<str>> {
        self.named(State::Succeeded)
    }

    /// Handlers that failed, with why, in the order they ran.
    pub fn failed(&self) -> &[(Arc<str>, Failure)] {
        &self.failed
    }

    /// Handlers skipped by their filter.
    pub fn filtered(&self) -> Vec<Arc<str>> {
        self.named(State::Filtered)
    }

    /// Whether a handler stopped propagation (lower priorities did not run).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether every handler that ran succeeded.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// How many handlers ran (succeeded or failed).
    pub fn ran(&self) -> usize {
        (0..self.names.len())
            .filter(|&i| matches!(self.state(i), State::Succeeded | State::Failed))
            .count()
    }
}

impl std::fmt::Debug for EmitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmitReport")
            .field("event_id", &self.event_id)
            .field("succeeded", &self.succeeded())
            .field("failed", &self.failed)
            .field("filtered", &self.filtered())
            .field("stopped", &self.stopped)
            .finish()
    }
}

/// The failure of a handler that did not get `event` because its
/// envelope could not be opened: permanent, counted and logged as a call
/// that failed.
pub(crate) fn unopened(
    sub: &Subscription,
    error: &crate::envelope::EnvelopeError,
    stats: &super::stats::Stats,
) -> Failure {
    let failure = Failure::Error {
        message: error.to_string(),
        permanent: true,
    };
    record(sub, Some(&failure));
    stats.record(false);
    failure
}

/// Runs the handlers of `event` inline, in order, once it is opened.
pub(crate) async fn emit(
    handlers: Resolved,
    event: &Event,
    envelope: &crate::envelope::Envelope,
    default_timeout: Option<Duration>,
    stats: &super::stats::Stats,
) -> EmitReport {
    let mut report = EmitReport::new(event.id(), handlers.names.clone());
    let event = match envelope.opened(event, false) {
        Ok(opened) => opened,
        Err(error) => {
            for (index, sub) in handlers.subs.iter().enumerate() {
                report.set(index, State::Failed);
                report
                    .failed
                    .push((sub.name.clone(), unopened(sub, &error, stats)));
            }
            return report;
        }
    };
    let event = &*event;
    for (index, sub) in handlers.subs.iter().enumerate() {
        if sub.filter.as_ref().is_some_and(|filter| !filter(event)) {
            report.set(index, State::Filtered);
            continue;
        }
        match call(sub, event, default_timeout, stats).await {
            Ok(flow) => {
                report.set(index, State::Succeeded);
                if flow == Propagation::Stop {
                    report.stopped = true;
                    break;
                }
            }
            Err(failure) => {
                report.set(index, State::Failed);
                report.failed.push((sub.name.clone(), failure));
            }
        }
    }
    report
}
