//! `RedisStreams`: the connection, publishing, and the `EventSink` the
//! transactional outbox relays to.

use std::sync::Arc;
use std::time::Duration;

use earn_core::{BoxError, Error, Event, EventBus, EventSink, SinkFuture};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::connection::RedisConnection;
use crate::consumer::Consumer;
use crate::publisher;
use crate::scripts::Scripts;
use crate::settings::{RedisSettings, StartFrom};

/// Wraps a Redis error as earn's transport error.
pub(crate) fn transport(operation: &'static str) -> impl FnOnce(redis::RedisError) -> Error {
    move |source| Error::Transport {
        transport: "redis",
        operation: operation.into(),
        source: Box::new(source),
    }
}

/// A transport error with a message of ours.
pub(crate) fn transport_msg(operation: &'static str, message: String) -> Error {
    Error::Transport {
        transport: "redis",
        operation: operation.into(),
        source: message.into(),
    }
}

/// Whether Redis said the consumer group (or its stream) does not exist.
pub(crate) fn is_no_group(error: &redis::RedisError) -> bool {
    error.code() == Some("NOGROUP")
}

/// How long a command on the shared connection may take before it fails.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection attempt may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection settings: fail a command within seconds when Redis is away
/// (callers back off and retry), reconnect in the background.
pub(crate) fn connection_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
}

pub(crate) struct Inner {
    pub(crate) client: redis::Client,
    /// What `client` was made from, for messages (shown without secrets).
    pub(crate) connection: RedisConnection,
    /// Multiplexed: concurrent commands share one socket and are pipelined.
    /// Never used for a blocking read.
    pub(crate) conn: ConnectionManager,
    pub(crate) settings: RedisSettings,
    pub(crate) dead: Arc<str>,
    pub(crate) delayed: Arc<str>,
    pub(crate) marks: Arc<str>,
    pub(crate) scripts: Scripts,
    /// Queue of the task that sends `XADD`s in pipelines.
    publisher: mpsc::Sender<publisher::Request>,
    /// The replies to this handle's requests, from its first `request`.
    replies: std::sync::OnceLock<earn_core::reply::ReplyInbox>,
}

/// The publishing task ended: its runtime was shut down.
fn publisher_gone() -> Error {
    transport_msg(
        "publish",
        "the publishing task has stopped (the tokio runtime it ran on was shut down); \
         connect again from the running runtime"
            .to_owned(),
    )
}

