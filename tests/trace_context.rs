//! W3C trace context across transports (feature `otel`): one trace runs
//! from the request that produced an event to the handler that consumed
//! it, whichever way the event travelled. Spans are exported by an
//! OpenTelemetry SDK tracer into memory and read back.
//!
//! Every transport runs the same body, [`one_trace_per_request`]: a new
//! transport (NATS) is one more [`Transport`] impl and one test.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::each_backend;
use earn::nats::{NatsSettings, NatsStreams};
use earn::prelude::*;
use earn::redis::{RedisSettings, RedisStreams};
use earn::trace_context::{TRACEPARENT, TraceParent};
use earn::{EventSink, Outbox, OutboxMode, OutboxRelay};
use opentelemetry::trace::{SpanId, SpanKind, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "traced_orders", events = "order")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    item: String,
}

fn order(item: &str) -> Order {
    Order {
        id: None,
        item: item.into(),
    }
}

/// The spans of the whole test binary (the bus's workers, the Redis
/// consumer's tasks and SQLite's thread included), exported into memory.
/// Its tests run one at a time and reset it first.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(SdkTracerProvider, InMemorySpanExporter)> = OnceLock::new();
    let (_, exporter) = EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("earn-tests"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("one subscriber per test binary");
        (provider, exporter)
    });
    exporter
}

/// One way from a producer to the handlers of a bus.
trait Transport {
    /// Which way, for failure messages.
    fn name(&self) -> String;

    /// Starts handing what it carries to `bus`'s handlers. Whatever it runs
    /// in the background runs outside any span, as a worker would.
    async fn start(&mut self, bus: &EventBus);

    /// Where the outbox relay hands events to send them this way (once
    /// started).
    fn sink(&self) -> impl EventSink + use<Self>;

    /// Sends `event` as it is, metadata included.
    async fn send(&self, event: Event);

    /// Produces `order`'s `order.created`: a producer saving the model, or
    /// publishing its event.
    async fn save(&self, order: Order) {
        self.send(Event::new("order.created", &order).unwrap())
            .await;
    }

    /// Stops what `start` started.
    async fn stop(self);
}

/// `EventBus::publish` in process: the workers handle the event.
#[derive(Default)]
struct Bus(Option<EventBus>);

impl Transport for Bus {
    fn name(&self) -> String {
        "the bus".into()
    }

    fn sink(&self) -> impl EventSink + use<> {
        self.0.clone().unwrap()
    }

    async fn start(&mut self, bus: &EventBus) {
        self.0 = Some(bus.clone());
    }

    async fn send(&self, event: Event) {
        self.0.as_ref().unwrap().publish(event).await.unwrap();
    }

    async fn stop(self) {}
}

/// A Redis stream consumed by a group into the bus.
struct Redis {
    url: String,
    stream: String,
    streams: RedisStreams,
    consumer: Option<earn::redis::Consumer>,
}

impl Redis {
    async fn connect(url: &str) -> Redis {
        let stream = format!("earn:trace:{}", uuid::Uuid::new_v4());
        let streams = RedisStreams::connect(url, RedisSettings::new(stream.as_str(), "traced"))
            .await
            .unwrap();
        Redis {
            url: url.to_owned(),
            stream,
            streams,
            consumer: None,
        }
    }
}

impl Transport for Redis {
    fn name(&self) -> String {
        "Redis Streams".into()
    }

    fn sink(&self) -> impl EventSink + use<> {
        self.streams.clone()
    }

    async fn start(&mut self, bus: &EventBus) {
        self.consumer = Some(self.streams.consume(bus.clone()).await.unwrap());
    }

    async fn send(&self, event: Event) {
        self.streams.publish(&event).await.unwrap();
    }

    async fn stop(self) {
        if let Some(consumer) = self.consumer {
            consumer.shutdown(Duration::from_secs(5)).await;
        }
        let mut raw = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let stream = &self.stream;
        let _: () = redis::AsyncCommands::del(
            &mut raw,
            &[
                stream.clone(),
                format!("{stream}:dead"),
                format!("{stream}:delayed"),
            ],
        )
        .await
        .unwrap();
    }
}

/// NATS JetStream: a stream of the test's own and a group's consumer.
struct Nats {
    url: String,
    streams: NatsStreams,
    consumer: Option<earn::nats::Consumer>,
}

impl Nats {
    async fn connect(url: &str) -> Nats {
        let stream = format!("earn-trace-{}", uuid::Uuid::new_v4().simple());
        let streams = NatsStreams::connect(url, NatsSettings::new(stream.as_str(), "traced"))
            .await
            .unwrap();
        Nats {
            url: url.to_owned(),
            streams,
            consumer: None,
        }
    }
}

impl Transport for Nats {
    fn name(&self) -> String {
        "NATS JetStream".into()
    }

    fn sink(&self) -> impl EventSink + use<> {
        self.streams.clone()
    }

    async fn start(&mut self, bus: &EventBus) {
        self.consumer = Some(self.streams.consume(bus.clone()).await.unwrap());
    }

