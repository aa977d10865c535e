//! Where the events of committed transactions go: straight to an event bus,
//! or through the transactional outbox, which plugs in here as a staging
//! step (rows written in the transaction) and a hand-over after the commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use earn_core::{Error, Event, EventBus};

use crate::connection::Conn;
use crate::deferred::BoxFuture;

/// An event raised in a transaction, ready for its publisher.
pub(crate) struct Raised {
    pub(crate) event: Event,
    /// The event serialized, when the publisher stages rows.
    pub(crate) row: Option<String>,
}

/// What a [`Tx`](crate::Tx) hands its events to. The transaction knows
/// nothing else about where they go.
pub(crate) trait Publisher: Send + Sync + 'static {
    /// Takes an event raised in a transaction, or refuses it (too large
    /// for where it goes) before anything is committed.
    fn accept(&self, event: Event) -> Result<Raised, Error> {
        Ok(Raised { event, row: None })
    }

    /// Whether raised events are written in the transaction
    /// ([`stage`](Publisher::stage)).
    fn stages(&self) -> bool {
        false
    }

    /// Writes `events` in the transaction on `conn`, at the savepoint level
    /// that raised them; called before that level ends.
    fn stage<'c>(
        &'c self,
        conn: &'c mut Conn,
        events: Vec<&'c Raised>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'c>> {
        let _ = (conn, events);
        Box::pin(async { Ok(()) })
    }

    /// After the commit: publishes the committed events in the order they
    /// were raised.
    fn publish(&self, events: Vec<Event>) -> BoxFuture<'_>;
}

/// Publishes to a bus: the database's own, or the process-wide one.
pub(crate) struct ToBus {
    bus: Option<EventBus>,
    /// Whether this published to the process-wide bus, which outlives it.
    used_global: AtomicBool,
}

impl ToBus {
    pub(crate) fn shared(bus: Option<EventBus>) -> Arc<dyn Publisher> {
        Arc::new(ToBus {
            bus,
            used_global: AtomicBool::new(false),
        })
    }
}

impl Publisher for ToBus {
    fn publish(&self, events: Vec<Event>) -> BoxFuture<'_> {
        let bus = match &self.bus {
            Some(bus) => bus,
            None => {
                self.used_global.store(true, Ordering::Relaxed);
                EventBus::global()
            }
        };
        Box::pin(async move {
            for event in events {
                publish_one(bus, event).await;
            }
        })
    }
}

/// Publishes one committed event; a refusal (queue full with
/// `Overflow::Error`, bus shut down) is reported: the data is committed,
/// the event cannot be taken back.
pub(crate) async fn publish_one(bus: &EventBus, event: Event) {
    // Kept for the report: the name is shared (an `Arc`), not copied.
    let name = event.name().clone();
    let id = event.id();
    if let Err(error) = bus.publish(event).await {
        metrics::counter!("earn_events_undelivered_total").increment(1);
        tracing::error!(event = name.as_str(), event_id = %id, %error, "an event of a committed transaction could not be published");
    }
}

impl Drop for ToBus {
    fn drop(&mut self) {
        // The process-wide bus lives in a static and its queue dies with
        // the process: the last chance to say that events are about to be
        // lost is when the last handle of the database goes, usually at
        // the end of `main`.
        if !self.used_global.load(Ordering::Relaxed) {
            return;
        }
        let waiting = EventBus::global().in_flight();
        if waiting > 0 {
            tracing::warn!(
                events = waiting,
                "{waiting} event(s) published to the process-wide bus are still queued or being \
                 handled as the last handle of the database is dropped; they are lost if the \
                 process exits now: call `db.bus().shutdown(deadline).await` before `main` returns"
            );
        }
    }
}
