//! Event bus speed: inline emit, emit with many non-matching subscriptions,
//! and publish → handled throughput against two bare channels:
//!
//! - `bare_tokio_mpsc`: one consumer taking up to 64 events at a time from
//!   a tokio mpsc channel, the fastest plain way to move events from a
//!   publisher to a handler, but not a worker pool: one slow event holds
//!   up the 63 taken with it;
//! - `bare_mpmc_two_consumers`: what the bus is built like, stripped of
//!   the bus: one bounded MPMC queue (async-channel) from which two
//!   consumers take one event at a time. The bus's own cost is the gap
//!   between `earn_publish` and this one.
//!
//! `cargo bench --bench events`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod support;

use support::poll_ready;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use earn::{Event, EventBus};

fn bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap()
}

fn emit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let event = Event::new("user.created", &serde_json::json!({ "id": 1 })).unwrap();
    let mut group = c.benchmark_group("emit");

    let one = bus();
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    one.subscribe_sync("user.created", 0, move |_: &Event| {
        counter.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    group.bench_function("one_handler", |b| {
        b.iter(|| black_box(poll_ready(one.emit(event.clone()))))
    });

    for noise in [0usize, 10_000] {
        let bus = bus();
        for i in 0..noise {
            // Exact names and wildcards that never match `user.created`.
            let pattern = if i % 2 == 0 {
                format!("other{i}.created")
            } else {
                format!("other{i}.*")
            };
            bus.subscribe_sync(&pattern, 0, |_: &Event| ()).unwrap();
        }
        for i in 0..10 {
            let pattern = if i % 2 == 0 { "user.created" } else { "user.*" };
            bus.subscribe_sync(pattern, i, |_: &Event| ()).unwrap();
        }
        group.bench_function(format!("ten_matching_with_{noise}_non_matching"), |b| {
            b.iter(|| black_box(poll_ready(bus.emit(event.clone()))))
        });
    }
    group.finish();
}

const EVENTS: u64 = 200_000;

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Distinct events, built before the clock starts: one shared Arc
    // cloned for every publish would measure refcount contention between
    // the publisher and the workers, not the bus.
    for distinct in [true, false] {
        throughput_of(c, &rt, distinct);
    }
}

/// With `distinct`, every published event is its own allocation (as in an
/// application); without, one event is cloned (one shared `Arc`, whose
/// reference count the publisher and the workers then contend on).
fn throughput_of(c: &mut Criterion, rt: &tokio::runtime::Runtime, distinct: bool) {
    let shared = Event::new("job.run", &serde_json::json!({ "id": 0 })).unwrap();
    let events = |n: u64| -> Vec<Event> {
        if distinct {
            (0..n)
                .map(|id| Event::new("job.run", &serde_json::json!({ "id": id })).unwrap())
                .collect()
        } else {
            std::iter::repeat_n(shared.clone(), n as usize).collect()
        }
    };
    let name = if distinct {
        "publish_to_handled_distinct_events"
    } else {
        "publish_to_handled_one_shared_event"
    };
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("earn_publish", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let bus = EventBus::builder()
                    .without_registered_handlers()
                    .workers(2)
                    .queue_capacity(8192)
                    .build()
                    .unwrap();
                let handled = Arc::new(AtomicU64::new(0));
                let counter = handled.clone();
                bus.subscribe_sync("job.run", 0, move |_: &Event| {
                    counter.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let batch = events(EVENTS);
                    let started = Instant::now();
                    for event in batch {
                        bus.publish(event).await.unwrap();
                    }
                    bus.wait_idle().await;
                    elapsed += started.elapsed();
                }
                assert_eq!(handled.load(Ordering::Relaxed), iters * EVENTS);
                elapsed
            })
        })
    });

    group.bench_function("bare_tokio_mpsc", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (sender, mut receiver) = tokio::sync::mpsc::channel::<Event>(8192);
                let handled = Arc::new(AtomicU64::new(0));
                let counter = handled.clone();
                let handler = move |_: &Event| {
                    counter.fetch_add(1, Ordering::Relaxed);
                };
                let consumer = tokio::spawn(async move {
                    let mut batch = Vec::with_capacity(64);
                    while receiver.recv_many(&mut batch, 64).await > 0 {
                        for event in batch.drain(..) {
                            handler(&event);
                        }
                    }
                });
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let batch = events(EVENTS);
                    let target = handled.load(Ordering::Relaxed) + EVENTS;
                    let started = Instant::now();
                    for event in batch {
                        sender.send(event).await.unwrap();
                    }
                    while handled.load(Ordering::Acquire) < target {
                        tokio::task::yield_now().await;
                    }
                    elapsed += started.elapsed();
                }
                drop(sender);
                consumer.await.unwrap();
                assert_eq!(handled.load(Ordering::Relaxed), iters * EVENTS);
                elapsed
            })
        })
    });
    group.bench_function("bare_mpmc_two_consumers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (sender, receiver) = async_channel::bounded::<Event>(8192);
                let handled = Arc::new(AtomicU64::new(0));
                let consumers: Vec<_> = (0..2)
                    .map(|_| {
                        let receiver = receiver.clone();
                        let counter = handled.clone();
                        let handler = move |_: &Event| {
                            counter.fetch_add(1, Ordering::Relaxed);
                        };
                        tokio::spawn(async move {
                            while let Ok(event) = receiver.recv().await {
                                handler(&event);
                            }
                        })
                    })
                    .collect();
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let batch = events(EVENTS);
                    let target = handled.load(Ordering::Relaxed) + EVENTS;
                    let started = Instant::now();
                    for event in batch {
                        sender.send(event).await.unwrap();
                    }
                    while handled.load(Ordering::Acquire) < target {
                        tokio::task::yield_now().await;
                    }
                    elapsed += started.elapsed();
                }
                drop(sender);
                for consumer in consumers {
                    consumer.await.unwrap();
                }
                assert_eq!(handled.load(Ordering::Relaxed), iters * EVENTS);
                elapsed
            })
        })
    });
    group.finish();
}

criterion_group!(benches, emit, throughput);
criterion_main!(benches);