    async fn send(&self, event: Event) {
        let sequence = self.streams.publish(&event).await.unwrap();
        // The stored message carries the context in its headers too, for
        // any NATS client.
        let js = async_nats::jetstream::new(self.streams.client().clone());
        let stream = js
            .get_stream(self.streams.settings().get_stream())
            .await
            .unwrap();
        let stored = stream.get_raw_message(sequence).await.unwrap();
        let header = stored
            .headers
            .get("traceparent")
            .map(|v| v.as_str().to_owned());
        let stored_event: earn::EventData = serde_json::from_slice(&stored.payload).unwrap();
        assert_eq!(
            header.as_deref(),
            stored_event.metadata.get("traceparent").map(String::as_str),
            "the traceparent header is the event's"
        );
    }

    async fn stop(self) {
        if let Some(consumer) = self.consumer {
            consumer.shutdown(Duration::from_secs(5)).await;
        }
        common::delete_nats_streams(&self.url, self.streams.settings().get_stream()).await;
    }
}

/// The transactional outbox in relay mode (the producer only writes rows),
/// its relay handing the rows on to `T`, and `T` delivering them.
struct Outboxed<T> {
    db: Db,
    then: T,
    relay: Option<Running>,
}

/// The outbox relay running in the background, until told to stop.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Outboxed<T> {
    async fn new(db: Db, then: T) -> Outboxed<T> {
        let db = db.with_outbox(Outbox {
            mode: OutboxMode::Relay,
            ..Outbox::default()
        });
        common::fresh::<Order>(&db).await;
        db.install_outbox().await.unwrap();
        db.execute_unprepared("DELETE FROM earn_outbox")
            .await
            .unwrap();
        Outboxed {
            db,
            then,
            relay: None,
        }
    }
}

impl<T: Transport> Transport for Outboxed<T> {
    fn name(&self) -> String {
        format!("the {:?} outbox to {}", self.db.dialect(), self.then.name())
    }

    fn sink(&self) -> impl EventSink + use<T> {
        // Where its own relay hands the rows.
        self.then.sink()
    }

    async fn start(&mut self, bus: &EventBus) {
        self.then.start(bus).await;
        let relay = OutboxRelay::new(self.db.clone(), self.then.sink())
            .poll_interval(Duration::from_millis(20));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move { relay.run_until(stopped).await });
        self.relay = Some(Running { stop, task });
    }

    async fn send(&self, event: Event) {
        let mut tx = self.db.begin().await.unwrap();
        tx.raise(event).unwrap();
        tx.commit().await.unwrap();
    }

    async fn save(&self, order: Order) {
        order.clone().save(&self.db).await.unwrap();
    }

    async fn stop(self) {
        if let Some(Running { stop, task }) = self.relay {
            let _ = stop.send(());
            task.await.unwrap();
        }
        self.then.stop().await;
    }
}

/// The body every transport runs:
///
/// 1. inside a request span, an order is saved: the producer span is in the
///    request's trace, the consumer span's parent is the producer span, and
///    what the handler traces is inside the consumer span;
/// 2. with no span active, nothing is written and nothing traced;
/// 3. an event carrying a malformed `traceparent` is still delivered.
async fn one_trace_per_request(mut transport: impl Transport) {
    let way = transport.name();
    let exporter = exporter();
    exporter.reset();
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    let (seen, mut handled) = mpsc::unbounded_channel::<Event>();
    bus.subscribe("order.created", 0, move |event: Event| {
        let seen = seen.clone();
        async move {
            let item = event.payload::<Order>().unwrap().item;
            tracing::info_span!("charge card", item).in_scope(|| seen.send(event).unwrap());
        }
    })
    .unwrap();
    transport.start(&bus).await;
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), handled.recv())
            .await
            .unwrap_or_else(|_| panic!("through {way}: no event handled within 10 s"))
            .unwrap()
    };

    let request = tracing::info_span!("request");
    transport
        .save(order("traced"))
        .instrument(request.clone())
        .await;
    drop(request);
    let traced = next().await;

    transport.save(order("untraced")).await;
    let untraced = next().await;
    assert!(
        untraced.metadata().is_empty(),
        "through {way}: no trace, no metadata: {:?}",
        untraced.metadata()
    );

    let garbage = "00-this-is-no-trace-01";
    let malformed = Event::new("order.created", &order("malformed"))
        .unwrap()
        .with_meta(TRACEPARENT, garbage);
    transport.send(malformed).await;
    assert_eq!(next().await.meta(TRACEPARENT), Some(garbage));

    // Every span of the handlers has ended once the bus is idle.
    bus.wait_idle().await;
    transport.stop().await;
    let spans = exporter.get_finished_spans().unwrap();

    let request = one(&spans, &way, |s| s.name == "request");
    let trace = request.span_context.trace_id();
    let in_trace = |s: &&SpanData| s.span_context.trace_id() == trace;
    let producer = one(&spans, &way, |s| {
        in_trace(s) && s.span_kind == SpanKind::Producer
    });
    let consumer = one(&spans, &way, |s| {
        in_trace(s) && s.span_kind == SpanKind::Consumer
    });
    let handler = one(&spans, &way, |s| {
        s.name == "charge card" && attribute(s, "item") == Some("traced".into())
    });

    assert_eq!(producer.name, "order.created send", "through {way}");
    assert!(
        descends(&spans, producer, request.span_context.span_id()),
        "through {way}: the producer span is in the request"
    );
    assert_eq!(
        traced.meta(TRACEPARENT),
        Some(
            TraceParent::from_span_context(&producer.span_context)
                .unwrap()
                .to_string()
                .as_str()
        ),
        "through {way}: the event carries the producer span"
    );

    assert_eq!(consumer.name, "order.created process", "through {way}");
    assert_eq!(
        consumer.parent_span_id,
        producer.span_context.span_id(),
        "through {way}: the consumer span's parent is the producer span"
    );
    assert!(consumer.parent_span_is_remote, "through {way}");
    for (key, value) in [
        ("messaging.system", "earn".to_owned()),
        ("messaging.operation.type", "process".to_owned()),
        ("messaging.destination.name", "order.created".to_owned()),
        ("messaging.message.id", traced.id().to_string()),
    ] {
        assert_eq!(
            attribute(consumer, key),
            Some(value),
            "through {way}: {key}"
        );
    }

    assert_eq!(handler.span_context.trace_id(), trace, "through {way}");
    assert!(
        descends(&spans, handler, consumer.span_context.span_id()),
        "through {way}: the handler's span is inside the consumer span"
    );

    // The untraced and malformed events: handled, in traces of their own,
    // without a consumer span.
    let consumers = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Consumer)
        .count();
    assert_eq!(consumers, 1, "through {way}");
    for item in ["untraced", "malformed"] {
        let handler = one(&spans, &way, |s| {
            s.name == "charge card" && attribute(s, "item") == Some(item.into())
        });
        assert_ne!(handler.span_context.trace_id(), trace, "through {way}");
    }
}

