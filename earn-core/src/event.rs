//! `Event`: what travels from emitters to handlers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::name::{EventName, NameError};

/// An application event: a validated name, a JSON payload and the ids that
/// tie it to what caused it. Cheap to clone (shared).
///
/// ```
/// use earn::Event;
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Signup { email: String }
///
/// let event = Event::new("user.created", &Signup { email: "ada@example.com".into() })?;
/// assert_eq!(event.name().as_str(), "user.created");
/// assert_eq!(event.correlation_id(), event.id()); // a new chain starts here
/// let signup: Signup = event.payload()?;
/// assert_eq!(signup.email, "ada@example.com");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Event(Arc<EventData>);

/// The fields of an [`Event`], as serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    /// Unique, time-ordered (UUID v7): the dedup key end to end.
    pub id: Uuid,
    /// `user.created`.
    pub name: EventName,
    /// The payload.
    pub payload: serde_json::Value,
    /// When the event was created, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// What emitted it (a service or model name), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The id shared by every event of one chain.
    pub correlation_id: Uuid,
    /// The id of the event whose handling emitted this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Free-form string metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Delivery attempt, starting at 1.
    pub attempt: u32,
}

/// A payload that is not the type a handler asked for. A handler that
/// returns it with `?` fails permanently: retrying cannot fix it.
///
/// For an event that arrived encrypted, the message leaves serde's words
/// out: they can quote the payload, and the message reaches logs and dead
/// letters.
#[derive(Debug, thiserror::Error)]
#[error("malformed payload of event `{name}` ({id}): {}", detail(source, *withheld))]
pub struct PayloadError {
    /// The event's name.
    pub name: EventName,
    /// The event's id.
    pub id: Uuid,
    /// What serde said.
    pub source: serde_json::Error,
    /// Whether the payload was decrypted in this process (serde's message,
    /// which can quote it, is then left out of this error's message).
    pub withheld: bool,
}

fn detail(source: &serde_json::Error, withheld: bool) -> String {
    if withheld {
        "it is not the type the handler takes (serde's details are withheld: the event arrived encrypted)".to_owned()
    } else {
        source.to_string()
    }
}

/// Why an event could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The name is not a valid event name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The payload could not be serialized to JSON.
    #[error("the payload of event `{name}` cannot be serialized to JSON: {source}")]
    Payload {
        /// The event's name.
        name: String,
        /// What serde said.
        source: serde_json::Error,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Event {
    /// A new event named `name` carrying `payload` as JSON.
    pub fn new<T: Serialize + ?Sized>(
        name: impl AsRef<str>,
        payload: &T,
    ) -> Result<Event, EventError> {
        let name = name.as_ref();
        let payload = serde_json::to_value(payload).map_err(|source| EventError::Payload {
            name: name.to_owned(),
            source,
        })?;
        Ok(Event::from_value(EventName::new(name)?, payload))
    }

    /// A new event from an already valid name and a JSON value.
    pub fn from_value(name: EventName, payload: serde_json::Value) -> Event {
        let id = Uuid::now_v7();
        Event(Arc::new(EventData {
            id,
            name,
            payload,
            timestamp_ms: now_ms(),
            source: None,
            correlation_id: id,
            causation_id: None,
            metadata: BTreeMap::new(),
            attempt: 1,
        }))
    }

    /// Rebuilds an event from its serialized fields (transports).
    pub fn from_data(data: EventData) -> Event {
        Event(Arc::new(data))
    }

    /// The serialized fields.
    pub fn data(&self) -> &EventData {
        &self.0
    }

    pub(crate) fn data_mut(&mut self) -> &mut EventData {
        Arc::make_mut(&mut self.0)
    }

    /// The payload as `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        T::deserialize(&self.0.payload).map_err(|source| PayloadError {
            name: self.0.name.clone(),
            id: self.0.id,
            source,
            withheld: self.meta(crate::envelope::DECRYPTED).is_some(),
        })
    }

    /// The raw JSON payload.
    pub fn payload_json(&self) -> &serde_json::Value {
        &self.0.payload
    }

    /// The unique id.
    pub fn id(&self) -> Uuid {
        self.0.id
    }

    /// The name.
    pub fn name(&self) -> &EventName {
        &self.0.name
    }

    /// When it was created.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.timestamp_ms)
    }

    /// What emitted it.
    pub fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }

    /// The id shared by the whole chain of events.
    pub fn correlation_id(&self) -> Uuid {
        self.0.correlation_id
    }

    /// The id of the event whose handler emitted this one.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.0.causation_id
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.0.metadata.get(key).map(String::as_str)
    }

    /// All metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.0.metadata
    }

    /// The delivery attempt, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.0.attempt
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Event {
        self.data_mut().source = Some(source.into());
        self
    }

    /// Adds a metadata entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Event {
        self.data_mut().metadata.insert(key.into(), value.into());
        self
    }

    /// Makes this event a consequence of `cause`: same correlation id, and
    /// `cause`'s id as causation id. The bus does this by itself for events
    /// emitted while a handler runs.
    pub fn caused_by(mut self, cause: &Event) -> Event {
        let data = self.data_mut();
        data.correlation_id = cause.correlation_id();
        data.causation_id = Some(cause.id());
        self
    }

    /// The same event as delivery `attempt`: what a transport that
    /// redelivers sets before handing it to
    /// [`EventBus::redeliver`](crate::EventBus::redeliver).
    ///
    /// ```
    /// let event = earn::Event::new("order.paid", &7).unwrap().with_attempt(3);
    /// assert_eq!(event.attempt(), 3);
    /// ```
    pub fn with_attempt(mut self, attempt: u32) -> Event {
        if self.0.attempt != attempt {
            self.data_mut().attempt = attempt;
        }
        self
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.0.id)
            .field("name", &self.0.name.as_str())
            .field("payload", &self.0.payload)
            .field("correlation_id", &self.0.correlation_id)
            .field("causation_id", &self.0.causation_id)
            .field("attempt", &self.0.attempt)
            .finish()
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EventData::deserialize(deserializer).map(Event::from_data)
    }
}
