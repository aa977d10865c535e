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
//!   one group, each with its own connection and bus.
//!
//! Each iteration publishes fresh events: the stream drops an event id it
//! has seen within its duplicate window.
//!
//! `cargo bench --bench nats --features nats`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
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

/// Deletes the bench's streams.
async fn delete(streams: &NatsStreams) {
    let js = async_nats::jetstream::new(streams.client().clone());
    let name = streams.settings().get_stream();
    for suffix in ["", "_dead", "_delayed", "_done"] {
        let _ = js.delete_stream(format!("{name}{suffix}")).await;
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
                    let messages: Vec<PublishMessage> = events(BATCH)
                        .iter()
                        .map(|event| {
                            let json = serde_json::to_vec(event.data()).unwrap();
                            PublishMessage::build()
                                .payload(json.into())
                                .message_id(event.id().to_string())
                                .header("Earn-Version", "1")
                        })
                        .collect();
                    let start = Instant::now();
                    // A window below the context's 5,000 acknowledgements
                    // in flight (a publish past it waits for a permit).
                    let mut acks: FuturesOrdered<_> = FuturesOrdered::new();
                    for message in messages {
                        if acks.len() == WINDOW {
                            let ack: Result<_, _> = acks.next().await.unwrap();
                            ack.unwrap();
                        }
                        let ack = js.send_publish(subject.clone(), message).await.unwrap();
                        acks.push_back(ack.into_future());
                    }
                    while let Some(ack) = acks.next().await {
                        ack.unwrap();
                    }
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
    rt.block_on(delete(&streams));
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
    group.finish();
    rt.block_on(async {
        for consumer in consumers {
            consumer.shutdown(Duration::from_secs(5)).await;
        }
        delete(&publisher).await;
    });
}

criterion_group!(benches, publish, end_to_end);
criterion_main!(benches);
