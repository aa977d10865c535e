//! The message format: the event's JSON as payload, and headers for what
//! NATS and the consumers read without decoding it.

use async_nats::HeaderMap;
use earn_core::EventData;

/// Version of the message format, the `Earn-Version` header.
pub(crate) const VERSION: &str = "1";
pub(crate) const HEADER_VERSION: &str = "Earn-Version";
/// JetStream's deduplication key: the event id.
pub(crate) const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// A requeued dead letter: the only group that is to handle it (the one
/// that gave up); the other groups acknowledge it unread.
pub(crate) const HEADER_FOR: &str = "Earn-For";
/// Handlers that had finished with a requeued dead letter, comma-separated.
pub(crate) const HEADER_FINISHED: &str = "Earn-Finished";
/// A delayed event's due time, in milliseconds since the Unix epoch.
pub(crate) const HEADER_DUE: &str = "Earn-Due";
/// Dead letters: why, which group, which handlers gave up, deliveries made,
/// when, and the message's sequence in the event stream.
pub(crate) const HEADER_REASON: &str = "Earn-Reason";
pub(crate) const HEADER_GROUP: &str = "Earn-Group";
pub(crate) const HEADER_GAVE_UP: &str = "Earn-Gave-Up";
pub(crate) const HEADER_DELIVERIES: &str = "Earn-Deliveries";
pub(crate) const HEADER_FAILED_AT: &str = "Earn-Failed-At";
pub(crate) const HEADER_NAME: &str = "Earn-Name";
/// W3C trace context, copied from the event's metadata so that any NATS
/// client (and tracing proxies) can read it.
pub(crate) const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// What one message holds.
#[derive(Debug)]
pub(crate) enum Content {
    /// A valid event.
    Event(EventData),
    /// Not an event this version understands; the reason says why.
    Invalid(String),
}

/// The headers of a published event: its id for deduplication, the
/// format version, and its trace context if it has one.
pub(crate) fn event_headers(event: &EventData, msg_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_MSG_ID, msg_id);
    headers.insert(HEADER_VERSION, VERSION);
    for key in TRACE_HEADERS {
        if let Some(value) = event.metadata.get(key) {
            headers.insert(key, one_line(value).as_ref());
        }
    }
    headers
}

/// A header value on one line: NATS headers end at a line break.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\r', '\n']) {
        text.replace(['\r', '\n'], " ").into()
    } else {
        text.into()
    }
}

/// The text of header `name`, if present.
pub(crate) fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|value| value.as_str())
}

/// Handler names from a comma-separated header.
pub(crate) fn names(headers: Option<&HeaderMap>, name: &str) -> Vec<String> {
    header(headers, name)
        .map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes a message of the event stream.
pub(crate) fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Content {
    match header(headers, HEADER_VERSION) {
        Some(VERSION) => {}
        Some(other) => {
            return Content::Invalid(format!(
                "unknown message version `{other}` (this consumer reads version {VERSION})"
            ));
        }
        None => {
            return Content::Invalid(
                "the message has no `Earn-Version` header: it was not published by earn".to_owned(),
            );
        }
    }
    match serde_json::from_slice::<EventData>(payload) {
        Ok(data) => Content::Event(data),
        Err(error) => Content::Invalid(format!("the payload is not a valid event: {error}")),
    }
}

/// An event name read from a message's subject, `{prefix}.{name}`: for
/// dead letters whose payload is not an event.
pub(crate) fn name_from_subject<'a>(subject: &'a str, prefix: &str) -> &'a str {
    subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use earn_core::Event;

    #[test]
    fn a_published_message_decodes_to_its_event() {
        let event = Event::new("order.paid", &serde_json::json!({"total": 12}))
            .unwrap()
            .with_meta(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            );
        let headers = event_headers(event.data(), &event.id().to_string());
        assert_eq!(
            header(Some(&headers), "traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        let json = serde_json::to_vec(event.data()).unwrap();
        match decode(Some(&headers), &json) {
            Content::Event(data) => assert_eq!(&data, event.data()),
            Content::Invalid(reason) => panic!("not decoded: {reason}"),
        }
    }

    #[test]
    fn invalid_messages_say_why() {
        let reason = |headers: Option<&HeaderMap>, payload: &[u8]| match decode(headers, payload) {
            Content::Invalid(reason) => reason,
            Content::Event(_) => panic!("accepted"),
        };
        assert!(reason(None, b"{}").contains("no `Earn-Version`"));
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_VERSION, "2");
        assert!(reason(Some(&headers), b"{}").contains("`2`"));
        headers.insert(HEADER_VERSION, VERSION);
        assert!(reason(Some(&headers), b"nope").contains("not a valid event"));
    }

    #[test]
    fn header_values_stay_on_one_line() {
        assert_eq!(one_line("a\r\nb"), "a  b");
        assert_eq!(
            name_from_subject("orders.user.created", "orders"),
            "user.created"
        );
    }
}
