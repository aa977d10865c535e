//! Batch emission on the bus: `emit_all` runs the events side by side and
//! reports each; `publish_all` queues them all. (The transports'
//! `publish_all` runs in the conformance suite, on every transport.)
//!
//! Batch-consuming handlers: `#[event_handler(…, batch = N, linger_ms =
//! M)]` and `EventBus::subscribe_batch`. The partial-failure body runs on
//! the in-memory bus, Redis Streams and NATS through `each_transport`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use earn::nats::{NatsSettings, NatsStreams};
use earn::prelude::*;
use earn::redis::{RedisSettings, RedisStreams};
use earn::{DeadLetterFilter, DeadLetters, PageRequest, RetryPolicy};

fn new_bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap()
}

#[tokio::test]
async fn emit_all_runs_the_events_side_by_side_and_reports_each_in_order() {
    let bus = new_bus();
    // Each handler waits until all three events are being handled: one at
    // a time, this would never finish.
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    bus.subscribe("metric.*", 0, {
        let barrier = barrier.clone();
        move |event: Event| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                if event.payload::<i32>()? == 1 {
                    return Err(HandlerError::msg("reading 1 is bad"));
                }
                Ok(())
            }
        }
    })
    .unwrap();
    let readings: Vec<Event> = (0..3)
        .map(|i| Event::new("metric.cpu", &i).unwrap())
        .collect();
    let ids: Vec<_> = readings.iter().map(Event::id).collect();
    let reports = tokio::time::timeout(Duration::from_secs(5), bus.emit_all(readings))
        .await
        .expect("the three events ran side by side");
    assert_eq!(
        reports.iter().map(|r| r.event_id()).collect::<Vec<_>>(),
        ids
    );
    assert!(reports[0].is_ok());
    assert!(
        !reports[1].is_ok(),
        "the failure is reported with its event"
    );
    assert!(reports[2].is_ok());
    assert!(bus.emit_all(Vec::new()).await.is_empty());
}

