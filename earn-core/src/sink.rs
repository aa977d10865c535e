//! `EventSink`: where a relay hands committed events over.

use std::future::Future;
use std::pin::Pin;

use crate::bus::EventBus;
use crate::error::BoxError;
use crate::event::Event;

/// A boxed, sendable future (what [`EventSink::hand_over`] returns).
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// Something that takes responsibility for events: the in-process
/// [`EventBus`], or a broker such as Redis Streams (`earn-redis`).
///
/// The transactional outbox hands each committed event to a sink and
/// deletes its row only once the sink calls `accepted`: for the bus, when
/// every handler has finished with it; for a broker, when the broker has
/// stored it. A crash before that leaves the row for the relay, so nothing
/// is lost between a commit and a broker.
pub trait EventSink: Send + Sync + 'static {
    /// Hands `event` over. Resolves once the sink has taken it (or refused
    /// it with an error, in which case `accepted` is never called); calls
    /// `accepted`, possibly later, once the sink is responsible for it.
    fn hand_over(&self, event: Event, accepted: Box<dyn FnOnce() + Send>) -> SinkFuture<'_>;

    /// The largest event this sink accepts, in bytes of its serialized
    /// form (the JSON of its [`EventData`](crate::EventData)), or `None`
    /// when there is no limit (the default, and the in-process bus).
    ///
    /// A producer can refuse an event over the limit before it commits it,
    /// rather than have the sink refuse it later: the transactional outbox
    /// would otherwise hold an event that can never be handed over.
    ///
    /// ```
    /// use earn::{EventBus, EventSink};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// assert_eq!(bus.max_payload(), None);
    /// # Ok(()) }
    /// ```
    fn max_payload(&self) -> Option<usize> {
        None
    }

    /// The [`Envelope`](crate::Envelope) this sink seals events with, if
    /// any. A producer that keeps events before handing them over seals
    /// them with it first: the transactional outbox stores its rows sealed.
    fn envelope(&self) -> Option<&crate::Envelope> {
        None
    }
}

impl EventSink for EventBus {
    fn hand_over(&self, event: Event, accepted: Box<dyn FnOnce() + Send>) -> SinkFuture<'_> {
        Box::pin(async move {
            // Stored sealed by its producer: opened, never sealed again
            // with this bus's keys.
            self.publish_handled(event, accepted, crate::bus::Seal::Sealed)
                .await
                .map_err(BoxError::from)
        })
    }

    fn envelope(&self) -> Option<&crate::Envelope> {
        self.envelope_in_use()
    }
}
