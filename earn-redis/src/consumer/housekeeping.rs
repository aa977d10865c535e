//! Housekeeping: moves due delayed events into the stream, and trims it.

use std::time::{Duration, Instant};

use super::{is_stopped, sleep_or_stop};
use crate::streams::RedisStreams;

/// How often due delayed events are looked for.
pub(crate) const DELAYED_POLL: Duration = Duration::from_millis(100);
/// How often the stream is trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(2);
/// Delayed events moved by one script call.
const MOVE_LIMIT: usize = 500;

pub(crate) async fn run(streams: RedisStreams, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut last_trim = Instant::now();
    let mut failing = false;
    loop {
        sleep_or_stop(DELAYED_POLL, &mut stop).await;
        if is_stopped(&stop) {
            break;
        }
        let mut result = move_due(&streams).await;
        if result.is_ok() && last_trim.elapsed() >= TRIM_EVERY {
            last_trim = Instant::now();
            result = streams.trim().await.map(|deleted| {
                if deleted > 0 {
                    tracing::debug!(
                        stream = streams.settings().get_stream(),
                        deleted,
                        "stream trimmed"
                    );
                }
            });
        }
        match result {
            // Logged once per outage, not every poll.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(
                    stream = streams.settings().get_stream(),
                    %error,
                    "housekeeping (delayed events, trimming) failed; retrying"
                );
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
    }
}

async fn move_due(streams: &RedisStreams) -> Result<(), earn_core::Error> {
    loop {
        let moved: usize = streams
            .inner
            .scripts
            .move_due
            .key(&*streams.inner.delayed)
            .key(&**streams.stream_key())
            .arg(MOVE_LIMIT)
            .invoke_async(&mut streams.conn())
            .await
            .map_err(crate::streams::transport("move delayed events"))?;
        if moved > 0 {
            tracing::debug!(
                stream = streams.settings().get_stream(),
                moved,
                "delayed events due"
            );
        }
        if moved < MOVE_LIMIT {
            return Ok(());
        }
    }
}
