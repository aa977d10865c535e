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

    // Interleaved with the bare tokio channel, one batch apart, so that
    // the printed ratio is not the machine's drift between two runs.
    let ratios = std::sync::Mutex::new(Vec::new());
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
                let mut baseline = TokioBaseline::start();
                let (mut earn, mut bare) = (Duration::ZERO, Duration::ZERO);
                for _ in 0..iters {
                    bare += baseline.run(events(EVENTS)).await;
                    let batch = events(EVENTS);
                    let started = Instant::now();
                    for event in batch {
                        bus.publish(event).await.unwrap();
                    }
                    bus.wait_idle().await;
                    earn += started.elapsed();
                }
                baseline.stop().await;
                assert_eq!(handled.load(Ordering::Relaxed), iters * EVENTS);
                // Throughput ratio: the bare channel's time over earn's.
                ratios
                    .lock()
                    .unwrap()
                    .push(bare.as_secs_f64() / earn.as_secs_f64());
                earn
            })
        })
    });
    report_throughput(name, &ratios);

    group.bench_function("bare_tokio_mpsc", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut baseline = TokioBaseline::start();
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    elapsed += baseline.run(events(EVENTS)).await;
                }
                baseline.stop().await;
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

/// The baseline: a bare bounded tokio channel feeding the same handler,
/// one consumer taking up to 64 events per wake-up.
struct TokioBaseline {
    sender: tokio::sync::mpsc::Sender<Event>,
    handled: Arc<AtomicU64>,
    consumer: tokio::task::JoinHandle<()>,
}

impl TokioBaseline {
    fn start() -> TokioBaseline {
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
        TokioBaseline {
            sender,
            handled,
            consumer,
        }
    }

    /// Sends `batch` and waits until all of it was handled.
    async fn run(&mut self, batch: Vec<Event>) -> Duration {
        let target = self.handled.load(Ordering::Relaxed) + batch.len() as u64;
        let started = Instant::now();
        for event in batch {
            self.sender.send(event).await.unwrap();
        }
        while self.handled.load(Ordering::Acquire) < target {
            tokio::task::yield_now().await;
        }
        started.elapsed()
    }

    async fn stop(self) {
        drop(self.sender);
        self.consumer.await.unwrap();
    }
}

/// Prints the median and spread of the paired throughput ratios.
fn report_throughput(name: &str, ratios: &std::sync::Mutex<Vec<f64>>) {
    let mut ratios = std::mem::take(&mut *ratios.lock().unwrap());
    ratios.sort_by(f64::total_cmp);
    if let (Some(low), Some(high)) = (ratios.first(), ratios.last()) {
        println!(
            "{name}: earn's throughput / the bare tokio channel's = {:.3} (median of {} paired \
             samples; lowest {low:.3}, highest {high:.3})",
            ratios[ratios.len() / 2],
            ratios.len()
        );
    }
}

criterion_group!(benches, emit, throughput);
criterion_main!(benches);
