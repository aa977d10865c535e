//! Commit → handler latency through the transactional outbox and Redis
//! Streams (see `support/latency.rs`). Prints p50, p90, p99 and max.
//!
//! `cargo bench --bench redis_latency --features redis`

#[path = "support/latency.rs"]
mod latency;

use std::time::Duration;

use earn::redis::{RedisSettings, RedisStreams};

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
    let clock = latency::Clock::default();
    let consumer = RedisStreams::connect(url.as_str(), settings("worker"))
        .await?
        .consume(clock.bus()?)
        .await?;
    let producer = RedisStreams::connect(url.as_str(), settings("producer")).await?;
    clock.drive("Redis Streams", producer).await?;
    consumer.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