/// Events over a Redis stream: publish them, consume them into an
/// [`EventBus`] with a consumer group, and manage the dead letters.
/// Cheap to clone; clones share one multiplexed connection, which
/// pipelines concurrent commands.
///
/// See the [crate documentation](crate) for the delivery guarantees.
///
/// ```no_run
/// use std::time::Duration;
/// use earn::redis::{RedisSettings, RedisStreams};
/// use earn::{Event, EventBus};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let streams = RedisStreams::connect(
///     "redis://127.0.0.1:6379",
///     RedisSettings::new("orders", "billing"),
/// ).await?;
///
/// let bus = EventBus::builder().build()?; // with the #[event_handler]s of the program
/// let consumer = streams.consume(bus).await?;
///
/// streams.publish(&Event::new("order.paid", &serde_json::json!({"order": 7}))?).await?;
///
/// // at shutdown:
/// consumer.shutdown(Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStreams {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreams")
            .field("connection", &self.inner.connection)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl RedisStreams {
    /// Connects to the Redis server `connection` names: a URL
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS
    /// with the `redis-tls` feature), or a [`RedisConnection`] with the
    /// user, password and TLS certificates given apart from the URL. Fails
    /// if the server cannot be reached or refuses the credentials or the
    /// certificates; once connected, a lost connection is re-established in
    /// the background and the commands in between fail with
    /// [`Error::Transport`]. No error or log line of earn shows the
    /// password or a key.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), earn::Error> {
    /// use earn::redis::{RedisSettings, RedisStreams};
    /// let streams = RedisStreams::connect("redis://127.0.0.1:6379", RedisSettings::new("orders", "billing")).await?;
    /// assert_eq!(streams.settings().get_stream(), "orders");
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        connection: impl Into<RedisConnection>,
        settings: RedisSettings,
    ) -> Result<RedisStreams, Error> {
        let connection = connection.into();
        let client = connection.client()?;
        let conn =
            ConnectionManager::new_with_config(client.clone(), connection_config(RESPONSE_TIMEOUT))
                .await
                .map_err(|error| connection.connect_error(error))?;
        // Connecting needs no command: without this, a server that lets
        // no one in without a password (`NOAUTH`) would fail only the
        // first publish.
        redis::cmd("PING")
            .query_async::<()>(&mut conn.clone())
            .await
            .map_err(|error| connection.connect_error(error))?;
        let stream: Arc<str> = settings.stream.clone();
        Ok(RedisStreams {
            inner: Arc::new(Inner {
                client,
                connection,
                publisher: publisher::spawn(conn.clone(), stream),
                conn,
                dead: Arc::from(settings.dead_key()),
                delayed: Arc::from(settings.delayed_key()),
                marks: Arc::from(format!("{}:marks", settings.stream)),
                settings,
                scripts: Scripts::new(),
                replies: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The settings this was connected with.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) {
    /// println!("publishing to {}", streams.settings().get_stream());
    /// # }
    /// ```
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    pub(crate) fn stream_key(&self) -> &Arc<str> {
        &self.inner.settings.stream
    }

    /// Serializes `event` once as it leaves this process (with the current
    /// trace context, feature `otel`), refusing one over `max_payload`.
    fn encode(&self, event: &Event) -> Result<Vec<u8>, Error> {
        #[cfg(feature = "otel")]
        let event = &earn_core::trace_context::inject(event.clone());
        let sealed;
        let event = if self.inner.settings.envelope.is_empty() {
            event
        } else {
            sealed = self.inner.settings.envelope.seal(event.clone())?;
            &sealed
        };
        // Sized for a typical small event: no regrowth while writing it.
        let mut json = Vec::with_capacity(256);
        serde_json::to_writer(&mut json, event.data()).map_err(|error| Error::Transport {
            transport: "redis",
            operation: "publish".into(),
            source: Box::new(error),
        })?;
        let max = self.inner.settings.max_payload;
        if json.len() > max {
            return Err(Error::PayloadTooLarge {
                event: event.name().to_string(),
                id: event.id(),
                size: json.len(),
                max,
            });
        }
        Ok(json)
    }

    /// Appends `event` to the stream (`XADD`) and returns the entry id.
    /// Once this returns `Ok`, Redis holds the event (durably as far as its
    /// persistence settings go). An error means it may not have been
    /// stored: publish again (the event id lets handlers drop a duplicate).
    ///
    /// The event is serialized once; one larger than
    /// [`max_payload`](RedisSettings::max_payload) is refused with
    /// [`Error::PayloadTooLarge`]. Concurrent calls (from any clone) go out
    /// together: whatever is queued when the previous round trip returns is
    /// sent as one pipeline of `XADD`s. Publish from many tasks for
    /// throughput; a lone call is sent at once.
    ///
    /// Cancel-safe while it waits for its turn; dropped after its `XADD`
    /// was handed to the pipeline, the event may still be stored, as when
    /// an error is returned.
    ///
    /// With the `otel` feature the event leaves with the current span's
    /// W3C trace context in its metadata (`earn::trace_context::inject`),
    /// unless it carries one already.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// let event = earn::Event::new("order.paid", &serde_json::json!({"order": 7}))?;
    /// let entry_id = streams.publish(&event).await?;
    /// println!("stored as {entry_id}");
    /// # Ok(()) }
    /// ```
    pub async fn publish(&self, event: &Event) -> Result<String, Error> {
        let json = self.encode(event)?;
        let send = async {
            self.queue(event.name().clone(), json)
                .await?
                .await
                .map_err(|_| publisher_gone())?
                .map_err(transport("publish"))
        };
        let span = tracing::debug_span!("earn.redis.publish", event = event.name().as_str(), event_id = %event.id());
        if span.is_disabled() {
            send.await
        } else {
            send.instrument(span).await
        }
    }

    /// Hands one serialized event to the publisher task; the answer comes
    /// on the returned channel once its pipeline returns.
    async fn queue(
        &self,
        name: earn_core::EventName,
        json: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<String, redis::RedisError>>, Error> {
        let (reply, stored) = oneshot::channel();
        self.inner
            .publisher
            .send(publisher::Request { name, json, reply })
            .await
            .map_err(|_| publisher_gone())?;
        Ok(stored)
    }

    /// Appends every event of `events` (`XADD`s sent as pipelines, not
    /// one round trip each) and returns their entry ids, in order: much
    /// faster than awaiting [`publish`](Self::publish) once per event.
    ///
    /// Every event is serialized and checked against
    /// [`max_payload`](RedisSettings::max_payload) before any is sent, so a
    /// refusal stores none. An error after that means some may be stored:
    /// publish the batch again (handlers can drop duplicates by event id).
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// let readings: Vec<earn::Event> = (0..1_000)
    ///     .map(|i| earn::Event::new("metric.cpu", &i))
    ///     .collect::<Result<_, _>>()?;
    /// let ids = streams.publish_all(&readings).await?;
    /// assert_eq!(ids.len(), 1_000);
    /// # Ok(()) }
    /// ```
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<String>, Error> {
        let encoded = events
            .iter()
            .map(|event| Ok((event.name().clone(), self.encode(event)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let mut waiting = Vec::with_capacity(encoded.len());
        for (name, json) in encoded {
            waiting.push(self.queue(name, json).await?);
        }
        let mut ids = Vec::with_capacity(waiting.len());
        for stored in waiting {
            ids.push(
                stored
                    .await
                    .map_err(|_| publisher_gone())?
                    .map_err(transport("publish_all"))?,
            );
        }
        Ok(ids)
    }

    /// Stores `event` to be appended to the stream after `delay`. It waits
    /// in the sorted set `{stream}:delayed`, scored by its due time on the
    /// Redis server's clock; running consumers move due events to the
    /// stream (checking every 100 ms), each move atomic. So it is handled
    /// no earlier than `delay` from now, and later if no consumer runs.
    /// With the `otel` feature it carries the current trace context, as in
    /// [`publish`](Self::publish).
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let reminder = earn::Event::new("cart.reminder", &serde_json::json!({"cart": 3}))?;
    /// streams.publish_delayed(&reminder, Duration::from_secs(3600)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_delayed(&self, event: &Event, delay: Duration) -> Result<(), Error> {
        let json = self.encode(event)?;
        let name = event.name().as_str();
        let mut member = Vec::with_capacity(name.len() + 1 + json.len());
        member.extend_from_slice(name.as_bytes());
        member.push(b'\n');
        member.extend_from_slice(&json);
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .scripts
            .schedule
            .key(&*self.inner.delayed)
            .arg(delay_ms)
            .arg(member)
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(transport("publish_delayed"))?;
        metrics::counter!("earn_redis_published_total", "stream" => self.stream_key().clone())
            .increment(1);
        tracing::debug!(event = name, event_id = %event.id(), ?delay, "event scheduled");
        Ok(())
    }

    /// Starts consuming the stream into `bus` as this settings' consumer
    /// of its group, and returns the running [`Consumer`].
    ///
    /// Creates the group if it is missing (and the stream with it,
    /// `MKSTREAM`), starting where [`start`](RedisSettings::start) says.
    /// The consumer first handles its own pending entries (left by an
    /// earlier run under the same name), then new ones; see the
    /// [crate documentation](crate) for the rest.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = earn::EventBus::builder().build()?;
    /// let consumer = streams.consume(bus).await?;
    /// println!("consuming as {}", consumer.name());
    /// # Ok(()) }
    /// ```
    pub async fn consume(&self, bus: EventBus) -> Result<Consumer, Error> {
        self.ensure_group(self.inner.settings.start).await?;
        earn_core::reply::route(
            "redis",
            self.settings().get_stream(),
            Arc::new(crate::reply::RedisReplies(self.clone())),
        );
        Consumer::start(self.clone(), bus).await
    }

    /// Publishes `event` as a request and waits for its reply, sent by a
    /// handler in any process that consumes the stream with
    /// [`earn::reply::send`](earn_core::reply::send). The request carries
    /// `earn-reply-to: redis:<list>`, a list of this handle's own, read by
    /// one task (started by the first request, on a connection of its
    /// own); the reply is opened with the settings'
    /// [`envelope`](RedisSettings::envelope).
    ///
    /// No reply within `timeout` is
    /// [`BusError::NoReply`](earn_core::BusError::NoReply). Cancel-safe:
    /// dropped, it stops waiting, and a late reply is dropped (an unread
    /// list expires after 5 minutes).
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let quote = earn::Event::new("price.quote", "BOOK-1")?;
    /// let reply = streams.request(&quote, Duration::from_secs(2)).await?;
    /// println!("{}", reply.payload::<String>()?);
    /// # Ok(()) }
    /// ```
    pub async fn request(&self, event: &Event, timeout: Duration) -> Result<Event, Error> {
        let inbox = self.inner.replies.get_or_init(|| crate::reply::start(self));
        let via = self.settings().get_stream();
        let envelope = &self.inner.settings.envelope;
        inbox
            .request(event, via, timeout, envelope, |request| async move {
                self.publish(&request).await.map(|_| ())
            })
            .await
    }

    /// Creates the group (and the stream) unless it exists.
    pub(crate) async fn ensure_group(&self, start: StartFrom) -> Result<(), Error> {
        let id = match start {
            StartFrom::Beginning => "0",
            StartFrom::New => "$",
        };
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&**self.stream_key())
            .arg(&*self.inner.settings.group)
            .arg(id)
            .arg("MKSTREAM")
            .query_async::<()>(&mut self.conn())
            .await;
        match created {
            Err(error) if error.code() != Some("BUSYGROUP") => {
                Err(transport("create group")(error))
            }
            _ => Ok(()),
        }
    }
}

/// The transactional outbox relays to Redis through this: an event is
/// accepted (its outbox row deleted) once `XADD` succeeded.
///
/// ```no_run
/// # async fn run(db: earn::Db, streams: earn::redis::RedisStreams) {
/// let relay = earn::OutboxRelay::new(db, streams);
/// # }
/// ```
impl EventSink for RedisStreams {
    fn hand_over(&self, event: Event, accepted: Box<dyn FnOnce() + Send>) -> SinkFuture<'_> {
        Box::pin(async move {
            self.publish(&event).await.map_err(BoxError::from)?;
            accepted();
            Ok(())
        })
    }

    /// [`RedisSettings::max_payload`]: `publish` refuses a larger event.
    fn max_payload(&self) -> Option<usize> {
        Some(self.inner.settings.max_payload)
    }

    /// [`RedisSettings::envelope`]: the outbox stores its rows sealed.
    fn envelope(&self) -> Option<&earn_core::Envelope> {
        Some(&self.inner.settings.envelope).filter(|envelope| !envelope.is_empty())
    }
}