/// The one span matching `wanted`.
fn one<'a>(spans: &'a [SpanData], way: &str, wanted: impl Fn(&&SpanData) -> bool) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(wanted).collect();
    match found.as_slice() {
        [span] => span,
        _ => panic!(
            "through {way}: {} matching spans among {:#?}",
            found.len(),
            names(spans)
        ),
    }
}

fn names(spans: &[SpanData]) -> Vec<(String, SpanKind, TraceId, SpanId, SpanId)> {
    spans
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.span_kind.clone(),
                s.span_context.trace_id(),
                s.span_context.span_id(),
                s.parent_span_id,
            )
        })
        .collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends(spans: &[SpanData], span: &SpanData, ancestor: SpanId) -> bool {
    let mut parent = span.parent_span_id;
    while parent != SpanId::INVALID {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_context.span_id() == parent) {
            Some(next) => parent = next.parent_span_id,
            None => return false,
        }
    }
    false
}

#[tokio::test]
async fn through_the_bus() {
    let _serial = common::serial().await;
    one_trace_per_request(Bus::default()).await;
}

#[tokio::test]
async fn through_redis_streams() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let _serial = common::serial().await;
    one_trace_per_request(Redis::connect(&url).await).await;
}

#[tokio::test]
async fn through_nats_jetstream() {
    let Some(url) = common::nats_url() else {
        return;
    };
    let _serial = common::serial().await;
    one_trace_per_request(Nats::connect(&url).await).await;
}

#[tokio::test]
async fn through_the_outbox_and_nats_jetstream() {
    let Some(url) = common::nats_url() else {
        return;
    };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let nats = Nats::connect(&url).await;
            one_trace_per_request(Outboxed::new(db, nats).await).await;
        }
    })
    .await;
}

#[tokio::test]
async fn through_the_outbox() {
    each_backend(|db| async move {
        one_trace_per_request(Outboxed::new(db, Bus::default()).await).await;
    })
    .await;
}

#[tokio::test]
async fn through_the_outbox_and_redis_streams() {
    let Some(url) = common::redis_url() else {
        return;
    };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let redis = Redis::connect(&url).await;
            one_trace_per_request(Outboxed::new(db, redis).await).await;
        }
    })
    .await;
}

#[test]
fn inject_finds_the_current_span_when_the_layer_attaches_no_context() {
    // A layer with context activation off attaches nothing to the thread:
    // the current span's own context is the one to read.
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("earn-tests"))
        .with_context_activation(false);
    let subscriber = tracing_subscriber::registry().with(layer);
    let event = tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("request")
            .in_scope(|| earn::trace_context::inject(Event::new("order.created", &1).unwrap()))
    });
    let spans = exporter.get_finished_spans().unwrap();
    let way = "a layer without context activation";
    let request = one(&spans, way, |s| s.name == "request");
    let producer = one(&spans, way, |s| s.span_kind == SpanKind::Producer);
    assert_eq!(producer.parent_span_id, request.span_context.span_id());
    let parent = event.meta(TRACEPARENT).and_then(TraceParent::parse);
    assert_eq!(
        parent.map(|p| (p.trace_id(), p.span_id())),
        Some((
            request.span_context.trace_id(),
            producer.span_context.span_id()
        ))
    );
}
