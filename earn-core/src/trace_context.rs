//! W3C trace context across transports (feature `otel`): one trace runs
//! from the request that raised an event, through the outbox or a broker,
//! to the handlers on another machine.
//!
//! - **At publish** ([`inject`]): a producer span `"{event} send"` opens
//!   under the current span, and its context is written into the event's
//!   metadata as [`TRACEPARENT`] (and [`TRACESTATE`] when there is one),
//!   which travels in the outbox row, the Redis entry or a NATS header. The
//!   outbox does this when an event is raised in a transaction, Redis
//!   Streams when it publishes, the bus when it queues an event of its own.
//! - **On consume**: the bus runs the handlers of an event carrying a
//!   valid `traceparent` inside a consumer span `"{event} process"` whose
//!   parent is that context, so every handler span (and whatever a handler
//!   traces) joins the producer's trace. This is the bus's, so it holds for
//!   every transport at once.
//!
//! Spans follow OpenTelemetry's messaging conventions: `otel.kind`
//! `producer` / `consumer`, `messaging.system` (`earn`),
//! `messaging.operation.type` (`send` / `process`),
//! `messaging.destination.name` (the event name) and
//! `messaging.message.id` (the event id). They are `tracing` spans at
//! level INFO, target `earn_core::trace_context`, exported by a
//! [`tracing_opentelemetry`] layer.
//!
//! An event that already carries a `traceparent` keeps it: a relay (the
//! outbox relay handing a row to Redis) forwards a message, it does not
//! produce one, so the consumer's parent stays the span that raised it.
//! With no trace active nothing is written. A malformed `traceparent` is
//! ignored (a debug log says so): the handlers still run, in a trace of
//! their own.

use std::fmt;
use std::str::FromStr;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::event::Event;

/// The metadata key of the W3C `traceparent` value
/// (`00-{trace id}-{parent span id}-{flags}`), also the header name a
/// transport with headers gives it.
///
/// ```
/// use earn::trace_context::{TRACEPARENT, TraceParent};
///
/// let event = earn::Event::new("order.paid", &7)?
///     .with_meta(TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// let parent = event.meta(TRACEPARENT).and_then(TraceParent::parse);
/// assert!(parent.is_some_and(|p| p.is_sampled()));
/// # Ok::<(), earn::EventError>(())
/// ```
pub const TRACEPARENT: &str = "traceparent";

/// The metadata key of the W3C `tracestate` value (vendor entries), set
/// only when the trace has some; also its header name.
///
/// ```
/// use earn::trace_context::TRACESTATE;
///
/// let event = earn::Event::new("order.paid", &7)?;
/// assert_eq!(event.meta(TRACESTATE), None); // no trace, no vendor entries
/// # Ok::<(), earn::EventError>(())
/// ```
pub const TRACESTATE: &str = "tracestate";

/// `messaging.system` of earn's spans: the bus is the messaging system the
/// application sees, whatever transport carried the event.
const SYSTEM: &str = "earn";

/// A W3C `traceparent` value: trace id, parent span id and trace flags.
/// Parsed strictly (version `00` layout, lowercase hex, no all-zero id);
/// displayed as the header value.
///
/// ```
/// use earn::trace_context::TraceParent;
///
/// let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let parent = TraceParent::parse(value).expect("valid");
/// assert!(parent.is_sampled());
/// assert_eq!(parent.to_string(), value);
/// assert_eq!(TraceParent::parse("00-not-a-trace-01"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` if it is not a valid one.
    ///
    /// A version other than `00` is read as its first four fields, as the
    /// W3C recommendation asks; version `ff` is invalid.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let bytes = value.as_bytes();
        // version(2) - trace id(32) - span id(16) - flags(2)
        if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let valid_length = match hex::<1>(&bytes[0..2])? {
            [0] => bytes.len() == 55,
            [0xff] => false,
            _ => bytes.len() == 55 || bytes[55] == b'-',
        };
        let trace_id = TraceId::from_bytes(hex(&bytes[3..35])?);
        let span_id = SpanId::from_bytes(hex(&bytes[36..52])?);
        let [flags] = hex(&bytes[53..55])?;
        (valid_length && trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then(|| {
            TraceParent {
                trace_id,
                span_id,
                // The sampled bit is the only flag this version defines, as
                // OpenTelemetry's own propagator keeps.
                flags: TraceFlags::new(flags) & TraceFlags::SAMPLED,
            }
        })
    }

    /// The `traceparent` that names `span_context`'s span as the parent:
    /// what a message sent from inside that span carries. `None` if it is
    /// not a valid context (no trace). Only the sampled flag is kept.
    ///
    /// ```
    /// use earn::trace_context::TraceParent;
    /// use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    ///
    /// let span = SpanContext::new(
    ///     TraceId::from_bytes([7; 16]),
    ///     SpanId::from_bytes([9; 8]),
    ///     TraceFlags::SAMPLED,
    ///     false,
    ///     TraceState::default(),
    /// );
    /// let parent = TraceParent::from_span_context(&span).expect("in a trace");
    /// assert_eq!(parent.to_string(), "00-07070707070707070707070707070707-0909090909090909-01");
    /// assert_eq!(TraceParent::from_span_context(&SpanContext::empty_context()), None);
    /// ```
    pub fn from_span_context(span_context: &SpanContext) -> Option<TraceParent> {
        span_context.is_valid().then(|| TraceParent {
            trace_id: span_context.trace_id(),
            span_id: span_context.span_id(),
            flags: span_context.trace_flags() & TraceFlags::SAMPLED,
        })
    }

    /// The trace id.
    ///
    /// ```
    /// use earn::trace_context::TraceParent;
    ///
    /// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(parent.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The id of the parent span: the producer's span, for an event.
    ///
    /// ```
    /// use earn::trace_context::TraceParent;
    ///
    /// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
    /// ```
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// Whether the producer sampled the trace (flag `01`).
    ///
    /// ```
    /// use earn::trace_context::TraceParent;
    ///
    /// let unsampled = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    /// assert!(!unsampled.is_sampled());
    /// ```
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// The remote span context this names, with `state` as its
    /// `tracestate`: the parent to give a span that continues the trace
    /// (`OpenTelemetrySpanExt::set_parent`).
    ///
    /// ```
    /// use earn::trace_context::TraceParent;
    /// use opentelemetry::trace::TraceState;
    ///
    /// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// let state: TraceState = "vendor=value".parse()?;
    /// let remote = parent.span_context(state);
    /// assert!(remote.is_remote() && remote.is_sampled());
    /// assert_eq!(remote.span_id(), parent.span_id());
    /// assert_eq!(remote.trace_state().header(), "vendor=value");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn span_context(&self, state: TraceState) -> SpanContext {
        SpanContext::new(self.trace_id, self.span_id, self.flags, true, state)
    }
}

