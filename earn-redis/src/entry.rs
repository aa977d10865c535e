//! The entry format (`v`, `name`, `event`) and the parsing of stream
//! replies, straight from `redis::Value` without intermediate maps.

use earn_core::EventData;
use redis::Value;

/// Version of the entry format, the `v` field.
pub(crate) const VERSION: &str = "1";
/// Field holding the format version.
pub(crate) const FIELD_VERSION: &str = "v";
/// Field holding the event name, for humans reading the stream.
pub(crate) const FIELD_NAME: &str = "name";
/// Field holding the JSON of the event's `EventData`.
pub(crate) const FIELD_EVENT: &str = "event";
/// Field of a requeued dead letter: the only group that is to handle it
/// (the one that gave up); the other groups acknowledge it unread.
pub(crate) const FIELD_FOR: &str = "for";
/// Field of a requeued dead letter: the handlers that had finished with
/// it, one name per line; they are skipped.
pub(crate) const FIELD_FINISHED: &str = "finished";

/// A stream entry id `ms-seq`, parsed for cheap comparison and hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct EntryId(u64, u64);

impl EntryId {
    pub(crate) fn parse(id: &str) -> Option<EntryId> {
        let (ms, seq) = id.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

/// What one stream entry holds.
pub(crate) enum Content {
    /// A valid event.
    Event(EventData),
    /// Not an event this version understands; the reason says why.
    Invalid(String),
    /// Deleted from the stream while pending (`XDEL`): nothing to deliver.
    Deleted,
}

/// One entry of an `XREADGROUP` or `XAUTOCLAIM` reply.
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) content: Content,
    /// The only group meant to handle it ([`FIELD_FOR`]), if any.
    pub(crate) for_group: Option<String>,
    /// Handlers that finished with it before it was requeued
    /// ([`FIELD_FINISHED`]).
    pub(crate) finished: Vec<String>,
}

impl RawEntry {
    /// Whether `group` is to handle this entry.
    pub(crate) fn is_for(&self, group: &str) -> bool {
        self.for_group.as_deref().is_none_or(|only| only == group)
    }
}

/// The text of the field `name` of an entry's fields, if it has one.
fn field(fields: &Value, name: &str) -> Option<String> {
    let Value::Array(fields) = fields else {
        return None;
    };
    fields
        .chunks(2)
        .find(|pair| bytes(&pair[0]) == Some(name.as_bytes()))
        .and_then(|pair| pair.get(1))
        .and_then(bytes)
        .map(|text| String::from_utf8_lossy(text).into_owned())
}

/// Handler names, one per line (the `finished` field, `dead:*` lists).
pub(crate) fn names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Decodes the fields of an entry (`[f1, v1, f2, v2, …]`, or nil when
/// the entry was deleted).
pub(crate) fn decode(fields: Value) -> Content {
    let fields = match fields {
        Value::Nil => return Content::Deleted,
        Value::Array(fields) => fields,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => return Content::Invalid(format!("entry fields are not a list: {other:?}")),
    };
    let mut version = None;
    let mut event = None;
    let mut fields = fields.into_iter();
    while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
        match bytes(&key) {
            Some(b"v") => version = Some(value),
            Some(b"event") => event = Some(value),
            _ => {}
        }
    }
    match version.as_ref().and_then(bytes) {
        Some(v) if v == VERSION.as_bytes() => {}
        Some(v) => {
            return Content::Invalid(format!(
                "unknown entry version `{}` (this consumer reads version {VERSION})",
                String::from_utf8_lossy(v)
            ));
        }
        None => return Content::Invalid("the entry has no `v` (version) field".to_owned()),
    }
    let Some(json) = event.as_ref().and_then(bytes) else {
        return Content::Invalid("the entry has no `event` field".to_owned());
    };
    match serde_json::from_slice::<EventData>(json) {
        Ok(data) => Content::Event(data),
        Err(error) => Content::Invalid(format!("the `event` field is not a valid event: {error}")),
    }
}

