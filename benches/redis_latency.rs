//! Commit → handler latency through the transactional outbox and Redis
//! Streams, at a steady 1,000 events/s for 5 s: each event is committed in
//! its own SQLite transaction with the outbox on, handed to Redis after the
//! commit, read by a consumer of a group and handled; the handler records
//! how long after the commit started it ran. Prints p50, p90, p99 and max.
//!
//! `cargo bench --bench redis_latency --features redis`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earn::redis::{RedisSettings, RedisStreams};
use earn::{Db, Event, EventBus, Outbox};

const RATE: u64 = 1_000;
const SECONDS: u64 = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo bench` asks every bench to list itself
    }
    let url = std::env::var("EARN_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let stream = format!("earn:bench:latency:{}", uuid::Uuid::new_v4());
    let settings = |consumer: &str| {
        RedisSettings::new(stream.as_str(), "latency")
            .consumer(consumer)
            .block(Duration::from_secs(1))
    };

    let started: Arc<Mutex<HashMap<uuid::Uuid, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let bus = EventBus::builder().without_registered_handlers().build()?;
    {
        let started = started.clone();
        let latencies = latencies.clone();
        bus.subscribe_sync("tick", 0, move |event: &Event| {
            let at = started.lock().unwrap().remove(&event.id());
            if let Some(at) = at {
                latencies.lock().unwrap().push(at.elapsed());
            }
        })?;
    }
    let consumer = RedisStreams::connect(&url, settings("worker"))
        .await?
        .consume(bus)
        .await?;

    let producer = RedisStreams::connect(&url, settings("producer")).await?;
    let db = Db::connect("sqlite::memory:")
        .await?
        .with_outbox(Outbox::default())
        .with_outbox_sink(producer);
    db.install_outbox().await?;

    let total = RATE * SECONDS;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total {
        ticker.tick().await;
        let event = Event::new("tick", &n)?;
        started.lock().unwrap().insert(event.id(), Instant::now());
        let mut tx = db.begin().await?;
        tx.raise(event)?;
        tx.commit().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.lock().unwrap().len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.shutdown(Duration::from_secs(5)).await;

    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "commit → handler through outbox + Redis Streams at {RATE}/s for {SECONDS} s: \
         {} of {total} handled; p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        latencies[latencies.len() - 1],
    );
    Ok(())
}
