//! Aggregation windows (Nexus's EventAggregator): events collected by key
//! for a window, with a debounce, and one summary event for each window.
//!
//! Each collected event's delivery finishes only once its window's summary
//! is published: a transport that redelivers (Redis Streams, NATS, the
//! outbox) keeps the events of an open window unacknowledged, so a
//! process that dies mid-window loses nothing: the events come back to
//! another consumer, whose window publishes the summary.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::bus::{BusError, EventBus, SubscriptionId};
use crate::event::Event;
use crate::handler::{HandlerError, HandlerResult, HandlerStep, Propagation};
use crate::name::EventName;
use crate::sink::EventSink;

/// The metadata key of a summary: the key of its window.
pub const WINDOW_KEY: &str = "earn-window-key";
/// The metadata key of a summary: how many events it sums up.
pub const WINDOW_COUNT: &str = "earn-window-count";

type KeyFn = Arc<dyn Fn(&Event) -> Option<String> + Send + Sync>;
type SummarizeFn = Arc<dyn Fn(&str, &[Event]) -> serde_json::Value + Send + Sync>;

/// Collects the events matching a pattern into windows by key and
/// publishes one summary event per window.
///
/// A window opens with the first event of its key and closes when the
/// first of these happens: `window` has passed since it opened; no event
/// came for `debounce` (if set); it holds `max_events` (if set). Its
/// summary is named as given, carries what `summarize` makes of the
/// window's events (by default the key, the count and the event ids) and
/// the window's key and count in its metadata (`earn-window-key`,
/// `earn-window-count`), and its id is derived from the window's first
/// event: a window opened again by the same events after a crash sends a
/// summary with the same id, which consumers can drop.
///
/// ```
/// use std::time::Duration;
/// use earn::aggregate::Aggregator;
/// use earn::{Event, EventBus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::builder().without_registered_handlers().build()?;
/// Aggregator::new("user.activity.*", "user.activity.summary")?
///     .key_field("user_id")
///     .debounce(Duration::from_millis(50))
///     .window(Duration::from_secs(5))
///     .subscribe(&bus)?;
/// let summary = bus.wait_for("user.activity.summary", Duration::from_secs(5));
/// for page in ["/", "/pricing", "/signup"] {
///     bus.publish(Event::new("user.activity.view", &serde_json::json!({"user_id": 7, "page": page}))?).await?;
/// }
/// let summary = summary.await?;
/// assert_eq!(summary.meta("earn-window-count"), Some("3"));
/// assert_eq!(summary.payload_json()["key"], "7");
/// # Ok(()) }
/// ```
pub struct Aggregator {
    pattern: String,
    summary: EventName,
    key: KeyFn,
    window: Duration,
    debounce: Option<Duration>,
    max_events: Option<usize>,
    summarize: SummarizeFn,
    sink: Option<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("pattern", &self.pattern)
            .field("summary", &self.summary.as_str())
            .field("window", &self.window)
            .field("debounce", &self.debounce)
            .field("max_events", &self.max_events)
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// Windows over the events matching `pattern`, each summed up as an
    /// event named `summary`. By default every event has the same key (one
    /// window at a time), a window lasts 5 seconds, and the summary is
    /// published on the bus the aggregator subscribes to.
    pub fn new(pattern: &str, summary: &str) -> Result<Aggregator, crate::Error> {
        crate::pattern::Pattern::new(pattern).map_err(BusError::from)?;
        let summary = EventName::new(summary).map_err(crate::EventError::from)?;
        Ok(Aggregator {
            pattern: pattern.to_owned(),
            summary,
            key: Arc::new(|_| Some(String::new())),
            window: Duration::from_secs(5),
            debounce: None,
            max_events: None,
            summarize: Arc::new(default_summary),
            sink: None,
        })
    }

    /// The key of an event's window; an event with no key (`None`) is
    /// left alone.
    pub fn key(mut self, key: impl Fn(&Event) -> Option<String> + Send + Sync + 'static) -> Self {
        self.key = Arc::new(key);
        self
    }

    /// The key is the payload's `field` (a string as it is, any other
    /// value as JSON); an event without it is left alone.
    pub fn key_field(self, field: &str) -> Self {
        let field = field.to_owned();
        self.key(move |event| match event.payload_json().get(&field)? {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        })
    }

    /// The longest a window stays open, from its first event (default 5 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Closes a window once no event came for `quiet` (never later than
    /// [`window`](Self::window) after it opened).
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.debounce = Some(quiet);
        self
    }

    /// Closes a window once it holds `count` events.
    pub fn max_events(mut self, count: usize) -> Self {
        self.max_events = Some(count.max(1));
        self
    }

    /// The summary's payload, from the window's key and events.
    pub fn summarize(
        mut self,
        summarize: impl Fn(&str, &[Event]) -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.summarize = Arc::new(summarize);
        self
    }

    /// Hands summaries to `sink` (Redis Streams, NATS, another bus)
    /// instead of publishing them on the aggregator's bus.
    pub fn publish_to(mut self, sink: impl EventSink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Subscribes the aggregator to `bus`. Its summaries are never
    /// collected by it, even when its pattern matches their name.
    pub fn subscribe(self, bus: &EventBus) -> Result<SubscriptionId, BusError> {
        let pattern = self.pattern.clone();
        let windows = Arc::new(Windows {
            config: self,
            bus: bus.downgrade(),
            open: Mutex::new(HashMap::new()),
        });
        bus.subscribe_deferred(&pattern, Arc::new(move |event: &Event| windows.add(event)))
    }
}

