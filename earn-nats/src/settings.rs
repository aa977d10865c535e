//! `NatsSettings`: the stream, the group, and how a consumer reads it.

use std::sync::Arc;
use std::time::Duration;

use earn_core::{Backoff, Error};

/// Where a group that does not exist yet starts reading.
///
/// Only used when [`NatsStreams::consume`](crate::NatsStreams::consume)
/// creates the group's durable consumer; an existing one keeps its
/// position.
///
/// ```
/// use earn::nats::{NatsSettings, StartFrom};
///
/// let settings = NatsSettings::new("orders", "billing").start(StartFrom::New);
/// assert_eq!(settings.get_start(), StartFrom::New);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Every message still in the stream (`DeliverPolicy::All`). The
    /// default: events published before the first consumer started are
    /// handled.
    #[default]
    Beginning,
    /// Only messages stored after the group is created (`DeliverPolicy::New`).
    New,
}

/// How a [`NatsStreams`](crate::NatsStreams) publishes and consumes: the
/// JetStream stream, the group (a durable pull consumer), and the
/// consumer's limits. Every field has a default; set the ones you need
/// with the builder methods. As in earn's
/// [`RedisSettings`](https://docs.rs/earn-redis), a setter is named after
/// its setting (`batch(200)`) and its getter is `get_` and that name.
///
/// | setting | default | JetStream |
/// |---|---|---|
/// | [`subject_prefix`](Self::subject_prefix) | the stream name | subjects `{prefix}.{event name}` |
/// | [`consumer`](Self::consumer) | `{hostname}-{pid}` | this process, in logs and metrics |
/// | [`batch`](Self::batch) | 200 | messages per pull request |
/// | [`max_in_flight`](Self::max_in_flight) | 1 000 | unacknowledged messages in this process |
/// | [`max_deliveries`](Self::max_deliveries) | 5 | deliveries before the dead-letter stream |
/// | [`ack_wait`](Self::ack_wait) | 30 s | `ack_wait` of the durable consumer |
/// | [`retry_backoff`](Self::retry_backoff) | 1 s doubling to 1 min | the delay of a `nak` |
/// | [`filter`](Self::filter) | every event | `filter_subject` of the durable consumer |
/// | [`max_payload`](Self::max_payload) | 1 MiB | refused at publish (and the server's own limit) |
/// | [`envelope`](Self::envelope) | seals nothing | events encrypted and signed as they are published |
/// | [`duplicate_window`](Self::duplicate_window) | 2 min | the stream's `duplicate_window` |
/// | [`max_age`](Self::max_age) | unlimited | the stream's `max_age` |
/// | [`start`](Self::start) | [`StartFrom::Beginning`] | `deliver_policy` |
///
/// ```
/// use std::time::Duration;
/// use earn::nats::NatsSettings;
///
/// let settings = NatsSettings::new("orders", "billing")
///     .consumer("billing-1")
///     .filter("order.*")
///     .max_deliveries(3);
/// assert_eq!(settings.get_stream(), "orders");
/// assert_eq!(settings.get_subject_prefix(), "orders");
/// ```
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub(crate) stream: Arc<str>,
    pub(crate) group: Arc<str>,
    pub(crate) prefix: Arc<str>,
    pub(crate) consumer: Arc<str>,
    pub(crate) batch: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) max_deliveries: u32,
    pub(crate) ack_wait: Duration,
    pub(crate) retry_backoff: Backoff,
    pub(crate) filter: Option<Arc<str>>,
    pub(crate) max_payload: usize,
    pub(crate) envelope: earn_core::Envelope,
    pub(crate) duplicate_window: Duration,
    pub(crate) max_age: Duration,
    pub(crate) start: StartFrom,
}

