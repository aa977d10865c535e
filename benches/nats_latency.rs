//! Commit → handler latency through the transactional outbox and NATS
//! JetStream (see `support/latency.rs`), against a NATS at
//! `EARN_NATS_URL` (default `nats://127.0.0.1:4222`). Prints p50, p90,
//! p99 and max.
//!
//! `cargo bench --bench nats_latency --features nats`

#[path = "support/latency.rs"]
mod latency;

use std::time::Duration;

use earn::nats::{NatsSettings, NatsStreams};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo bench` asks every bench to list itself
    }
    let url = std::env::var("EARN_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let stream = format!("earn-bench-latency-{}", uuid::Uuid::new_v4().simple());
    let settings =
        |consumer: &str| NatsSettings::new(stream.as_str(), "latency").consumer(consumer);
    let clock = latency::Clock::default();
    let consumer = NatsStreams::connect(&url, settings("worker"))
        .await?
        .consume(clock.bus()?)
        .await?;
    let producer = NatsStreams::connect(&url, settings("producer")).await?;
    clock.drive("NATS JetStream", producer.clone()).await?;
    consumer.shutdown(Duration::from_secs(5)).await;
    producer.delete_streams().await?;
    Ok(())
}
