//! Helpers for the tests of applications built on earn.

use std::sync::{Arc, Mutex};

use crate::bus::{BusError, EventBus, SubscriptionId};
use crate::event::Event;

/// Records every event matching a pattern on a bus, to assert what was
/// emitted or published.
///
/// ```
/// use earn::{Event, EventBus, testing::Recorder};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::builder().without_registered_handlers().build()?;
/// let recorder = Recorder::attach(&bus, "user.**")?;
/// bus.publish(Event::new("user.created", &1)?).await?;
/// bus.wait_idle().await; // everything published has been handled
/// assert_eq!(recorder.names(), ["user.created"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    bus: EventBus,
    id: SubscriptionId,
}

impl Recorder {
    /// Starts recording the events matching `pattern`, ahead of every other
    /// handler (so a handler that stops propagation does not hide them).
    pub fn attach(bus: &EventBus, pattern: &str) -> Result<Recorder, BusError> {
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        let id = bus.subscribe_sync(pattern, i32::MAX, move |event: &Event| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event.clone());
        })?;
        Ok(Recorder {
            events,
            bus: bus.clone(),
            id,
        })
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Their names.
    pub fn names(&self) -> Vec<String> {
        self.events().iter().map(|e| e.name().to_string()).collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Stops recording.
    pub fn detach(self) {
        self.bus.unsubscribe(self.id);
    }
}