fn default_summary(key: &str, events: &[Event]) -> serde_json::Value {
    serde_json::json!({
        "key": key,
        "count": events.len(),
        "events": events.iter().map(|e| e.id().to_string()).collect::<Vec<_>>(),
    })
}

struct Windows {
    config: Aggregator,
    bus: crate::bus::WeakBus,
    open: Mutex<HashMap<String, Window>>,
}

struct Window {
    /// Tells the timers of an earlier window of the key to leave this one.
    round: u64,
    events: Vec<Event>,
    ids: HashSet<uuid::Uuid>,
    outcomes: Vec<tokio::sync::oneshot::Sender<HandlerResult>>,
}

static ROUNDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Windows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(self: &Arc<Self>, event: &Event) -> HandlerStep {
        let own_summary = event.name() == &self.config.summary && event.meta(WINDOW_KEY).is_some();
        let Some(key) = (!own_summary).then(|| (self.config.key)(event)).flatten() else {
            return HandlerStep::Ready(Ok(Propagation::Continue));
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return HandlerStep::Ready(Err(HandlerError::retryable(
                "an aggregator needs a tokio runtime",
            )));
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (round, count, full) = {
            let mut open = self.lock();
            let opened = !open.contains_key(&key);
            let window = open.entry(key.clone()).or_insert_with(|| Window {
                round: ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                events: Vec::new(),
                ids: HashSet::new(),
                outcomes: Vec::new(),
            });
            // A redelivery of an event the window holds finishes with it.
            if window.ids.insert(event.id()) {
                window.events.push(event.clone());
            }
            window.outcomes.push(sender);
            let count = window.events.len();
            if opened {
                self.close_after(
                    &runtime,
                    key.clone(),
                    window.round,
                    None,
                    self.config.window,
                );
            }
            let full = self.config.max_events.is_some_and(|max| count >= max);
            (window.round, count, full)
        };
        if full {
            self.close(&runtime, &key, round, None);
        } else if let Some(quiet) = self.config.debounce {
            self.close_after(&runtime, key, round, Some(count), quiet);
        }
        HandlerStep::Pending(Box::pin(async move {
            receiver.await.unwrap_or_else(|_| {
                Err(HandlerError::retryable(
                    "the aggregation window of this event stopped before its summary was published",
                ))
            })
        }))
    }

    /// Closes the window of `key` after `delay`, if it is still the same
    /// window and (for a debounce) got no event since it held `count`.
    fn close_after(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        key: String,
        round: u64,
        count: Option<usize>,
        delay: Duration,
    ) {
        let windows: Weak<Windows> = Arc::downgrade(self);
        let handle = runtime.clone();
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(windows) = windows.upgrade() {
                windows.close(&handle, &key, round, count);
            }
        });
    }

    fn close(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        key: &str,
        round: u64,
        count: Option<usize>,
    ) {
        let window = {
            let mut open = self.lock();
            match open.get(key) {
                Some(window)
                    if window.round == round
                        && count.is_none_or(|count| window.events.len() == count) =>
                {
                    open.remove(key)
                }
                _ => None,
            }
        };
        let Some(window) = window else {
            return;
        };
        let windows = self.clone();
        let key = key.to_owned();
        runtime.spawn(async move {
            let outcome = windows.publish(&key, &window.events).await;
            for sender in window.outcomes {
                let _ = sender.send(match &outcome {
                    Ok(()) => Ok(Propagation::Continue),
                    Err(message) => Err(HandlerError::retryable(message.clone())),
                });
            }
        });
    }

    async fn publish(&self, key: &str, events: &[Event]) -> Result<(), String> {
        let config = &self.config;
        let payload = (config.summarize)(key, events);
        let summary = summary_event(config.summary.clone(), payload, key, events);
        match &config.sink {
            // Handed over, the sink is responsible for it: when it calls
            // `accepted` does not matter here.
            Some(sink) => sink
                .hand_over(summary, Box::new(|| ()))
                .await
                .map_err(|error| format!("the window's summary was not published: {error}")),
            None => match self.bus.upgrade() {
                Some(bus) => bus
                    .publish(summary)
                    .await
                    .map_err(|error| format!("the window's summary was not published: {error}")),
                None => Err("the aggregator's bus is gone".to_owned()),
            },
        }
    }
}

/// The summary of a window: in the correlation of its first event, with
/// an id derived from that event's id and the summary's name.
fn summary_event(
    name: EventName,
    payload: serde_json::Value,
    key: &str,
    events: &[Event],
) -> Event {
    let mut event = Event::from_value(name, payload)
        .with_meta(WINDOW_KEY, key)
        .with_meta(WINDOW_COUNT, events.len().to_string());
    if let Some(first) = events.first() {
        let mut bytes = *first.id().as_bytes();
        for (i, byte) in event.name().as_str().bytes().enumerate() {
            bytes[i % 16] ^= byte;
        }
        let data = event.data_mut();
        data.id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
        data.correlation_id = first.correlation_id();
        data.causation_id = Some(first.id());
    }
    event
}
