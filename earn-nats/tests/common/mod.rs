//! What every NATS test needs: the server (from `EARN_NATS_URL`, default
//! `nats://127.0.0.1:4222`), a stream of its own deleted at the end, a bus
//! that records what its handlers saw. Private `nats-server`s come from
//! `earn-test-servers`.
//!
//! When NATS cannot be reached the test prints a skip line and passes,
//! unless `EARN_REQUIRE_SERVICES=1`, which turns that into a failure.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use earn::nats::{NatsSettings, NatsStreams};

pub fn url() -> String {
    std::env::var("EARN_NATS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
}

pub fn required() -> bool {
    std::env::var("EARN_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A stream name no other test uses.
pub fn unique_stream() -> String {
    format!("earn-test-{}", uuid::Uuid::new_v4().simple())
}

/// Test settings: quick retries so tests take milliseconds.
pub fn settings(stream: &str) -> NatsSettings {
    group_settings(stream, "workers")
}

/// [`settings`] for another group.
pub fn group_settings(stream: &str, group: &str) -> NatsSettings {
    NatsSettings::new(stream, group)
        .consumer("c1")
        .ack_wait(Duration::from_secs(30))
        .retry_backoff(earn::nats::Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(400),
        ))
}

/// Deletes a test's streams when dropped, even if the test panicked.
pub struct Cleanup {
    url: String,
    stream: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let settings = NatsSettings::new(stream.as_str(), "cleanup");
                if let Ok(streams) = NatsStreams::connect(&url, settings).await {
                    let _ = streams.delete_streams().await;
                }
            });
        })
        .join();
    }
}

/// A connected `NatsStreams` on a fresh stream, and the guard deleting it;
/// `None` (after a skip line) when NATS is unreachable.
pub async fn connect(settings: NatsSettings) -> Option<(NatsStreams, Cleanup)> {
    connect_to(&url(), settings).await
}

pub async fn connect_to(url: &str, settings: NatsSettings) -> Option<(NatsStreams, Cleanup)> {
    let cleanup = Cleanup {
        url: url.to_owned(),
        stream: settings.get_stream().to_owned(),
    };
    match NatsStreams::connect(url, settings).await {
        Ok(streams) => Some((streams, cleanup)),
        Err(error) if required() => {
            panic!("EARN_REQUIRE_SERVICES=1 but NATS at {url} is unreachable: {error}")
        }
        Err(error) => {
            #[allow(
                clippy::mem_forget,
                reason = "nothing to clean on a server never reached"
            )]
            std::mem::forget(cleanup);
            eprintln!("skipped: NATS at {url} is unreachable ({error}); set EARN_NATS_URL");
            None
        }
    }
}

#[path = "../../../tests/support/delivery.rs"]
mod delivery;
pub use delivery::*;