impl NatsSettings {
    /// Settings for the JetStream stream `stream` read by the group
    /// `group`, with every other field at its default.
    ///
    /// The group is a durable pull consumer of that name: every process
    /// that names the same group shares its events, and every other group
    /// gets every event too (one group per kind of work). Both names may
    /// hold letters, digits, `-` and `_`; anything else is refused by
    /// [`NatsStreams::connect`](crate::NatsStreams::connect).
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("orders", "billing");
    /// assert_eq!(settings.get_group(), "billing");
    /// assert_eq!(settings.get_batch(), 200);
    /// ```
    pub fn new(stream: impl Into<String>, group: impl Into<String>) -> Self {
        let stream: Arc<str> = Arc::from(stream.into());
        NatsSettings {
            prefix: stream.clone(),
            stream,
            group: Arc::from(group.into()),
            consumer: Arc::from(default_consumer_name()),
            batch: 200,
            max_in_flight: 1000,
            max_deliveries: 5,
            ack_wait: Duration::from_secs(30),
            retry_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            filter: None,
            max_payload: 1024 * 1024,
            envelope: earn_core::Envelope::new(),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::ZERO,
            start: StartFrom::Beginning,
        }
    }

    /// The first token of the subjects (default: the stream name). An
    /// event `user.created` is stored under `{prefix}.user.created`, so
    /// other NATS clients, and [`filter`](Self::filter), can select events
    /// by name on the server. The stream holds `{prefix}.>`; its dead
    /// letters and delayed events have streams of their own, under
    /// `{prefix}_dead.>` and `{prefix}_delayed.>`.
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("ORDERS", "billing").subject_prefix("orders");
    /// assert_eq!(settings.get_subject_prefix(), "orders");
    /// ```
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// This process's name, for logs and metrics (default
    /// `{hostname}-{pid}`). JetStream shares a group's messages among
    /// whoever pulls from it, so the name decides nothing else.
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("orders", "billing").consumer("web-3");
    /// assert_eq!(settings.get_consumer(), "web-3");
    /// ```
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Arc::from(name.into());
        self
    }

    /// Messages asked for in one pull request, default 200, at least 1.
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("orders", "billing").batch(500);
    /// assert_eq!(settings.get_batch(), 500);
    /// ```
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Messages this process holds unacknowledged at once, default 1 000,
    /// at least 1: pulled and handed to the bus, or waiting for their
    /// acknowledgement. At the limit the consumer pulls nothing more until
    /// one finishes. `1` with a bus of one worker keeps the stream's order.
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("orders", "billing").max_in_flight(1);
    /// assert_eq!(settings.get_max_in_flight(), 1);
    /// ```
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Deliveries of one message before it moves to the dead-letter
    /// stream, default 5, at least 1: the one retry budget of what this
    /// group handles.
    ///
    /// The delivery count is JetStream's: 1 on the first delivery, one more
    /// for each redelivery (after a `nak`, or after
    /// [`ack_wait`](Self::ack_wait) passed without an acknowledgement), and
    /// it is the handlers' [`Event::attempt`](earn_core::Event::attempt).
    /// The bus makes one attempt per delivery of each handler that has not
    /// finished with the message, so a handler that keeps failing is called
    /// exactly `n` times. A message whose handlers fail on its `n`-th
    /// delivery is dead-lettered with the failure as reason; one found
    /// already past `n` (its consumers kept dying while handling it) is
    /// dead-lettered without running them again.
    ///
    /// The durable consumer itself has no `max_deliver`: JetStream would
    /// stop delivering such a message and keep it nowhere an operator
    /// looks. earn moves it to the dead letters instead.
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("orders", "billing").max_deliveries(3);
    /// assert_eq!(settings.get_max_deliveries(), 3);
    /// ```
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// How long a delivered message may stay unacknowledged before
    /// JetStream delivers it again (to any process of the group), default
    /// 30 s, at least 1 ms. A consumer that dies while handling loses
    /// nothing: its messages come back after this. It must be longer than
    /// the longest handling of one event.
    ///
    /// ```
    /// use std::time::Duration;
    /// let settings = earn::nats::NatsSettings::new("orders", "billing")
    ///     .ack_wait(Duration::from_secs(120));
    /// assert_eq!(settings.get_ack_wait(), Duration::from_secs(120));
    /// ```
    pub fn ack_wait(mut self, d: Duration) -> Self {
        self.ack_wait = d.max(Duration::from_millis(1));
        self
    }

    /// How long a message whose handlers failed waits before its next
    /// delivery: `nak` with `backoff.delay(deliveries)`, default 1 s
    /// doubling to 1 min.
    ///
    /// ```
    /// use std::time::Duration;
    /// use earn::nats::Backoff;
    /// let settings = earn::nats::NatsSettings::new("orders", "billing")
    ///     .retry_backoff(Backoff::new(Duration::from_millis(100), Duration::from_secs(5)));
    /// assert_eq!(settings.get_retry_backoff().jitter(0.0).delay(1), Duration::from_millis(100));
    /// ```
    pub fn retry_backoff(mut self, backoff: Backoff) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The events this group receives, as a pattern filtered on the server
    /// (default: every event). Segments are names or `*`; a last segment
    /// `**` becomes NATS's `>`, which needs at least one more segment
    /// (`user.**` here matches `user.created` and `user.a.b`, not `user`).
    /// The bus still runs only the handlers whose patterns match.
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("orders", "billing").filter("order.*");
    /// assert_eq!(settings.get_filter(), Some("order.*"));
    /// ```
    pub fn filter(mut self, pattern: impl Into<String>) -> Self {
        self.filter = Some(Arc::from(pattern.into()));
        self
    }

    /// The largest serialized event (its JSON) `publish` accepts, default
    /// 1 MiB. A larger one is refused with
    /// [`Error::PayloadTooLarge`](earn_core::Error::PayloadTooLarge) and not
    /// sent; so is one over the server's `max_payload` (1 MiB unless the
    /// server is configured otherwise).
    ///
    /// ```
    /// let settings = earn::nats::NatsSettings::new("orders", "billing").max_payload(64 * 1024);
    /// assert_eq!(settings.get_max_payload(), 65_536);
    /// ```
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Seals what [`publish`](crate::NatsStreams::publish) sends with `envelope`
    /// (feature `encryption`): payloads encrypted and events signed, by
    /// event pattern; an event already sealed (by the outbox) is sent as
    /// it is. The bus that consumes them opens them: give it the same
    /// envelope ([`EventBusBuilder::envelope`](earn_core::EventBusBuilder::envelope)).
    ///
    /// ```
    /// # #[cfg(feature = "encryption")] {
    /// use earn::{Envelope, KeyRing};
    ///
    /// let keys = KeyRing::new("k1", &[3u8; 32])?;
    /// let envelope = Envelope::new().encrypt("payment.*", &keys)?.sign("**", &keys)?;
    /// let settings = earn::nats::NatsSettings::new("orders", "billing").envelope(envelope);
    /// assert!(!settings.get_envelope().is_empty());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn envelope(mut self, envelope: earn_core::Envelope) -> Self {
        self.envelope = envelope;
        self
    }

    /// How long JetStream remembers an event id to drop a second publish
    /// of it (`Nats-Msg-Id`), default 2 min; applied when the stream is
    /// created. A publish retried after a lost acknowledgement, within this
    /// window, is stored once.
    ///
    /// ```
    /// use std::time::Duration;
    /// let settings = earn::nats::NatsSettings::new("orders", "billing")
    ///     .duplicate_window(Duration::from_secs(600));
    /// assert_eq!(settings.get_duplicate_window(), Duration::from_secs(600));
    /// ```
    pub fn duplicate_window(mut self, d: Duration) -> Self {
        self.duplicate_window = d;
        self
    }

    /// How long the stream keeps a message, default unlimited
    /// (`Duration::ZERO`); applied when the stream is created. JetStream
    /// removes older messages whether or not every group handled them, so
    /// set it well above the longest backlog you could have.
    ///
    /// ```
    /// use std::time::Duration;
    /// let settings = earn::nats::NatsSettings::new("orders", "billing")
    ///     .max_age(Duration::from_secs(7 * 24 * 3600));
    /// assert_eq!(settings.get_max_age(), Duration::from_secs(604_800));
    /// ```
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }

    /// Where the group starts if [`consume`](crate::NatsStreams::consume)
    /// creates it (default [`StartFrom::Beginning`]).
    ///
    /// ```
    /// use earn::nats::{NatsSettings, StartFrom};
    /// let settings = NatsSettings::new("orders", "billing").start(StartFrom::New);
    /// assert_eq!(settings.get_start(), StartFrom::New);
    /// ```
    pub fn start(mut self, s: StartFrom) -> Self {
        self.start = s;
        self
    }

    /// The stream's name.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("orders", "g").get_stream(), "orders");
    /// ```
    pub fn get_stream(&self) -> &str {
        &self.stream
    }

    /// The group: the durable consumer's name.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("orders", "g").get_group(), "g");
    /// ```
    pub fn get_group(&self) -> &str {
        &self.group
    }

    /// The subjects' first token.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("orders", "g").get_subject_prefix(), "orders");
    /// ```
    pub fn get_subject_prefix(&self) -> &str {
        &self.prefix
    }

    /// This process's name.
    ///
    /// ```
    /// let name = earn::nats::NatsSettings::new("orders", "g").get_consumer().to_owned();
    /// assert!(name.ends_with(&format!("-{}", std::process::id())));
    /// ```
    pub fn get_consumer(&self) -> &str {
        &self.consumer
    }

    /// Messages per pull request.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("s", "g").get_batch(), 200);
    /// ```
    pub fn get_batch(&self) -> usize {
        self.batch
    }

    /// Unacknowledged messages held at once.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("s", "g").get_max_in_flight(), 1000);
    /// ```
    pub fn get_max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Deliveries before the dead-letter stream.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("s", "g").get_max_deliveries(), 5);
    /// ```
    pub fn get_max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// How long a delivery may stay unacknowledged.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(earn::nats::NatsSettings::new("s", "g").get_ack_wait(), Duration::from_secs(30));
    /// ```
    pub fn get_ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// The waits before redeliveries of failed messages.
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = earn::nats::NatsSettings::new("s", "g").get_retry_backoff().jitter(0.0);
    /// assert_eq!(backoff.delay(2), Duration::from_secs(2));
    /// ```
    pub fn get_retry_backoff(&self) -> Backoff {
        self.retry_backoff
    }

    /// The server-side filter, if any.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("s", "g").get_filter(), None);
    /// ```
    pub fn get_filter(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    /// The largest event accepted, in bytes.
    ///
    /// ```
    /// assert_eq!(earn::nats::NatsSettings::new("s", "g").get_max_payload(), 1 << 20);
    /// ```
    pub fn get_max_payload(&self) -> usize {
        self.max_payload
    }

    /// What [`envelope`](Self::envelope) set.
    pub fn get_envelope(&self) -> &earn_core::Envelope {
        &self.envelope
    }

    /// The deduplication window.
    ///
    /// ```
    /// use std::time::Duration;
    /// let window = earn::nats::NatsSettings::new("s", "g").get_duplicate_window();
    /// assert_eq!(window, Duration::from_secs(120));
    /// ```
    pub fn get_duplicate_window(&self) -> Duration {
        self.duplicate_window
    }

    /// How long the stream keeps a message (`ZERO`: unlimited).
    ///
    /// ```
    /// assert!(earn::nats::NatsSettings::new("s", "g").get_max_age().is_zero());
    /// ```
    pub fn get_max_age(&self) -> Duration {
        self.max_age
    }

    /// Where a new group starts.
    ///
    /// ```
    /// use earn::nats::{NatsSettings, StartFrom};
    /// assert_eq!(NatsSettings::new("s", "g").get_start(), StartFrom::Beginning);
    /// ```
    pub fn get_start(&self) -> StartFrom {
        self.start
    }

    /// Checks the names and the filter: what NATS would refuse, refused
    /// here with the setting named.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let name_ok = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        for (setting, value) in [
            ("stream", &*self.stream),
            ("group", &*self.group),
            ("subject_prefix", &*self.prefix),
        ] {
            if !name_ok(value) {
                return Err(invalid(format!(
                    "NATS {setting} `{value}`: use letters, digits, `-` and `_` only"
                )));
            }
        }
        if let Some(pattern) = &self.filter {
            self.filter_subject(pattern)?;
        }
        Ok(())
    }

    /// The subject of the event `name`.
    pub(crate) fn subject(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// The subjects the stream holds.
    pub(crate) fn subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// The stream of dead letters, and its subjects.
    pub(crate) fn dead_stream(&self) -> String {
        format!("{}_dead", self.stream)
    }

    pub(crate) fn dead_subject(&self, group: &str) -> String {
        format!("{}_dead.{group}", self.prefix)
    }

    /// The stream of delayed events, and its subjects.
    pub(crate) fn delayed_stream(&self) -> String {
        format!("{}_delayed", self.stream)
    }

    pub(crate) fn delayed_subject(&self, name: &str) -> String {
        format!("{}_delayed.{name}", self.prefix)
    }

    /// The stream of the handlers finished with a message left for
    /// redelivery.
    pub(crate) fn done_stream(&self) -> String {
        format!("{}_done", self.stream)
    }

    /// The durable consumer's filter subject for `pattern`.
    pub(crate) fn filter_subject(&self, pattern: &str) -> Result<String, Error> {
        earn_core::Pattern::new(pattern)
            .map_err(|error| invalid(format!("NATS filter: {error}")))?;
        let segments: Vec<&str> = pattern.split('.').collect();
        let last = segments.len() - 1;
        let mut subject = self.prefix.to_string();
        for (i, segment) in segments.iter().enumerate() {
            subject.push('.');
            match *segment {
                "**" if i == last => subject.push('>'),
                "**" => {
                    return Err(invalid(format!(
                        "NATS filter `{pattern}`: `**` is only allowed as the last segment \
                         (it becomes the subject wildcard `>`)"
                    )));
                }
                "*" if segments.len() == 1 => subject.push('>'),
                other => subject.push_str(other),
            }
        }
        Ok(subject)
    }
}

/// A setting NATS would refuse.
fn invalid(message: String) -> Error {
    Error::Transport {
        transport: "nats",
        operation: "check the settings".into(),
        source: message.into(),
    }
}

/// `{hostname}-{pid}`, read without a dependency or `unsafe`.
fn default_consumer_name() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_subjects() {
        let settings = NatsSettings::new("orders", "g");
        let subject = |p: &str| settings.filter_subject(p);
        assert_eq!(subject("order.*").unwrap(), "orders.order.*");
        assert_eq!(subject("order.**").unwrap(), "orders.order.>");
        assert_eq!(subject("*").unwrap(), "orders.>");
        assert_eq!(subject("**").unwrap(), "orders.>");
        assert_eq!(subject("order.paid").unwrap(), "orders.order.paid");
        assert!(
            subject("**.error")
                .unwrap_err()
                .to_string()
                .contains("last segment")
        );
        assert!(subject("Order").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(NatsSettings::new("orders", "billing").validate().is_ok());
        let error = NatsSettings::new("orders.v1", "billing")
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("stream `orders.v1`"), "{error}");
        let error = NatsSettings::new("orders", "bill ing")
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("group `bill ing`"), "{error}");
    }
}