#[tokio::test]
async fn publish_all_queues_every_event_for_the_workers() {
    let bus = new_bus();
    let seen = Arc::new(AtomicUsize::new(0));
    bus.subscribe("metric.*", 0, {
        let seen = seen.clone();
        move |_: Event| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    let readings: Vec<Event> = (0..500)
        .map(|i| Event::new("metric.cpu", &i).unwrap())
        .collect();
    bus.publish_all(readings).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 500);
}

// ------------------------------------------------------ batch handlers

/// The sizes of the batches `record_batch` was called with.
static BATCHES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

#[event_handler("batch.reading", batch = 100, linger_ms = 50)]
async fn record_batch(events: Vec<Event>) -> Result<(), BatchError> {
    BATCHES.lock().unwrap().push(events.len());
    Ok(())
}

#[tokio::test]
async fn a_batch_handler_gets_full_batches_then_the_rest_after_its_linger() {
    let bus = EventBus::builder().workers(2).build().unwrap();
    let readings: Vec<Event> = (0..250)
        .map(|i| Event::new("batch.reading", &i).unwrap())
        .collect();
    bus.publish_all(readings).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .expect("every event handled");
    assert_eq!(*BATCHES.lock().unwrap(), [100, 100, 50]);
    let stats = bus.handler_stats();
    assert_eq!(
        (stats.succeeded, stats.failed),
        (250, 0),
        "counted per event"
    );
}

#[derive(serde::Deserialize)]
struct Reading {
    celsius: f64,
}

static STORED: Mutex<Vec<f64>> = Mutex::new(Vec::new());

/// Takes payloads: one that does not deserialize fails alone.
#[event_handler("batch.celsius", batch = 10, linger_ms = 20)]
fn store_readings(readings: Vec<Reading>) -> Result<(), BatchError> {
    let mut failed = BatchError::none();
    let mut stored = STORED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (i, reading) in readings.iter().enumerate() {
        if reading.celsius < -273.15 {
            failed = failed.at(i, HandlerError::permanent("below absolute zero"));
        } else {
            stored.push(reading.celsius);
        }
    }
    failed.into_result()
}

#[tokio::test]
async fn a_batch_of_payloads_fails_only_the_events_it_names_and_those_that_do_not_read() {
    let bus = EventBus::builder().build().unwrap();
    let payloads = [
        serde_json::json!({"celsius": 21.5}),
        serde_json::json!({"kelvin": 3}),
        serde_json::json!({"celsius": -300.0}),
        serde_json::json!({"celsius": 19.0}),
    ];
    let events: Vec<Event> = payloads
        .iter()
        .map(|p| Event::new("batch.celsius", p).unwrap())
        .collect();
    let reports = bus.emit_all(events.clone()).await;
    let failures: Vec<String> = reports
        .iter()
        .map(|report| {
            report
                .failed()
                .iter()
                .map(|(_, failure)| failure.to_string())
                .collect::<Vec<_>>()
                .join(";")
        })
        .collect();
    assert_eq!(failures[0], "");
    assert!(failures[1].contains("malformed payload"), "{}", failures[1]);
    assert!(
        failures[2].contains("below absolute zero"),
        "{}",
        failures[2]
    );
    assert!(failures[2].contains("permanently"), "{}", failures[2]);
    assert_eq!(failures[3], "");
    assert_eq!(*STORED.lock().unwrap(), [21.5, 19.0]);
}

#[tokio::test]
async fn a_batch_that_panics_fails_each_event_and_the_bus_carries_on() {
    let bus = new_bus();
    bus.subscribe_batch(
        "boom.*",
        0,
        5,
        Duration::from_millis(10),
        |events: Vec<Event>| async move {
            if events.len() == 3 {
                panic!("three is a crowd");
            }
        },
    )
    .unwrap();
    let events: Vec<Event> = (0..3).map(|i| Event::new("boom.x", &i).unwrap()).collect();
    let reports = bus.emit_all(events).await;
    for report in &reports {
        let [(_, failure)] = report.failed() else {
            panic!("{report:?}")
        };
        assert!(
            failure.to_string().contains("three is a crowd"),
            "{failure}"
        );
    }
    let reports = bus.emit_all(vec![Event::new("boom.y", &1).unwrap()]).await;
    assert!(reports[0].is_ok());
}

/// A transport feeding a bus, as the batch body sees it.
enum Transport {
    Memory,
    Redis(String),
    Nats(String),
}

enum Consumer {
    None,
    Redis(earn::redis::Consumer),
    Nats(earn::nats::Consumer),
}

async fn each_transport<F, Fut>(body: F)
where
    F: Fn(Transport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _serial = common::serial().await;
    let mut all = vec![Transport::Memory];
    all.extend(common::redis_url().map(Transport::Redis));
    all.extend(common::nats_url().map(Transport::Nats));
    for transport in all {
        body(transport).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_partly_failed_batch_only_the_failed_events_are_retried() {
    each_transport(|transport| async move {
        let bus = EventBus::builder()
            .without_registered_handlers()
            .workers(2)
            .retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                jitter: 0.0,
            })
            .build()
            .unwrap();
        // Every call, by event: (payload, attempt).
        let calls = Arc::new(Mutex::new(Vec::<(i64, u32)>::new()));
        let seen = calls.clone();
        bus.subscribe_batch(
            "job.*",
            0,
            10,
            Duration::from_millis(30),
            move |events: Vec<Event>| {
                let seen = seen.clone();
                async move {
                    let mut failed = BatchError::none();
                    for (i, event) in events.iter().enumerate() {
                        let n: i64 = event.payload()?;
                        seen.lock().unwrap().push((n, event.attempt()));
                        if n % 5 == 0 && event.attempt() == 1 {
                            failed = failed.at(i, HandlerError::msg(format!("job {n} hit a lock")));
                        } else if n == 13 {
                            failed = failed.at(i, HandlerError::permanent("job 13 is cursed"));
                        }
                    }
                    failed.into_result()
                }
            },
        )
        .unwrap();
        let events: Vec<Event> = (0..30)
            .map(|n| Event::new("job.run", &n).unwrap())
            .collect();
        let stream = format!("earn-batch-{}", uuid::Uuid::new_v4().simple());
        let (name, dead, consumer): (&str, Box<dyn DeadLetters>, Consumer) = match &transport {
            Transport::Memory => {
                bus.publish_all(events).await.unwrap();
                ("memory", Box::new(bus.dead_letter_source()), Consumer::None)
            }
            Transport::Redis(url) => {
                let settings = RedisSettings::new(stream.as_str(), "jobs")
                    .block(Duration::from_millis(50))
                    // A failed entry's next delivery waits this long.
                    .claim_idle(Duration::from_millis(500))
                    .max_deliveries(3);
                let streams = RedisStreams::connect(url, settings).await.unwrap();
                streams.publish_all(&events).await.unwrap();
                let consumer = streams.consume(bus.clone()).await.unwrap();
                (
                    "redis streams",
                    Box::new(streams.dead_letter_source()),
                    Consumer::Redis(consumer),
                )
            }
            Transport::Nats(url) => {
                let settings = NatsSettings::new(stream.as_str(), "jobs")
                    .max_deliveries(3)
                    .retry_backoff(earn::nats::Backoff::new(
                        Duration::from_millis(10),
                        Duration::from_millis(20),
                    ));
                let streams = NatsStreams::connect(url, settings).await.unwrap();
                streams.publish_all(&events).await.unwrap();
                let consumer = streams.consume(bus.clone()).await.unwrap();
                (
                    "nats jetstream",
                    Box::new(streams.dead_letter_source()),
                    Consumer::Nats(consumer),
                )
            }
        };
        eprintln!("--- on {name}");
        let all = DeadLetterFilter::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let called = calls.lock().unwrap().len();
            let lost = dead.count(&all).await.unwrap();
            if called >= 30 + 6 && lost >= 1 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "on {name}: {called} calls and {lost} dead letters after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Nothing more comes: no event is retried again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut by_event: HashMap<i64, Vec<u32>> = HashMap::new();
        for (n, attempt) in calls.lock().unwrap().iter() {
            by_event.entry(*n).or_default().push(*attempt);
        }
        for n in 0..30 {
            let attempts = &by_event[&n];
            let expected: &[u32] = if n % 5 == 0 { &[1, 2] } else { &[1] };
            assert_eq!(
                attempts, expected,
                "on {name}: job {n} was called at attempts {attempts:?}"
            );
        }
        let letters = dead.list(&all, PageRequest::first(10)).await.unwrap();
        assert_eq!(letters.len(), 1, "on {name}: {letters:?}");
        assert!(
            letters[0].reason.contains("job 13 is cursed"),
            "on {name}: {}",
            letters[0].reason
        );
        match consumer {
            Consumer::Redis(consumer) => {
                consumer.shutdown(Duration::from_secs(5)).await;
            }
            Consumer::Nats(consumer) => {
                consumer.shutdown(Duration::from_secs(5)).await;
            }
            Consumer::None => {}
        }
        if let Transport::Nats(url) = &transport {
            common::delete_nats_streams(url, &stream).await;
        }
        bus.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}