impl TraceParent {
    /// The header value: `00-{trace id}-{span id}-{flags}`, 55 ASCII bytes.
    fn encode(&self) -> [u8; 55] {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        write_hex(&mut out[3..35], &self.trace_id.to_bytes());
        out[35] = b'-';
        write_hex(&mut out[36..52], &self.span_id.to_bytes());
        out[52] = b'-';
        write_hex(&mut out[53..55], &[self.flags.to_u8()]);
        out
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only ASCII hex digits and dashes were written.
        f.write_str(std::str::from_utf8(&self.encode()).map_err(|_| fmt::Error)?)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

/// One lowercase hex digit (the W3C format allows no uppercase).
fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `N` bytes from `2 * N` lowercase hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// `event` with the current trace context in its metadata, as it leaves
/// this process: opens a producer span `"{event} send"` under the current
/// span and stores that span's context as [`TRACEPARENT`] (and
/// [`TRACESTATE`] if the trace has one). The consumer's handlers then run
/// under a span whose parent is that producer span.
///
/// Does nothing when no trace is active (no OpenTelemetry span is
/// current) or when the event already carries a `traceparent` (it is being
/// forwarded, and keeps its producer's). Without a
/// [`tracing_opentelemetry`] layer that records the producer span (a
/// filter below INFO for this target), the current span's own context is
/// written instead.
///
/// earn calls this wherever an event leaves a producer: raised in a
/// transaction (the outbox row), published to Redis Streams, queued on the
/// bus. A transport of another crate calls it before it serializes the
/// event, then reads the values back for its own headers:
///
/// ```
/// use earn::Event;
/// use earn::trace_context::{self, TRACEPARENT, TRACESTATE};
///
/// let event = trace_context::inject(Event::new("order.paid", &7)?);
/// // Headers of the outgoing message, as a NATS transport would set them.
/// let headers: Vec<(&str, &str)> = [TRACEPARENT, TRACESTATE]
///     .into_iter()
///     .filter_map(|key| event.meta(key).map(|value| (key, value)))
///     .collect();
/// assert!(headers.is_empty(), "no trace is active in this example");
/// # Ok::<(), earn::EventError>(())
/// ```
pub fn inject(event: Event) -> Event {
    if event.meta(TRACEPARENT).is_some() {
        return event;
    }
    let Some(current) = current_context() else {
        return event;
    };
    let name = event.name().as_str();
    let mut id = Uuid::encode_buffer();
    let producer = tracing::info_span!(
        "earn.send",
        otel.name = %format_args!("{name} send"),
        otel.kind = "producer",
        "messaging.system" = SYSTEM,
        "messaging.operation.type" = "send",
        "messaging.destination.name" = name,
        "messaging.message.id" = text(event.id(), &mut id),
    );
    // Starts the producer span (under `current`) and reads its ids; the
    // span ends when it is dropped, on return.
    let produced = producer.context();
    let (produced, current) = (produced.span(), current.span());
    let span_context = if produced.span_context().is_valid() {
        produced.span_context()
    } else {
        current.span_context()
    };
    write(event, span_context)
}

/// The OpenTelemetry context attached to this thread or, failing that, the
/// current span's; `None` unless one of them is in a trace.
///
/// The layer attaches the context of each span it enters (its default
/// "context activation"), so the attached one is the current span's, read
/// in a few nanoseconds; the span's own is asked for only when nothing is
/// attached (activation turned off), which costs a registry look-up.
fn current_context() -> Option<Context> {
    let attached = Context::current();
    if attached.span().span_context().is_valid() {
        return Some(attached);
    }
    let span = tracing::Span::current().context();
    span.span().span_context().is_valid().then_some(span)
}

fn write(mut event: Event, span_context: &SpanContext) -> Event {
    let Some(parent) = TraceParent::from_span_context(span_context) else {
        return event;
    };
    let encoded = parent.encode();
    let Ok(traceparent) = std::str::from_utf8(&encoded) else {
        return event;
    };
    let traceparent = traceparent.to_owned();
    let state = span_context.trace_state().header();
    let metadata = &mut event.data_mut().metadata;
    metadata.insert(TRACEPARENT.to_owned(), traceparent);
    if !state.is_empty() {
        metadata.insert(TRACESTATE.to_owned(), state);
    }
    event
}

/// `id` as text in `buffer`: a span field recorded as a string, which the
/// OpenTelemetry layer copies as it is, rather than formatted through
/// `Display` into a new string per field.
fn text(id: Uuid, buffer: &mut [u8]) -> &str {
    id.hyphenated().encode_lower(buffer)
}

/// The span the bus runs `event`'s handlers in when the event carries a
/// valid `traceparent`: a consumer span `"{event} process"` whose parent is
/// the producer's span. `None` without one, or when no subscriber records
/// INFO spans of this target (there would be nothing to parent).
pub(crate) fn consumer_span(event: &Event) -> Option<tracing::Span> {
    let value = event.meta(TRACEPARENT)?;
    if !tracing::enabled!(tracing::Level::INFO) {
        return None;
    }
    let Some(parent) = TraceParent::parse(value) else {
        tracing::debug!(event = event.name().as_str(), event_id = %event.id(), traceparent = value, "ignored a malformed traceparent: the handlers run in a trace of their own");
        return None;
    };
    // A malformed tracestate loses the vendor entries, not the trace.
    let state = event
        .meta(TRACESTATE)
        .and_then(|state| TraceState::from_str(state).ok())
        .unwrap_or_default();
    let name = event.name().as_str();
    let (mut id, mut correlation) = (Uuid::encode_buffer(), Uuid::encode_buffer());
    let span = tracing::info_span!(
        "earn.process",
        otel.name = %format_args!("{name} process"),
        otel.kind = "consumer",
        "messaging.system" = SYSTEM,
        "messaging.operation.type" = "process",
        "messaging.destination.name" = name,
        "messaging.message.id" = text(event.id(), &mut id),
        correlation_id = text(event.correlation_id(), &mut correlation),
        attempt = event.attempt(),
    );
    // Fails only when no OpenTelemetry layer records the span: then it
    // still carries the fields for the other layers.
    let _ = span.set_parent(Context::new().with_remote_span_context(parent.span_context(state)));
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_reads_back_as_written() {
        let parent = TraceParent::parse(VALID).expect("valid");
        assert_eq!(
            parent.trace_id(),
            TraceId::from_bytes(0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes())
        );
        assert_eq!(
            parent.span_id(),
            SpanId::from_bytes(0x00f067aa0ba902b7u64.to_be_bytes())
        );
        assert!(parent.is_sampled());
        assert_eq!(parent.to_string(), VALID);
        let unsampled = VALID.replace("-01", "-00");
        assert!(!TraceParent::parse(&unsampled).expect("valid").is_sampled());
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00",
            "garbage",
            // Uppercase hex, all-zero ids, a wrong separator, version ff,
            // a version-00 value with more after it, a non-hex flag.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_its_first_four_fields() {
        let later = format!("cc{}-what-comes-next", &VALID[2..]);
        let parent = TraceParent::parse(&later).expect("valid");
        assert_eq!(parent.to_string(), VALID);
    }

    #[test]
    fn without_a_trace_inject_writes_nothing() {
        let event = inject(Event::new("order.paid", &1).expect("event"));
        assert!(event.metadata().is_empty());
    }

    #[test]
    fn an_event_carrying_a_traceparent_keeps_it() {
        let event = Event::new("order.paid", &1)
            .expect("event")
            .with_meta(TRACEPARENT, VALID);
        let event = inject(event);
        assert_eq!(event.meta(TRACEPARENT), Some(VALID));
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,80}") {
            let _ = TraceParent::parse(&text);
        }

        #[test]
        fn any_valid_parent_round_trips(trace in 1u128.., span in 1u64.., sampled: bool) {
            let parent = TraceParent {
                trace_id: TraceId::from_bytes(trace.to_be_bytes()),
                span_id: SpanId::from_bytes(span.to_be_bytes()),
                flags: TraceFlags::new(u8::from(sampled)),
            };
            proptest::prop_assert_eq!(TraceParent::parse(&parent.to_string()), Some(parent));
        }
    }
}
