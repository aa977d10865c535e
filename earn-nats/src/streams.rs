//! `NatsStreams`: the connection, the streams, publishing, and the
//! `EventSink` the transactional outbox relays to.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use earn_core::{BoxError, Error, Event, EventBus, EventSink, RedactedUrl, SinkFuture};
use tracing::Instrument;

use crate::consumer::Consumer;
use crate::settings::NatsSettings;
use crate::wire;

/// Wraps a NATS error as earn's transport error.
pub(crate) fn transport<E>(operation: &'static str) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| Error::Transport {
        transport: "nats",
        operation: operation.into(),
        source: Box::new(source),
    }
}

/// How long one connection attempt may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a JetStream request (a publish acknowledgement, an API call)
/// may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    pub(crate) settings: NatsSettings,
    /// The replies to this handle's requests, from its first `request`.
    replies: tokio::sync::OnceCell<earn_core::reply::ReplyInbox>,
}

/// Events over a NATS JetStream stream: publish them, consume them into
/// an [`EventBus`] with a durable consumer per group, and manage the dead
/// letters. Cheap to clone; clones share one connection.
///
/// See the [crate documentation](crate) for the delivery guarantees.
///
/// ```no_run
/// use std::time::Duration;
/// use earn::nats::{NatsSettings, NatsStreams};
/// use earn::{Event, EventBus};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let streams = NatsStreams::connect(
///     "nats://127.0.0.1:4222",
///     NatsSettings::new("orders", "billing"),
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
pub struct NatsStreams {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStreams")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl NatsStreams {
    /// Connects to the NATS server at `url` (`nats://host:4222`, several
    /// comma-separated, or `tls://` for TLS with the system's roots) and
    /// creates the stream, its dead-letter stream and its delayed stream
    /// where they are missing. Fails if the server cannot be reached or
    /// has no JetStream; once connected, a lost connection is re-established
    /// in the background and the calls in between fail with
    /// [`Error::Transport`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), earn::Error> {
    /// use earn::nats::{NatsSettings, NatsStreams};
    /// let streams = NatsStreams::connect("nats://127.0.0.1:4222", NatsSettings::new("orders", "billing")).await?;
    /// assert_eq!(streams.settings().get_stream(), "orders");
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str, settings: NatsSettings) -> Result<NatsStreams, Error> {
        NatsStreams::connect_with(url, ConnectOptions::new(), settings).await
    }

    /// [`connect`](Self::connect) with the client's options: TLS with
    /// your own certificate authority and a client certificate,
    /// credentials files, nkeys, user and password, tokens. See
    /// `async_nats::ConnectOptions`. earn sets the connection name (the
    /// [`consumer`](NatsSettings::consumer) name) and timeouts of a few
    /// seconds unless they are set.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use earn::nats::{ConnectOptions, NatsSettings, NatsStreams};
    /// let options = ConnectOptions::new()
    ///     .add_root_certificates("ca.pem".into())
    ///     .add_client_certificate("client.pem".into(), "client-key.pem".into())
    ///     .credentials_file("app.creds").await?;
    /// let streams = NatsStreams::connect_with(
    ///     "tls://nats.internal:4222",
    ///     options,
    ///     NatsSettings::new("orders", "billing"),
    /// ).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(
        url: &str,
        options: ConnectOptions,
        settings: NatsSettings,
    ) -> Result<NatsStreams, Error> {
        settings.validate()?;
        let client = options
            .name(&*settings.consumer)
            .connection_timeout(CONNECTION_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| Error::Transport {
                transport: "nats",
                operation: format!("connect to {}", RedactedUrl::new(url)).into(),
                source: Box::new(source),
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());
        let streams = NatsStreams {
            inner: Arc::new(Inner {
                client,
                js,
                settings,
                replies: tokio::sync::OnceCell::new(),
            }),
        };
        streams.ensure_streams().await?;
        Ok(streams)
    }

    /// The settings this was connected with.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) {
    /// println!("publishing to {}", streams.settings().get_stream());
    /// # }
    /// ```
    pub fn settings(&self) -> &NatsSettings {
        &self.inner.settings
    }

    /// The underlying client, to flush or to watch the connection.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) {
    /// println!("{:?}", streams.client().connection_state());
    /// # }
    /// ```
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Deletes the stream and its dead-letter, delayed and finished-handler
    /// streams from the server, with everything in them and every group's
    /// consumer: for tests and teardown. A stream already gone is not an
    /// error.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), earn::Error> {
    /// streams.delete_streams().await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_streams(&self) -> Result<(), Error> {
        let settings = &self.inner.settings;
        for name in [
            settings.stream.to_string(),
            settings.dead_stream(),
            settings.delayed_stream(),
            settings.done_stream(),
        ] {
            if let Err(error) = self.js().delete_stream(&name).await {
                let gone = matches!(
                    error.kind(),
                    jetstream::context::DeleteStreamErrorKind::JetStream(ref e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                );
                if !gone {
                    return Err(transport("delete a stream")(error));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// Creates the event stream, the dead-letter stream and the delayed
    /// stream where they are missing; existing ones keep their settings.
    async fn ensure_streams(&self) -> Result<(), Error> {
        let settings = &self.inner.settings;
        let file = |name: String, subjects: String| stream::Config {
            name,
            subjects: vec![subjects],
            storage: stream::StorageType::File,
            duplicate_window: settings.duplicate_window,
            ..Default::default()
        };
        let events = stream::Config {
            max_age: settings.max_age,
            ..file(settings.stream.to_string(), settings.subjects())
        };
        let dead = file(
            settings.dead_stream(),
            format!("{}_dead.>", settings.prefix),
        );
        let delayed = file(
            settings.delayed_stream(),
            format!("{}_delayed.>", settings.prefix),
        );
        for config in [events, dead, delayed] {
            self.js()
                .get_or_create_stream(config)
                .await
                .map_err(transport("create stream"))?;
        }
        Ok(())
    }

    /// The event as it leaves: with the current trace context in its
    /// metadata (feature `otel`), sealed by the settings' envelope, then
    /// copied into the message's headers.
    fn outgoing<'e>(&self, event: &'e Event) -> Result<std::borrow::Cow<'e, Event>, Error> {
        #[cfg(feature = "otel")]
        let event = std::borrow::Cow::Owned(earn_core::trace_context::inject(event.clone()));
        #[cfg(not(feature = "otel"))]
        let event = std::borrow::Cow::Borrowed(event);
        let envelope = &self.inner.settings.envelope;
        if envelope.is_empty() {
            return Ok(event);
        }
        Ok(std::borrow::Cow::Owned(envelope.seal(event.into_owned())?))
    }

    /// Serializes `event` once, refusing one over `max_payload` or the
    /// server's limit.
    pub(crate) fn encode(&self, event: &Event) -> Result<Bytes, Error> {
        // Sized for a typical small event: no regrowth while writing it.
        let mut json = Vec::with_capacity(256);
        serde_json::to_writer(&mut json, event.data()).map_err(transport("publish"))?;
        let max = self.payload_limit();
        if json.len() > max {
            return Err(Error::PayloadTooLarge {
                event: event.name().to_string(),
                id: event.id(),
                size: json.len(),
                max,
            });
        }
        Ok(Bytes::from(json))
    }

    /// The largest event JSON accepted: the settings' limit, or the
    /// server's (which counts the headers too, so they are left room).
    fn payload_limit(&self) -> usize {
        // An atomic the client keeps current (not `server_info()`, which
        // clones the server's whole INFO on every publish).
        let server = self.inner.client.max_payload().saturating_sub(HEADER_ROOM);
        self.inner.settings.max_payload.min(server)
    }

    /// Stores `event` in the stream under `{prefix}.{event name}` and
    /// returns its stream sequence. Once this returns `Ok`, JetStream holds
    /// the event (on disk: the streams are created with file storage). An
    /// error means it may not have been stored: publish again. The event
    /// id goes in `Nats-Msg-Id`, so a retry within the stream's
    /// [`duplicate_window`](NatsSettings::duplicate_window) is stored once
    /// (and returns the first one's sequence).
    ///
    /// With the `otel` feature the event leaves with the current span's W3C
    /// trace context (`earn::trace_context::inject`), in its metadata and
    /// in the `traceparent` / `tracestate` headers.
    ///
    /// The event is serialized once; one larger than
    /// [`max_payload`](NatsSettings::max_payload) or the server's limit is
    /// refused with [`Error::PayloadTooLarge`]. Concurrent calls share the
    /// connection and are pipelined: publish from many tasks for
    /// throughput.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// let event = earn::Event::new("order.paid", &serde_json::json!({"order": 7}))?;
    /// let sequence = streams.publish(&event).await?;
    /// println!("stored as {sequence}");
    /// # Ok(()) }
    /// ```
    pub async fn publish(&self, event: &Event) -> Result<u64, Error> {
        let event = &*self.outgoing(event)?;
        let payload = self.encode(event)?;
        let subject = self.inner.settings.subject(event.name().as_str());
        let headers = wire::event_headers(event.data(), &event.id().to_string());
        let send = self.send(subject, headers, payload, "publish");
        let span = tracing::debug_span!("earn.nats.publish", event = event.name().as_str(), event_id = %event.id());
        let sequence = if span.is_disabled() {
            send.await
        } else {
            send.instrument(span).await
        }?;
        metrics::counter!("earn_nats_published_total", "stream" => self.inner.settings.stream.clone())
            .increment(1);
        Ok(sequence)
    }

    /// Stores every event of `events` and returns their stream sequences,
    /// in order: the messages are sent back to back and their
    /// acknowledgements awaited together, not one round trip each. Each
    /// keeps its event id as `Nats-Msg-Id`, so a batch published again
    /// after an error is stored once within the duplicate window.
    ///
    /// Every event is serialized and checked against the payload limits
    /// before any is sent, so a refusal stores none.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// let readings: Vec<earn::Event> = (0..1_000)
    ///     .map(|i| earn::Event::new("metric.cpu", &i))
    ///     .collect::<Result<_, _>>()?;
    /// let sequences = streams.publish_all(&readings).await?;
    /// assert_eq!(sequences.len(), 1_000);
    /// # Ok(()) }
    /// ```
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<u64>, Error> {
        let messages = events
            .iter()
            .map(|event| {
                let event = &*self.outgoing(event)?;
                let payload = self.encode(event)?;
                let subject = self.inner.settings.subject(event.name().as_str());
                let headers = wire::event_headers(event.data(), &event.id().to_string());
                Ok((subject, headers, payload))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut acks = Vec::with_capacity(messages.len());
        for (subject, headers, payload) in messages {
            acks.push(
                self.send_unacknowledged(subject, headers, payload, "publish_all")
                    .await?,
            );
        }
        let mut sequences = Vec::with_capacity(acks.len());
        for ack in acks {
            sequences.push(ack.await.map_err(transport("publish_all"))?.sequence);
        }
        metrics::counter!("earn_nats_published_total", "stream" => self.inner.settings.stream.clone())
            .increment(sequences.len() as u64);
        Ok(sequences)
    }

    /// Sends one message; the future of JetStream's acknowledgement.
    async fn send_unacknowledged(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        payload: Bytes,
        operation: &'static str,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, Error> {
        self.js()
            .send_publish(
                subject,
                PublishMessage::build().payload(payload).headers(headers),
            )
            .await
            .map_err(transport(operation))
    }

    /// Publishes one message and waits for JetStream's acknowledgement.
    pub(crate) async fn send(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        payload: Bytes,
        operation: &'static str,
    ) -> Result<u64, Error> {
        let ack = self
            .send_unacknowledged(subject, headers, payload, operation)
            .await?
            .await
            .map_err(transport(operation))?;
        Ok(ack.sequence)
    }

    /// Stores `event` to be published to the stream after `delay`. It
    /// waits in the stream `{stream}_delayed`; running consumers (of any
    /// group) move it to the event stream once due, under its event id, so
    /// a move retried after a crash is stored once. It is handled no
    /// earlier than `delay` from now, and later if no consumer runs.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let reminder = earn::Event::new("cart.reminder", &serde_json::json!({"cart": 3}))?;
    /// streams.publish_delayed(&reminder, Duration::from_secs(3600)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_delayed(&self, event: &Event, delay: Duration) -> Result<(), Error> {
        let event = &*self.outgoing(event)?;
        let payload = self.encode(event)?;
        let due = crate::delayed::now_ms().saturating_add(delay.as_millis() as u64);
        let id = event.id().to_string();
        let mut headers = wire::event_headers(event.data(), &format!("delayed-{id}"));
        headers.insert(wire::HEADER_DUE, due.to_string().as_str());
        let subject = self.inner.settings.delayed_subject(event.name().as_str());
        self.send(subject, headers, payload, "publish_delayed")
            .await?;
        tracing::debug!(event = event.name().as_str(), event_id = %event.id(), ?delay, "event scheduled");
        Ok(())
    }

    /// Publishes `event` as a request and waits for its reply, sent by a
    /// handler in any process that consumes the stream with
    /// [`earn::reply::send`](earn_core::reply::send). The request carries
    /// `earn-reply-to: nats:<inbox>`, an inbox of this handle's own (core
    /// NATS), read by one task started by the first request; the reply is
    /// opened with the settings' [`envelope`](NatsSettings::envelope).
    ///
    /// No reply within `timeout` is
    /// [`BusError::NoReply`](earn_core::BusError::NoReply). Cancel-safe:
    /// dropped, it stops waiting, and a late reply is dropped.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let quote = earn::Event::new("price.quote", "BOOK-1")?;
    /// let reply = streams.request(&quote, Duration::from_secs(2)).await?;
    /// println!("{}", reply.payload::<String>()?);
    /// # Ok(()) }
    /// ```
    pub async fn request(&self, event: &Event, timeout: Duration) -> Result<Event, Error> {
        let inbox = self
            .inner
            .replies
            .get_or_try_init(|| crate::reply::start(self))
            .await?;
        let via = self.settings().get_stream();
        let envelope = &self.inner.settings.envelope;
        inbox
            .request(event, via, timeout, envelope, |request| async move {
                self.publish(&request).await.map(|_| ())
            })
            .await
    }

    /// Starts consuming the stream into `bus` as a process of this
    /// settings' group, and returns the running [`Consumer`].
    ///
    /// Creates the group's durable consumer if it is missing, starting
    /// where [`start`](NatsSettings::start) says, with the
    /// [`ack_wait`](NatsSettings::ack_wait) and
    /// [`filter`](NatsSettings::filter) of these settings (an existing one
    /// keeps its own). See the [crate documentation](crate) for the rest.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams) -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = earn::EventBus::builder().build()?;
    /// let consumer = streams.consume(bus).await?;
    /// println!("consuming as {}", consumer.name());
    /// # Ok(()) }
    /// ```
    pub async fn consume(&self, bus: EventBus) -> Result<Consumer, Error> {
        earn_core::reply::route(
            "nats",
            self.settings().get_stream(),
            Arc::new(crate::reply::NatsReplies(self.clone())),
        );
        Consumer::start(self.clone(), bus).await
    }
}

/// Bytes of the server's `max_payload` left for the headers earn writes
/// (the message id, the version, a trace context and the routing headers
/// of a requeued dead letter).
const HEADER_ROOM: usize = 1024;

/// The transactional outbox relays to NATS through this: an event is
/// accepted (its outbox row deleted) once JetStream acknowledged it.
///
/// ```no_run
/// # async fn run(db: earn::Db, streams: earn::nats::NatsStreams) {
/// let relay = earn::OutboxRelay::new(db, streams);
/// # }
/// ```
impl EventSink for NatsStreams {
    fn hand_over(&self, event: Event, accepted: Box<dyn FnOnce() + Send>) -> SinkFuture<'_> {
        Box::pin(async move {
            self.publish(&event).await.map_err(BoxError::from)?;
            accepted();
            Ok(())
        })
    }

    /// The smaller of [`NatsSettings::max_payload`] and the server's limit.
    fn max_payload(&self) -> Option<usize> {
        Some(self.payload_limit())
    }

    /// [`NatsSettings::envelope`]: the outbox stores its rows sealed.
    fn envelope(&self) -> Option<&earn_core::Envelope> {
        Some(&self.inner.settings.envelope).filter(|envelope| !envelope.is_empty())
    }
}
