//! Measures the transport against the Redis at `EARN_REDIS_URL` (default
//! `redis://127.0.0.1:6379`):
//!
//! 1. raw pipelined `XADD` of the same entries (the ceiling);
//! 2. `RedisStreams::publish` from concurrent tasks;
//! 3. end to end: publish → handled by two consumers of one group.
//!
//! ```sh
//! cargo run --release -p earn-redis --example throughput -- 200000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use earn::redis::{RedisSettings, RedisStreams};
use earn::{Event, EventBus};

fn publishers() -> usize {
    std::env::var("PUBLISHERS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(64)
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(
                "bench.tick",
                &serde_json::json!({"n": i, "note": "a small payload"}),
            )
            .unwrap()
        })
        .collect()
}

async fn publish_all(streams: &RedisStreams, events: Vec<Event>) {
    let events = Arc::new(events);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..publishers())
        .map(|_| {
            let (streams, events, next) = (streams.clone(), events.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(event) = events.get(i) else { break };
                    streams.publish(event).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let url = std::env::var("EARN_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let stream = format!("earn-bench:{}", uuid::Uuid::new_v4());
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;

    // 1. Raw pipelined XADD, 1000 per pipeline, entries serialized beforehand.
    let prepared: Vec<(String, Vec<u8>)> = events(n)
        .iter()
        .map(|e| (e.name().to_string(), serde_json::to_vec(e.data()).unwrap()))
        .collect();
    let raw_key = format!("{stream}:raw");
    let start = Instant::now();
    for chunk in prepared.chunks(1000) {
        let mut pipe = redis::pipe();
        for (name, json) in chunk {
            pipe.cmd("XADD")
                .arg(&raw_key)
                .arg("*")
                .arg("v")
                .arg("1")
                .arg("name")
                .arg(name)
                .arg("event")
                .arg(json)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    let raw = n as f64 / start.elapsed().as_secs_f64();
    println!("raw pipelined XADD:        {raw:>9.0} entries/s");
    redis::cmd("DEL")
        .arg(&raw_key)
        .query_async::<()>(&mut conn)
        .await?;

    // 2. publish from concurrent tasks (events built beforehand).
    let settings = |consumer: &str| {
        RedisSettings::new(stream.as_str(), "bench")
            .consumer(consumer)
            .max_len(10 * n)
    };
    let streams = RedisStreams::connect(&url, settings("c1")).await?;
    let batch = events(n);
    let start = Instant::now();
    publish_all(&streams, batch).await;
    let published = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "publish ({} tasks):       {published:>9.0} events/s ({:.2}x raw)",
        publishers(),
        published / raw
    );
    redis::cmd("DEL")
        .arg(&stream)
        .query_async::<()>(&mut conn)
        .await?;

    // 3. End to end with two consumers of one group.
    let handled = Arc::new(AtomicUsize::new(0));
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(2)
        .build()?;
    let count = handled.clone();
    bus.subscribe_sync("bench.*", 0, move |_: &Event| {
        count.fetch_add(1, Ordering::Relaxed);
    })?;
    let first = streams.consume(bus.clone()).await?;
    let second = RedisStreams::connect(&url, settings("c2"))
        .await?
        .consume(bus.clone())
        .await?;
    let batch = events(n);
    let start = Instant::now();
    publish_all(&streams, batch).await;
    let publish_done = start.elapsed();
    while handled.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let total = start.elapsed();
    println!(
        "end to end (2 consumers):  {:>9.0} events/s (publishing took {publish_done:?}, all handled after {total:?})",
        n as f64 / total.as_secs_f64()
    );
    first.shutdown(Duration::from_secs(5)).await;
    second.shutdown(Duration::from_secs(5)).await;
    let lag = streams.lag().await?;
    println!("after: {lag:?}");
    redis::cmd("DEL")
        .arg(&stream)
        .arg(format!("{stream}:dead"))
        .arg(format!("{stream}:delayed"))
        .arg(format!("{stream}:marks"))
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}
