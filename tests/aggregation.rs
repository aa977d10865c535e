//! Aggregation windows (Nexus's EventAggregator): events collected by key,
//! closed by a debounce, a longest window or a count, one summary each;
//! and a window that survives its process: a consumer killed (SIGKILL)
//! with a window open leaves its events unacknowledged on Redis Streams
//! and NATS, and the next consumer's window sums them all up. The killed
//! consumer is this test binary run again in the `aggregator` role.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earn::aggregate::Aggregator;
use earn::nats::{NatsSettings, NatsStreams};
use earn::redis::{RedisSettings, RedisStreams};
use earn::{Event, EventBus};

fn bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap()
}

fn activity(user: i64, page: &str) -> Event {
    Event::new(
        "user.activity.view",
        &serde_json::json!({ "user_id": user, "page": page }),
    )
    .unwrap()
}

/// Records every summary the bus publishes.
fn summaries(bus: &EventBus, name: &str) -> Arc<Mutex<Vec<Event>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = seen.clone();
    bus.subscribe_sync(name, 0, move |event: &Event| {
        into.lock().unwrap().push(event.clone());
    })
    .unwrap();
    seen
}

async fn wait_for_count(seen: &Arc<Mutex<Vec<Event>>>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "{count} summaries not seen in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_debounced_window_per_key_sums_up_its_events_once() {
    let bus = bus();
    // The seeds' pattern matches the summary's name too: summaries are
    // never collected.
    Aggregator::new("user.activity.*", "user.activity.summary")
        .unwrap()
        .key_field("user_id")
        .debounce(Duration::from_millis(80))
        .summarize(|user, events| {
            let pages: Vec<&str> = events
                .iter()
                .filter_map(|e| e.payload_json()["page"].as_str())
                .collect();
            serde_json::json!({ "user_id": user, "pages": pages })
        })
        .subscribe(&bus)
        .unwrap();
    let seen = summaries(&bus, "user.activity.summary");
    let events = [
        activity(7, "/"),
        activity(8, "/docs"),
        activity(7, "/pricing"),
        activity(7, "/signup"),
        activity(8, "/docs/install"),
    ];
    for event in &events {
        bus.publish(event.clone()).await.unwrap();
    }
    wait_for_count(&seen, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    bus.wait_idle().await;
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one summary per user, and none of summaries");
    seen.sort_by_key(|s| s.meta("earn-window-key").map(str::to_owned));
    assert_eq!(
        seen[0].payload_json()["pages"],
        serde_json::json!(["/", "/pricing", "/signup"])
    );
    assert_eq!(seen[0].meta("earn-window-count"), Some("3"));
    assert_eq!(
        seen[1].payload_json()["pages"],
        serde_json::json!(["/docs", "/docs/install"])
    );
    assert_eq!(seen[0].correlation_id(), events[0].correlation_id());
    assert_eq!(seen[0].causation_id(), Some(events[0].id()));
}

#[tokio::test]
async fn a_window_closes_at_its_longest_or_when_full_however_busy_the_key() {
    let bus = bus();
    Aggregator::new("tick.*", "tick.summary")
        .unwrap()
        .debounce(Duration::from_millis(100))
        .window(Duration::from_millis(150))
        .subscribe(&bus)
        .unwrap();
    Aggregator::new("burst.*", "burst.summary")
        .unwrap()
        .max_events(4)
        .window(Duration::from_secs(30))
        .subscribe(&bus)
        .unwrap();
    let ticks = summaries(&bus, "tick.summary");
    let bursts = summaries(&bus, "burst.summary");
    // A tick every 20 ms never lets the debounce close the window: the
    // longest window does.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(400) {
        bus.publish(Event::new("tick.second", &1).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..8 {
        bus.publish(Event::new("burst.x", &i).unwrap())
            .await
            .unwrap();
    }
    wait_for_count(&bursts, 2).await;
    assert!(
        bursts
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.meta("earn-window-count") == Some("4"))
    );
    wait_for_count(&ticks, 2).await;
    let counts: Vec<u64> = ticks
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.payload_json()["count"].as_u64().unwrap())
        .collect();
    assert!(
        counts[0] <= 9,
        "the first window closed at its longest: {counts:?}"
    );
}

// ------------------------------------------------ across a SIGKILL

const ROLE: &str = "EARN_AGGREGATION_ROLE";
const TRANSPORT: &str = "EARN_AGGREGATION_TRANSPORT";
const STREAM: &str = "EARN_AGGREGATION_STREAM";
const QUIET_MS: &str = "EARN_AGGREGATION_QUIET_MS";
const EVENTS: usize = 5;

