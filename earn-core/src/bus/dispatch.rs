//! Calling handlers: priority order, isolation of failures, panics and
//! timeouts, and the current event for correlation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::subscriptions::Subscription;
use crate::event::Event;
use crate::handler::{Failure, HandlerStep, Propagation};

tokio::task_local! {
    /// The event whose handler is running in this task.
    static CURRENT: Event;
}

/// Ties `event` to the event being handled in this task, if any: same
/// correlation id, and that event's id as causation id.
pub(crate) fn inherit(event: Event) -> Event {
    if event.causation_id().is_some() {
        return event;
    }
    match CURRENT.try_with(Event::clone) {
        Ok(cause) => event.caused_by(&cause),
        Err(_) => event,
    }
}

/// The span of an inline dispatch, carrying the ids of the event's chain.
pub(crate) fn emit_span(event: &Event) -> tracing::Span {
    tracing::debug_span!("earn.emit", event = event.name().as_str(), event_id = %event.id(), correlation_id = %event.correlation_id())
}

/// The span of a queued delivery (one attempt).
pub(crate) fn deliver_span(event: &Event) -> tracing::Span {
    tracing::debug_span!("earn.deliver", event = event.name().as_str(), event_id = %event.id(), correlation_id = %event.correlation_id(), attempt = event.attempt())
}

/// Calls one handler, turning an error, a panic or a timeout into a
/// [`Failure`]: one handler never stops the others.
pub(crate) async fn call(
    sub: &Subscription,
    event: &Event,
    default_timeout: Option<Duration>,
) -> Result<Propagation, Failure> {
    let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        CURRENT.sync_scope(event.clone(), || (sub.call)(event))
    }));
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
    record(sub, &result);
    result
}

fn error_failure(error: crate::handler::HandlerError) -> Failure {
    Failure::Error {
        message: error.to_string(),
        permanent: error.is_permanent(),
    }
}

#[inline]
fn record(sub: &Subscription, result: &Result<Propagation, Failure>) {
    // Literal labels: the keys are static, nothing is allocated per call.
    let calls = match result {
        Ok(_) => metrics::counter!("earn_handler_calls_total", "outcome" => "ok"),
        Err(Failure::Error { .. }) => {
            metrics::counter!("earn_handler_calls_total", "outcome" => "error")
        }
        Err(Failure::Panic(_)) => {
            metrics::counter!("earn_handler_calls_total", "outcome" => "panic")
        }
        Err(Failure::Timeout(_)) => {
            metrics::counter!("earn_handler_calls_total", "outcome" => "timeout")
        }
    };
    calls.increment(1);
    if let Err(failure) = result {
        metrics::counter!("earn_handler_failures_total").increment(1);
        tracing::warn!(handler = &*sub.name, pattern = sub.pattern.as_str(), %failure, "event handler {} {failure}", sub.name);
    }
}

/// What one inline [`emit`](super::EventBus::emit) did.
#[derive(Debug, Clone)]
pub struct EmitReport {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// Handlers that ran and succeeded, in the order they ran.
    pub succeeded: Vec<Arc<str>>,
    /// Handlers that failed, with why.
    pub failed: Vec<(Arc<str>, Failure)>,
    /// Skipped by their filter.
    pub filtered: Vec<Arc<str>>,
    /// Whether a handler stopped propagation (lower priorities did not run).
    pub stopped: bool,
}

impl EmitReport {
    /// Whether every handler that ran succeeded.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// How many handlers ran (succeeded or failed).
    pub fn ran(&self) -> usize {
        self.succeeded.len() + self.failed.len()
    }
}

/// Runs the handlers of `event` inline, in order.
pub(crate) async fn emit(
    handlers: &[Arc<Subscription>],
    event: &Event,
    default_timeout: Option<Duration>,
) -> EmitReport {
    let mut report = EmitReport {
        event_id: event.id(),
        succeeded: Vec::with_capacity(handlers.len()),
        failed: Vec::new(),
        filtered: Vec::new(),
        stopped: false,
    };
    for sub in handlers {
        if sub.filter.as_ref().is_some_and(|filter| !filter(event)) {
            report.filtered.push(sub.name.clone());
            continue;
        }
        match call(sub, event, default_timeout).await {
            Ok(flow) => {
                report.succeeded.push(sub.name.clone());
                if flow == Propagation::Stop {
                    report.stopped = true;
                    break;
                }
            }
            Err(failure) => report.failed.push((sub.name.clone(), failure)),
        }
    }
    report
}
