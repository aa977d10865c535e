//! What the bus refuses, and what `shutdown` reports.

use std::time::Duration;

use crate::pattern::PatternError;

/// What `publish` does when the queue is full. Never a silent drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for room (back-pressure on the publisher).
    #[default]
    Wait,
    /// Return [`BusError::QueueFull`] at once.
    Error,
}

/// Why the bus refused something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The queue is full and the overflow policy is [`Overflow::Error`].
    #[error("the event queue is full ({capacity} events): event `{event}` was not published")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
        /// The event's name.
        event: String,
    },
    /// The bus was shut down.
    #[error("the event bus is shut down: event `{event}` was not published")]
    Closed {
        /// The event's name.
        event: String,
    },
    /// An invalid pattern.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// `wait_for` saw no matching event in time.
    #[error("no event matching `{pattern}` within {timeout:?}")]
    Timeout {
        /// The pattern waited for.
        pattern: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// A requeued dead letter's handler is no longer subscribed.
    #[error("handler `{0}` of the dead letter is not subscribed to this bus")]
    NoHandler(String),
    /// The event could not be sealed by the bus's envelope.
    #[error(transparent)]
    Envelope(#[from] crate::envelope::EnvelopeError),
    /// The bus was built outside a tokio runtime.
    #[error("EventBus::build must be called inside a tokio runtime (its workers are tokio tasks)")]
    NoRuntime,
}

/// What [`EventBus::shutdown`](super::EventBus::shutdown) left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether every queued event, retry and delayed event finished in time.
    pub drained: bool,
    /// Events still queued, retrying or delayed at the deadline.
    pub left: usize,
}