/// Parses the entries of an `XREADGROUP` reply for one stream (nil, or
/// `[[stream, [[id, fields], …]]]`, or a RESP3 map).
pub(crate) fn read_reply(reply: Value) -> Result<Vec<RawEntry>, String> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams,
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        other => return Err(format!("unexpected XREADGROUP reply: {other:?}")),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(mut pair) = stream else {
            return Err("unexpected XREADGROUP reply: a stream is not [key, entries]".into());
        };
        if pair.len() != 2 {
            return Err("unexpected XREADGROUP reply: a stream is not [key, entries]".into());
        }
        let entries = pair.pop().unwrap_or_default();
        entries_into(entries, &mut out)?;
    }
    Ok(out)
}

/// Parses `[[id, fields], …]` into `out`.
pub(crate) fn entries_into(entries: Value, out: &mut Vec<RawEntry>) -> Result<(), String> {
    let entries = match entries {
        Value::Array(entries) => entries,
        Value::Nil => return Ok(()),
        other => return Err(format!("unexpected stream entries: {other:?}")),
    };
    out.reserve(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err("unexpected stream entry: not [id, fields]".into());
        };
        let mut parts = parts.into_iter();
        let id = parts.next().and_then(string).ok_or("an entry has no id")?;
        let fields = parts.next().unwrap_or(Value::Nil);
        let for_group = field(&fields, FIELD_FOR);
        let finished = field(&fields, FIELD_FINISHED).map_or_else(Vec::new, |text| names(&text));
        let content = decode(fields);
        out.push(RawEntry {
            id,
            content,
            for_group,
            finished,
        });
    }
    Ok(())
}

/// The bytes of a string-like value.
pub(crate) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// A string-like or integer value as a `String`.
pub(crate) fn string(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

/// An integer or a string holding one.
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

/// The `(key, value)` pairs of a RESP2 flat list or a RESP3 map.
pub(crate) fn pairs(value: Value) -> Vec<(String, Value)> {
    let list: Vec<(Value, Value)> = match value {
        Value::Map(pairs) => pairs,
        Value::Array(flat) => {
            let mut flat = flat.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                out.push((k, v));
            }
            out
        }
        _ => Vec::new(),
    };
    list.into_iter()
        .filter_map(|(k, v)| Some((string(k)?, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use earn_core::Event;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_published_entry_decodes_to_its_event() {
        let event = Event::new("order.paid", &serde_json::json!({"total": 12})).unwrap();
        let json = serde_json::to_vec(event.data()).unwrap();
        let fields = vec![
            bulk(FIELD_VERSION),
            bulk(VERSION),
            bulk(FIELD_NAME),
            bulk("order.paid"),
            bulk(FIELD_EVENT),
            Value::BulkString(json),
        ];
        match decode(Value::Array(fields)) {
            Content::Event(data) => assert_eq!(&data, event.data()),
            _ => panic!("not decoded"),
        }
    }

    #[test]
    fn invalid_entries_say_why() {
        let reason = |fields: Vec<Value>| match decode(Value::Array(fields)) {
            Content::Invalid(reason) => reason,
            _ => panic!("accepted"),
        };
        assert!(reason(vec![bulk("event"), bulk("{}")]).contains("no `v`"));
        assert!(reason(vec![bulk("v"), bulk("2"), bulk("event"), bulk("{}")]).contains("`2`"));
        assert!(reason(vec![bulk("v"), bulk("1")]).contains("no `event`"));
        assert!(
            reason(vec![bulk("v"), bulk("1"), bulk("event"), bulk("nope")])
                .contains("not a valid event")
        );
        assert!(matches!(decode(Value::Nil), Content::Deleted));
    }

    #[test]
    fn entry_ids_order_numerically() {
        let a = EntryId::parse("9-5").unwrap();
        let b = EntryId::parse("10-0").unwrap();
        assert!(a < b);
        assert_eq!(EntryId::parse("x"), None);
    }
}
