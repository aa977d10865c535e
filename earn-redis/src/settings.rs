//! `RedisSettings`: the stream, the group, and how a consumer reads it.

use std::sync::Arc;
use std::time::Duration;

/// Where a consumer group that does not exist yet starts reading.
///
/// Only used when [`RedisStreams::consume`](crate::RedisStreams::consume)
/// creates the group; an existing group keeps its position.
///
/// ```
/// use earn::redis::{RedisSettings, StartFrom};
///
/// let settings = RedisSettings::new("orders", "billing").start(StartFrom::New);
/// assert_eq!(settings.get_start(), StartFrom::New);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Every entry still in the stream (`XGROUP CREATE … 0`). The default:
    /// events published before the first consumer started are handled.
    #[default]
    Beginning,
    /// Only entries added after the group is created (`XGROUP CREATE … $`).
    New,
}

/// How a [`RedisStreams`](crate::RedisStreams) publishes and consumes:
/// the stream, the consumer group, and the consumer's limits. Every field
/// has a default; set the ones you need with the builder methods. As in
/// sqlx's `PoolOptions`, a setter is named after its setting
/// (`batch(200)`) and its getter is `get_` and that name (`get_batch()`);
/// the stream and the group, given to [`new`](Self::new), have getters
/// only (`get_stream()`, `get_group()`), by the same rule.
///
/// | setting | default | Redis |
/// |---|---|---|
/// | [`consumer`](Self::consumer) | `{hostname}-{pid}` | the consumer name in the group |
/// | [`batch`](Self::batch) | 100 | `XREADGROUP COUNT`, `XAUTOCLAIM COUNT` |
/// | [`block`](Self::block) | 1 s | `XREADGROUP BLOCK` |
/// | [`workers`](Self::workers) | 4 | batches being handled at once |
/// | [`max_deliveries`](Self::max_deliveries) | 5 | deliveries before the dead-letter stream |
/// | [`claim_idle`](Self::claim_idle) | 30 s | `XAUTOCLAIM` min-idle-time |
/// | [`max_len`](Self::max_len) | 100 000 | `XTRIM MINID` target |
/// | [`max_payload`](Self::max_payload) | 1 MiB | refused at publish |
/// | [`envelope`](Self::envelope) | seals nothing | events encrypted and signed as they are published |
/// | [`start`](Self::start) | [`StartFrom::Beginning`] | `XGROUP CREATE` id |
///
/// ```
/// use std::time::Duration;
/// use earn::redis::RedisSettings;
///
/// let settings = RedisSettings::new("orders", "billing")
///     .consumer("billing-1")
///     .batch(200)
///     .claim_idle(Duration::from_secs(60))
///     .max_deliveries(3);
/// assert_eq!(settings.get_stream(), "orders");
/// assert_eq!(settings.get_consumer(), "billing-1");
/// ```
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub(crate) stream: Arc<str>,
    pub(crate) group: Arc<str>,
    pub(crate) consumer: Arc<str>,
    pub(crate) batch: usize,
    pub(crate) block: Duration,
    pub(crate) workers: usize,
    pub(crate) max_deliveries: u32,
    pub(crate) claim_idle: Duration,
    pub(crate) max_len: usize,
    pub(crate) max_payload: usize,
    pub(crate) envelope: earn_core::Envelope,
    pub(crate) start: StartFrom,
}

impl RedisSettings {
    /// Settings for the stream `stream` (a Redis key) read by the consumer
    /// group `group`, with every other field at its default.
    ///
    /// Every process that handles the same events names the same group:
    /// the group shares the entries among them. Another group on the same
    /// stream gets every entry too (one group per kind of work).
    ///
    /// ```
    /// let settings = earn::redis::RedisSettings::new("orders", "billing");
    /// assert_eq!(settings.get_group(), "billing");
    /// assert_eq!(settings.get_batch(), 100);
    /// ```
    pub fn new(stream: impl Into<String>, group: impl Into<String>) -> Self {
        RedisSettings {
            stream: Arc::from(stream.into()),
            group: Arc::from(group.into()),
            consumer: Arc::from(default_consumer_name()),
            batch: 100,
            block: Duration::from_secs(1),
            workers: 4,
            max_deliveries: 5,
            claim_idle: Duration::from_secs(30),
            max_len: 100_000,
            max_payload: 1024 * 1024,
            envelope: earn_core::Envelope::new(),
            start: StartFrom::Beginning,
        }
    }

