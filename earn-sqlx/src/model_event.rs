//! `#[model(events = "user")]`: `user.created`, `user.updated` (with the
//! changes) and `user.deleted`, raised in the write's transaction.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use earn_core::{Error, Event, EventError, EventName, Expected, Operation};

use crate::model::Entity;
use crate::tx::Tx;

/// The metadata key of `*.updated` events holding the changed fields as
/// JSON: `{"field": {"old": …, "new": …}}`.
pub const CHANGES_KEY: &str = "changes";

/// Raises the event of a successful write (none for a model without
/// events) in `tx`, first appending it to the model's stream when the
/// database keeps model streams ([`Db::with_model_streams`](crate::Db::with_model_streams)).
pub(crate) async fn raise<M: Entity>(
    tx: &mut Tx,
    model: &M,
    operation: Operation,
    previous: Option<&M>,
    changed: &[&'static str],
) -> Result<(), Error> {
    let Some(event) = model_event(model, operation, previous, changed)? else {
        return Ok(());
    };
    if let Some(store) = tx.streams.clone() {
        let stream = stream_of(model, &event);
        let expected = match operation {
            Operation::Create => Expected::NoStream,
            Operation::Update | Operation::Delete | Operation::Restore => Expected::Any,
        };
        // Boxed: a write's future (a cascade nests one per level) stays
        // the size it was without model streams.
        Box::pin(store.append_in(tx, &stream, expected, vec![event.clone()])).await?;
    }
    tx.raise(event)
}

/// `<prefix>-<key>`: the key as it appears in the event's payload (a
/// string without quotes), or as the model formats it.
fn stream_of<M: Entity>(model: &M, event: &Event) -> String {
    let prefix = M::INFO.events.unwrap_or(M::INFO.table);
    let field = M::INFO.columns[M::INFO.key_index].field;
    match event.payload_json().get(field) {
        Some(serde_json::Value::String(key)) => format!("{prefix}-{key}"),
        Some(key @ serde_json::Value::Number(_)) => format!("{prefix}-{key}"),
        _ => format!("{prefix}-{:?}", model.key()),
    }
}

/// The event of a successful write, or `None` for a model without events.
/// On update, `changed` are the fields that differ from `previous`.
pub(crate) fn model_event<M: Entity>(
    model: &M,
    operation: Operation,
    previous: Option<&M>,
    changed: &[&'static str],
) -> Result<Option<Event>, Error> {
    let Some(prefix) = M::INFO.events else {
        return Ok(None);
    };
    let name = event_name(prefix, operation)?;
    let payload = payload_of(model, name.as_str())?;
    let mut changes = serde_json::Map::new();
    if let Some(previous) = previous {
        let before = payload_of(previous, name.as_str())?;
        for &field in changed {
            changes.insert(
                field.to_owned(),
                serde_json::json!({
                    "old": before.get(field).cloned().unwrap_or_default(),
                    "new": payload.get(field).cloned().unwrap_or_default(),
                }),
            );
        }
    }
    let event = Event::from_value(name, payload).with_source(M::INFO.name);
    Ok(Some(if previous.is_some() {
        event.with_meta(CHANGES_KEY, serde_json::Value::Object(changes).to_string())
    } else {
        event
    }))
}

/// `prefix.created` / `.updated` / `.deleted`, validated once per model
/// and shared: a bulk write raises thousands.
fn event_name(prefix: &'static str, operation: Operation) -> Result<EventName, Error> {
    static NAMES: LazyLock<RwLock<HashMap<(&'static str, Operation), EventName>>> =
        LazyLock::new(RwLock::default);
    let key = (prefix, operation);
    if let Some(name) = NAMES.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(name.clone());
    }
    let verb = match operation {
        Operation::Create => "created",
        Operation::Update => "updated",
        Operation::Delete => "deleted",
        Operation::Restore => "restored",
    };
    let name = EventName::new(format!("{prefix}.{verb}")).map_err(EventError::from)?;
    NAMES
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, name.clone());
    Ok(name)
}

fn payload_of<M: Entity>(model: &M, name: &str) -> Result<serde_json::Value, Error> {
    match model.event_payload() {
        Some(Ok(value)) => Ok(value),
        Some(Err(source)) => Err(Error::Event(EventError::Payload {
            name: name.to_owned(),
            source,
        })),
        None => Ok(serde_json::Value::Null),
    }
}
