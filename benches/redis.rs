//! Redis Streams speed, against a Redis at `EARN_REDIS_URL` (default
//! `redis://127.0.0.1:6379`):
//!
//! - `redis_publish/raw_pipelined_xadd`: one pipeline of XADDs of the same
//!   serialized events, with the `redis` crate directly: the ceiling;
//! - `redis_publish/earn_publish`: `RedisStreams::publish` of each event,
//!   called concurrently (they pipeline on one connection);
//! - `redis_end_to_end/two_consumers`: publish → handled, two consumers of
//!   one group, each with its own bus;
//! - `redis_publish_all`: 1,000 events with `publish_all` against 1,000
//!   `publish` calls awaited one by one; the speed-up, measured
//!   interleaved, is printed.
//!
//! `cargo bench --bench redis --features redis`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use earn::redis::{RedisSettings, RedisStreams};
use earn::{Event, EventBus};
use futures_util::future::join_all;

const BATCH: usize = 10_000;

fn url() -> String {
    std::env::var("EARN_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
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

/// A stream of its own (`earn:bench:{what}:…`), a raw connection and the
/// earn transport on it.
fn connect(
    rt: &tokio::runtime::Runtime,
    what: &str,
) -> (String, redis::aio::MultiplexedConnection, RedisStreams) {
    let stream = format!("earn:bench:{what}:{}", uuid::Uuid::new_v4());
    let client = redis::Client::open(url()).unwrap();
    let raw = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("Redis at EARN_REDIS_URL");
    let streams = rt
        .block_on(RedisStreams::connect(
            &url(),
            RedisSettings::new(stream.as_str(), "bench"),
        ))
        .unwrap();
    (stream, raw, streams)
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let (stream, mut raw, streams) = connect(&rt, "publish");
    let batch = events(BATCH);
    let payloads: Vec<Vec<u8>> = batch
        .iter()
        .map(|e| serde_json::to_vec(e.data()).unwrap())
        .collect();

    let mut group = c.benchmark_group("redis_publish");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("raw_pipelined_xadd", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut pipe = redis::pipe();
                    for (event, json) in batch.iter().zip(&payloads) {
                        pipe.cmd("XADD")
                            .arg(&stream)
                            .arg("*")
                            .arg("v")
                            .arg("1")
                            .arg("name")
                            .arg(event.name().as_str())
                            .arg("event")
                            .arg(json.as_slice());
                    }
                    let start = Instant::now();
                    let _: Vec<String> = pipe.query_async(&mut raw).await.unwrap();
                    total += start.elapsed();
                    let _: () = redis::cmd("DEL")
                        .arg(&stream)
                        .query_async(&mut raw)
                        .await
                        .unwrap();
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
                    let start = Instant::now();
                    for result in join_all(batch.iter().map(|event| streams.publish(event))).await {
                        result.unwrap();
                    }
                    total += start.elapsed();
                    let _: () = redis::cmd("DEL")
                        .arg(&stream)
                        .query_async(&mut raw)
                        .await
                        .unwrap();
                }
                total
            })
        })
    });
    group.finish();
}

fn end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let stream = format!("earn:bench:e2e:{}", uuid::Uuid::new_v4());
    let handled = Arc::new(AtomicU64::new(0));
    let (publisher, consumers) = rt.block_on(async {
        let settings = |consumer: &str| {
            RedisSettings::new(stream.as_str(), "bench")
                .consumer(consumer)
                .batch(500)
                .max_len(200_000)
        };
        let publisher = RedisStreams::connect(&url(), settings("publisher"))
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
            let streams = RedisStreams::connect(&url(), settings(name)).await.unwrap();
            consumers.push(streams.consume(bus).await.unwrap());
        }
        (publisher, consumers)
    });
    let batch = events(BATCH);

    let mut group = c.benchmark_group("redis_end_to_end");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("two_consumers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
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
    });
}

fn publish_all(c: &mut Criterion) {
    const EVENTS: usize = 1_000;
    let rt = runtime();
    let (stream, raw, streams) = connect(&rt, "publish_all");
    let batch = events(EVENTS);
    // One round: the time of `publish_all` (or of the awaited calls),
    // then the stream emptied for the next.
    let round = |together: bool| {
        rt.block_on(async {
            let start = Instant::now();
            if together {
                streams.publish_all(&batch).await.unwrap();
            } else {
                for event in &batch {
                    streams.publish(event).await.unwrap();
                }
            }
            let elapsed = start.elapsed();
            let _: () = redis::cmd("DEL")
                .arg(&stream)
                .query_async(&mut raw.clone())
                .await
                .unwrap();
            elapsed
        })
    };
    let mut group = c.benchmark_group("redis_publish_all");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    group.bench_function("publish_all_1000", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| round(true)).sum())
    });
    group.bench_function("publish_awaited_1000", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| round(false)).sum())
    });
    group.finish();
    let mut speedups: Vec<f64> = (0..30)
        .map(|_| round(false).as_secs_f64() / round(true).as_secs_f64())
        .collect();
    speedups.sort_by(f64::total_cmp);
    println!(
        "redis publish_all of {EVENTS}: {:.1}x faster than {EVENTS} awaited publish calls \
         (median of 30 interleaved pairs; p10 {:.1}x, p90 {:.1}x)",
        speedups[15], speedups[3], speedups[26]
    );
}

criterion_group!(benches, publish, end_to_end, publish_all);
criterion_main!(benches);