    /// The consumer's name in the group (default `{hostname}-{pid}`).
    ///
    /// Entries a consumer has read and not yet acknowledged are pending
    /// under its name. On start a consumer first handles its own pending
    /// entries, so a process that restarts under the same name finishes
    /// what it had at once; under a new name (the default changes with the
    /// pid) they wait [`claim_idle`](Self::claim_idle) and are claimed by
    /// any consumer. Give each process a name that is stable across its
    /// restarts and unique across machines, such as the pod or host name
    /// plus a slot number; two live processes must never share a name.
    ///
    /// ```
    /// let settings = earn::redis::RedisSettings::new("orders", "billing").consumer("web-3");
    /// assert_eq!(settings.get_consumer(), "web-3");
    /// ```
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Arc::from(name.into());
        self
    }

    /// Entries read at once (`XREADGROUP COUNT`, and `XAUTOCLAIM COUNT`),
    /// default 100, at least 1.
    ///
    /// ```
    /// let settings = earn::redis::RedisSettings::new("orders", "billing").batch(500);
    /// assert_eq!(settings.get_batch(), 500);
    /// ```
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long one read waits for new entries (`XREADGROUP BLOCK`),
    /// default 1 s, at least 1 ms. Also the longest a stopping consumer
    /// waits for its last read.
    ///
    /// ```
    /// use std::time::Duration;
    /// let settings = earn::redis::RedisSettings::new("orders", "billing")
    ///     .block(Duration::from_millis(200));
    /// assert_eq!(settings.get_block(), Duration::from_millis(200));
    /// ```
    pub fn block(mut self, d: Duration) -> Self {
        self.block = d.max(Duration::from_millis(1));
        self
    }

    /// How many batches one consumer hands to the bus at once, default 4,
    /// at least 1.
    ///
    /// A batch is the entries of one read (at most [`batch`](Self::batch)
    /// of them) or of one claim. It counts until every entry in it has
    /// been handled and acknowledged (or left pending, or dead-lettered).
    /// When `workers` batches are in flight the consumer reads nothing
    /// more until one finishes, so at most `workers × batch` entries of
    /// this consumer are in the bus at any time. The bus's own workers
    /// decide how many handlers run in parallel. When events trickle in,
    /// each read returns few entries, so with slow handlers as few as
    /// `workers` entries are handled at once: raise it for slow handlers.
    ///
    /// ```
    /// let settings = earn::redis::RedisSettings::new("orders", "billing").workers(8);
    /// assert_eq!(settings.get_workers(), 8);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Deliveries of one entry before it moves to the dead-letter stream,
    /// default 5, at least 1: the one retry budget of what this consumer
    /// handles.
    ///
    /// The delivery count is Redis's (`XPENDING`): 1 on the first read,
    /// one more for each claim or re-read, and it is the handlers'
    /// [`Event::attempt`](earn_core::Event::attempt). The bus makes one
    /// attempt per delivery of each handler that has not finished with the
    /// entry (its [`RetryPolicy`](earn_core::RetryPolicy) is for `publish`
    /// only), so a handler that keeps failing is called exactly `n` times.
    /// An entry whose handlers fail on its `n`-th delivery is dead-lettered
    /// with the failure as reason; one found already past `n` (its
    /// consumers kept dying while handling it) is dead-lettered without
    /// running them again.
    ///
    /// ```
    /// let settings = earn::redis::RedisSettings::new("orders", "billing").max_deliveries(3);
    /// assert_eq!(settings.get_max_deliveries(), 3);
    /// ```
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// How long an entry stays pending, unacknowledged, before any consumer
    /// of the group may claim it (`XAUTOCLAIM` min-idle-time), default
    /// 30 s, at least 1 ms. Consumers look for such entries every quarter
    /// of this.
    ///
    /// It is also how long a failed entry waits before its next delivery,
    /// and must be longer than the longest handling of one batch: an entry
    /// still being handled past it may be claimed and handled again by
    /// another process.
    ///
    /// ```
    /// use std::time::Duration;
    /// let settings = earn::redis::RedisSettings::new("orders", "billing")
    ///     .claim_idle(Duration::from_secs(120));
    /// assert_eq!(settings.get_claim_idle(), Duration::from_secs(120));
    /// ```
    pub fn claim_idle(mut self, d: Duration) -> Self {
        self.claim_idle = d.max(Duration::from_millis(1));
        self
    }

    /// How many entries the stream keeps, default 100 000, at least 1.
    ///
    /// Consumers trim the stream every two seconds with `XTRIM MINID`
    /// towards this many entries, but never past the oldest entry that any
    /// group of the stream still has pending or has not read yet: a backlog
    /// is never dropped, so the stream can be longer than this. The cut
    /// falls on a position recorded at an earlier trim, so without a
    /// backlog the stream keeps between `max_len` entries and that plus
    /// what was added in the last two seconds. Publishing never trims
    /// (`XADD MAXLEN` would drop pending entries).
    ///
    /// ```
    /// let settings = earn::redis::RedisSettings::new("orders", "billing").max_len(1_000_000);
    /// assert_eq!(settings.get_max_len(), 1_000_000);
    /// ```
    pub fn max_len(mut self, n: usize) -> Self {
        self.max_len = n.max(1);
        self
    }

    /// The largest serialized event (its JSON) `publish` accepts, default
    /// 1 MiB. A larger one is refused with
    /// [`Error::PayloadTooLarge`](earn_core::Error::PayloadTooLarge) and not
    /// sent; store large data elsewhere and publish a reference.
    ///
    /// ```
    /// let settings = earn::redis::RedisSettings::new("orders", "billing").max_payload(64 * 1024);
    /// assert_eq!(settings.get_max_payload(), 65_536);
    /// ```
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Seals what [`publish`](crate::RedisStreams::publish) sends with `envelope`
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
    /// let settings = earn::redis::RedisSettings::new("orders", "billing").envelope(envelope);
    /// assert!(!settings.get_envelope().is_empty());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn envelope(mut self, envelope: earn_core::Envelope) -> Self {
        self.envelope = envelope;
        self
    }

    /// Where the group starts if [`consume`](crate::RedisStreams::consume)
    /// creates it (default [`StartFrom::Beginning`]).
    ///
    /// ```
    /// use earn::redis::{RedisSettings, StartFrom};
    /// let settings = RedisSettings::new("orders", "billing").start(StartFrom::New);
    /// assert_eq!(settings.get_start(), StartFrom::New);
    /// ```
    pub fn start(mut self, s: StartFrom) -> Self {
        self.start = s;
        self
    }

    /// The stream's key.
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisSettings::new("orders", "g").get_stream(), "orders");
    /// ```
    pub fn get_stream(&self) -> &str {
        &self.stream
    }

    /// The consumer group.
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisSettings::new("orders", "g").get_group(), "g");
    /// ```
    pub fn get_group(&self) -> &str {
        &self.group
    }

    /// The consumer's name.
    ///
    /// ```
    /// let name = earn::redis::RedisSettings::new("orders", "g").get_consumer().to_owned();
    /// assert!(name.ends_with(&format!("-{}", std::process::id())));
    /// ```
    pub fn get_consumer(&self) -> &str {
        &self.consumer
    }

    /// Entries read at once.
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisSettings::new("s", "g").get_batch(), 100);
    /// ```
    pub fn get_batch(&self) -> usize {
        self.batch
    }

    /// How long one read blocks.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(earn::redis::RedisSettings::new("s", "g").get_block(), Duration::from_secs(1));
    /// ```
    pub fn get_block(&self) -> Duration {
        self.block
    }

    /// Batches in flight at once.
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisSettings::new("s", "g").get_workers(), 4);
    /// ```
    pub fn get_workers(&self) -> usize {
        self.workers
    }

    /// Deliveries before the dead-letter stream.
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisSettings::new("s", "g").get_max_deliveries(), 5);
    /// ```
    pub fn get_max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// The idle time after which pending entries are claimed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let idle = earn::redis::RedisSettings::new("s", "g").get_claim_idle();
    /// assert_eq!(idle, Duration::from_secs(30));
    /// ```
    pub fn get_claim_idle(&self) -> Duration {
        self.claim_idle
    }

    /// The trim target.
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisSettings::new("s", "g").get_max_len(), 100_000);
    /// ```
    pub fn get_max_len(&self) -> usize {
        self.max_len
    }

    /// The largest event accepted, in bytes.
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisSettings::new("s", "g").get_max_payload(), 1 << 20);
    /// ```
    pub fn get_max_payload(&self) -> usize {
        self.max_payload
    }

    /// What [`envelope`](Self::envelope) set.
    pub fn get_envelope(&self) -> &earn_core::Envelope {
        &self.envelope
    }

    /// Where a new group starts.
    ///
    /// ```
    /// use earn::redis::{RedisSettings, StartFrom};
    /// assert_eq!(RedisSettings::new("s", "g").get_start(), StartFrom::Beginning);
    /// ```
    pub fn get_start(&self) -> StartFrom {
        self.start
    }

    /// The dead-letter stream: `{stream}:dead`.
    pub(crate) fn dead_key(&self) -> String {
        format!("{}:dead", self.stream)
    }

    /// The sorted set of delayed events: `{stream}:delayed`.
    pub(crate) fn delayed_key(&self) -> String {
        format!("{}:delayed", self.stream)
    }

    /// The set of the handlers that finished with an entry left pending
    /// for redelivery: `{stream}:done:{group}:{entry id}`.
    pub(crate) fn done_key(&self, entry: &str) -> String {
        format!("{}:done:{}:{entry}", self.stream, self.group)
    }

    /// How long a set of finished handlers outlives its last update.
    ///
    /// The set is deleted with the entry's acknowledgement or dead letter;
    /// the expiry only collects the sets of entries that vanished while
    /// pending (trimmed, deleted, the group destroyed). It must outlast the
    /// entry's remaining redeliveries, which come at least `claim_idle`
    /// apart, and later when no consumer runs (a night of downtime): so at
    /// least a day, and twice `claim_idle × max_deliveries` beyond that.
    /// Expiring too early would only run finished handlers again.
    pub(crate) fn done_ttl(&self) -> Duration {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        self.claim_idle
            .saturating_mul(self.max_deliveries.saturating_mul(2))
            .max(DAY)
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
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}
