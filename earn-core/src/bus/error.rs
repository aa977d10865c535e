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
    /// No reply to a [`request`](super::EventBus::request) came in time.
    #[error(
        "no reply to request `{event}` ({id}) within {timeout:?}: no handler replied \
         (a handler answers with `earn::reply::send`)"
    )]
    NoReply {
        /// The request's name.
        event: String,
        /// The request's id.
        id: uuid::Uuid,
        /// How long it waited.
        timeout: Duration,
    },
    /// A request matched no handler of this bus: nothing could reply.
    #[error("request `{event}` matches no handler of this bus: nothing would reply")]
    NoResponder {
        /// The request's name.
        event: String,
    },
    /// [`reply::send`](crate::reply::send) to an event that is not a request.
    #[error(
        "event `{event}` ({id}) is not a request (it has no `earn-reply-to`): there is nowhere to reply"
    )]
    NotARequest {
        /// The event's name.
        event: String,
        /// The event's id.
        id: uuid::Uuid,
    },
    /// A request asked for its reply through a transport this process has
    /// no consumer of.
    #[error(
        "the reply to `{event}` goes through `{scheme}`, and this process has no route for it \
         (a consumer of that transport registers one when it starts)"
    )]
    NoReplyRoute {
        /// The scheme of the request's `earn-reply-to`.
        scheme: String,
        /// The request's name.
        event: String,
    },
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
