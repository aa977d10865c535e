//! What every Redis test needs: the server (from `EARN_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), a stream of its own, its keys deleted at the
//! end, and a bus that records what its handlers saw.
//!
//! When Redis cannot be reached the test prints a skip line and passes,
//! unless `EARN_REQUIRE_SERVICES=1`, which turns that into a failure.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::redis::{RedisSettings, RedisStreams};
use earn::{Event, EventBus};

pub fn url() -> String {
    std::env::var("EARN_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

fn required() -> bool {
    std::env::var("EARN_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A stream name no other test uses.
pub fn unique_stream() -> String {
    format!("earn-test:{}", uuid::Uuid::new_v4())
}

/// Test settings: short block and claim times so tests take milliseconds.
pub fn settings(stream: &str) -> RedisSettings {
    RedisSettings::new(stream, "workers")
        .consumer("c1")
        .block(Duration::from_millis(100))
        .claim_idle(Duration::from_secs(60))
}

/// Deletes a test's keys when dropped, even if the test panicked.
pub struct Keys {
    url: String,
    keys: Vec<String>,
}

impl Keys {
    pub fn new(url: &str, stream: &str) -> Keys {
        Keys {
            url: url.to_owned(),
            keys: vec![
                stream.to_owned(),
                format!("{stream}:dead"),
                format!("{stream}:delayed"),
                format!("{stream}:marks"),
            ],
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let deleted = redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut conn| redis::cmd("DEL").arg(&self.keys).query::<()>(&mut conn));
        if let Err(error) = deleted {
            eprintln!("could not delete test keys {:?}: {error}", self.keys);
        }
    }
}

/// A connected `RedisStreams` on a fresh stream, and the guard deleting its
/// keys; `None` (after a skip line) when Redis is unreachable.
pub async fn connect(settings: RedisSettings) -> Option<(RedisStreams, Keys)> {
    let url = url();
    let keys = Keys::new(&url, settings.get_stream());
    match RedisStreams::connect(&url, settings).await {
        Ok(streams) => Some((streams, keys)),
        Err(error) if required() => {
            panic!("EARN_REQUIRE_SERVICES=1 but Redis at {url} is unreachable: {error}")
        }
        Err(error) => {
            #[allow(
                clippy::mem_forget,
                reason = "nothing to clean on a server never reached"
            )]
            std::mem::forget(keys);
            eprintln!("skipped: Redis at {url} is unreachable ({error}); set EARN_REDIS_URL");
            None
        }
    }
}

/// A plain connection for looking at Redis directly.
pub async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[path = "../../../tests/support/delivery.rs"]
mod delivery;
pub use delivery::*;

/// A bus whose handler of `pattern` records each event and never returns,
/// as a process that dies while handling would; enough workers for every
/// event of a test to start.
pub fn stuck_bus(pattern: &str) -> (EventBus, Seen) {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(64)
        .build()
        .unwrap();
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe(pattern, 0, move |event: Event| {
        sink.push(&event);
        std::future::pending::<()>()
    })
    .unwrap();
    (bus, seen)
}

/// What a `tracing` subscriber wrote, for tests of what is logged.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The text written since the last call.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }
}
