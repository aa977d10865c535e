//! NATS JetStream speed, against a NATS at `EARN_NATS_URL` (default
//! `nats://127.0.0.1:4222`):
//!
//! - `nats_publish/raw_async_publish`: `async-nats`'s JetStream publish of
//!   the same serialized events with the same headers (message id,
//!   version), sent without waiting and acknowledged in a window of 4,096:
//!   the ceiling;
//! - `nats_publish/earn_publish`: `NatsStreams::publish` of each event,
//!   called concurrently (they share one connection);
//! - `nats_end_to_end/two_consumers`: publish → handled, two consumers of
//!   one group, each with its own connection and bus;
//! - `nats_end_to_end/raw_two_consumers`: the same with async-nats alone
//!   (raw publishes, two raw pull consumers acknowledging each message
//!   unread): the ceiling on this machine and server.
//!
//! Each iteration publishes fresh events: the stream drops an event id it
//! has seen within its duplicate window.
//!
//! `cargo bench --bench nats --features nats`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use earn::nats::{NatsSettings, NatsStreams};
use earn::{Event, EventBus};
use std::future::IntoFuture as _;

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use futures_util::stream::FuturesOrdered;

const BATCH: usize = 10_000;
/// Raw publishes awaiting their acknowledgement at once.
const WINDOW: usize = 4_096;

fn url() -> String {
    std::env::var("EARN_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(
                "order.placed",
                &serde_json::json!({ "order": i, "item": "book" }),
            )
            .unwrap()
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `n` events as async-nats messages, with earn's headers.
fn raw_messages(n: usize) -> Vec<PublishMessage> {
    events(n)
        .iter()
        .map(|event| {
            let json = serde_json::to_vec(event.data()).unwrap();
            PublishMessage::build()
                .payload(json.into())
                .message_id(event.id().to_string())
                .header("Earn-Version", "1")
        })
        .collect()
}

/// Publishes `messages` with async-nats alone, acknowledged in a window
/// below the context's 5,000 acknowledgements in flight (a publish past it
/// waits for a permit).
async fn raw_publish(
    js: &async_nats::jetstream::Context,
    subject: &str,
    messages: Vec<PublishMessage>,
) {
    let mut acks: FuturesOrdered<_> = FuturesOrdered::new();
    for message in messages {
        if acks.len() == WINDOW {
            let ack: Result<_, _> = acks.next().await.unwrap();
            ack.unwrap();
        }
        let ack = js.send_publish(subject.to_owned(), message).await.unwrap();
        acks.push_back(ack.into_future());
    }
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let stream = format!("earn-bench-publish-{}", uuid::Uuid::new_v4().simple());
    let streams = rt
        .block_on(NatsStreams::connect(
            &url(),
            NatsSettings::new(stream.as_str(), "bench"),
        ))
        .expect("NATS at EARN_NATS_URL");
    // The JetStream context starts a task: inside the runtime.
    let js = {
        let _runtime = rt.enter();
        async_nats::jetstream::new(streams.client().clone())
    };
    let subject = format!("{stream}.order.placed");

    let mut group = c.benchmark_group("nats_publish");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("raw_async_publish", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let messages = raw_messages(BATCH);
                    let start = Instant::now();
                    raw_publish(&js, &subject, messages).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.bench_function("earn_publish", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let batch = events(BATCH);
                    let start = Instant::now();
                    for result in join_all(batch.iter().map(|event| streams.publish(event))).await {
                        result.unwrap();
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    rt.block_on(streams.delete_streams()).unwrap();
}

fn end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let stream = format!("earn-bench-e2e-{}", uuid::Uuid::new_v4().simple());
    let handled = Arc::new(AtomicU64::new(0));
    let (publisher, consumers) = rt.block_on(async {
        let settings = |consumer: &str| {
            NatsSettings::new(stream.as_str(), "bench")
                .consumer(consumer)
                .batch(500)
        };
        let publisher = NatsStreams::connect(&url(), settings("publisher"))
            .await
            .unwrap();
        let mut consumers = Vec::new();
        for name in ["c1", "c2"] {
            let bus = EventBus::builder()
                .without_registered_handlers()
                .build()
                .unwrap();
            let counter = handled.clone();
            bus.subscribe_sync("order.*", 0, move |_: &Event| {
                counter.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
            let streams = NatsStreams::connect(&url(), settings(name)).await.unwrap();
            consumers.push(streams.consume(bus).await.unwrap());
        }
        (publisher, consumers)
    });

    let mut group = c.benchmark_group("nats_end_to_end");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("two_consumers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let batch = events(BATCH);
                    let target = handled.load(Ordering::Relaxed) + BATCH as u64;
                    let start = Instant::now();
                    for result in join_all(batch.iter().map(|event| publisher.publish(event))).await
                    {
                        result.unwrap();
                    }
                    while handled.load(Ordering::Relaxed) < target {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    // The ceiling: the same publishes with async-nats alone (built before
    // the clock starts, acknowledged in a window), two raw pull consumers
    // of one durable consumer acknowledging each message unread.
    let raw_stream = format!("earn-bench-raw-{}", uuid::Uuid::new_v4().simple());
    let raw_handled = Arc::new(AtomicU64::new(0));
    let (raw_js, raw_tasks) = rt.block_on(async {
        let client = async_nats::connect(url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js
            .create_stream(stream::Config {
                name: raw_stream.clone(),
                subjects: vec![format!("{raw_stream}.>")],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
        stream
            .create_consumer(pull::Config {
                durable_name: Some("bench".into()),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: -1,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let client = async_nats::connect(url()).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let consumer: pull::Stream = js
                .get_stream(&raw_stream)
                .await
                .unwrap()
                .get_consumer::<pull::Config>("bench")
                .await
                .unwrap()
                .stream()
                .max_messages_per_batch(500)
                .messages()
                .await
                .unwrap();
            let counter = raw_handled.clone();
            tasks.push(tokio::spawn(async move {
                let mut messages = consumer;
                while let Some(Ok(message)) = messages.next().await {
                    message.ack().await.unwrap();
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        (js, tasks)
    });
    let raw_subject = format!("{raw_stream}.order.placed");
    group.bench_function("raw_two_consumers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let messages = raw_messages(BATCH);
                    let target = raw_handled.load(Ordering::Relaxed) + BATCH as u64;
                    let start = Instant::now();
                    raw_publish(&raw_js, &raw_subject, messages).await;
                    while raw_handled.load(Ordering::Relaxed) < target {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    for task in raw_tasks {
        task.abort();
    }
    rt.block_on(async {
        let _ = raw_js.delete_stream(&raw_stream).await;
        for consumer in consumers {
            consumer.shutdown(Duration::from_secs(5)).await;
        }
        publisher.delete_streams().await.unwrap();
    });
}

criterion_group!(benches, publish, end_to_end);
criterion_main!(benches);