/// A consumer with an aggregator; prints `held <id>` for each event its
/// window takes, and `summary <json>` for each summary.
#[tokio::test]
async fn aggregator_role() {
    if std::env::var(ROLE).as_deref() != Ok("aggregator") {
        return; // only in the child process
    }
    let transport = std::env::var(TRANSPORT).unwrap();
    let stream = std::env::var(STREAM).unwrap();
    let quiet: u64 = std::env::var(QUIET_MS).unwrap().parse().unwrap();
    let bus = bus();
    bus.subscribe_sync("cart.*", 1, |event: &Event| {
        println!("held {}", event.id());
    })
    .unwrap();
    bus.subscribe_sync("cart.summary", 1, |event: &Event| {
        println!("summary {}", event.payload_json());
    })
    .unwrap();
    Aggregator::new("cart.item_added", "cart.summary")
        .unwrap()
        .key_field("cart")
        .debounce(Duration::from_millis(quiet))
        .window(Duration::from_secs(120))
        .subscribe(&bus)
        .unwrap();
    let url = if transport == "redis" {
        common::redis_url().unwrap()
    } else {
        common::nats_url().unwrap()
    };
    let _consumer: Box<dyn std::any::Any> = if transport == "redis" {
        let settings = RedisSettings::new(stream.as_str(), "carts")
            .consumer(format!("aggregator-{}", std::process::id()))
            .block(Duration::from_millis(50))
            // What a killed consumer held is claimed this soon.
            .claim_idle(Duration::from_millis(500));
        let streams = RedisStreams::connect(&url, settings).await.unwrap();
        Box::new(streams.consume(bus.clone()).await.unwrap())
    } else {
        let settings = NatsSettings::new(stream.as_str(), "carts")
            .consumer(format!("aggregator-{}", std::process::id()))
            .ack_wait(Duration::from_secs(1));
        let streams = NatsStreams::connect(&url, settings).await.unwrap();
        Box::new(streams.consume(bus.clone()).await.unwrap())
    };
    std::future::pending::<()>().await;
}

struct Aggregating {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Aggregating {
    fn start(transport: &str, stream: &str, quiet: Duration) -> Aggregating {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "aggregator_role",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ROLE, "aggregator")
            .env(TRANSPORT, transport)
            .env(STREAM, stream)
            .env(QUIET_MS, quiet.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Aggregating { child, lines }
    }

    /// What follows `prefix` on the next line holding it (the test
    /// harness may have written `test aggregator_role ... ` before it).
    fn next(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].to_owned();
            }
        }
        panic!("the aggregator ended before printing `{prefix}`");
    }
}

impl Drop for Aggregating {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_open_when_its_consumer_is_killed_is_summed_up_by_the_next() {
    let _serial = common::serial().await;
    let mut transports = Vec::new();
    transports.extend(common::redis_url().map(|url| ("redis", url)));
    transports.extend(common::nats_url().map(|url| ("nats", url)));
    for (transport, url) in transports {
        eprintln!("--- on {transport}");
        let stream = format!("earn-aggregation-{}", uuid::Uuid::new_v4().simple());
        let events: Vec<Event> = (0..EVENTS)
            .map(|i| {
                Event::new(
                    "cart.item_added",
                    &serde_json::json!({ "cart": 42, "item": i }),
                )
                .unwrap()
            })
            .collect();
        // The first consumer's window would stay open a minute.
        let mut first = Aggregating::start(transport, &stream, Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(500)).await;
        if transport == "redis" {
            let streams = RedisStreams::connect(&url, RedisSettings::new(stream.as_str(), "carts"))
                .await
                .unwrap();
            streams.publish_all(&events).await.unwrap();
        } else {
            let streams = NatsStreams::connect(&url, NatsSettings::new(stream.as_str(), "carts"))
                .await
                .unwrap();
            streams.publish_all(&events).await.unwrap();
        }
        let reader = std::thread::spawn(move || {
            for _ in 0..EVENTS {
                first.next("held ");
            }
            first
        });
        let first = reader.join().unwrap();
        drop(first); // SIGKILL, its window open

        let second = Aggregating::start(transport, &stream, Duration::from_millis(200));
        let summary = std::thread::spawn(move || {
            let mut second = second;
            second.next("summary ")
        })
        .join()
        .unwrap();
        let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(summary["key"], "42", "on {transport}: {summary}");
        let mut ids: Vec<String> = serde_json::from_value(summary["events"].clone()).unwrap();
        ids.sort();
        let mut expected: Vec<String> = events.iter().map(|e| e.id().to_string()).collect();
        expected.sort();
        assert_eq!(
            ids, expected,
            "on {transport}: every event of the killed window, once"
        );
        if transport == "nats" {
            common::delete_nats_streams(&url, &stream).await;
        }
    }
}
