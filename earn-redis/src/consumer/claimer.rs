//! The claimer: every quarter of `claim_idle`, takes over the group's
//! entries pending longer than that (`XAUTOCLAIM`): those of crashed
//! consumers, and failed ones waiting for their next delivery.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::{Shared, delivery_counts, sleep_or_stop, stopped};
use crate::entry;
use crate::streams::is_no_group;

pub(crate) async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let settings = shared.streams.settings().clone();
    let idle_ms = u64::try_from(settings.claim_idle.as_millis()).unwrap_or(u64::MAX);
    let period =
        (settings.claim_idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(10));
    let mut backoff = crate::BACKOFF.start();
    'ticks: loop {
        sleep_or_stop(period, &mut stop).await;
        let mut cursor = "0-0".to_owned();
        loop {
            let permit = tokio::select! {
                biased;
                () = stopped(&mut stop) => break 'ticks,
                permit = shared.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break 'ticks,
                },
            };
            let reply = redis::cmd("XAUTOCLAIM")
                .arg(&*settings.stream)
                .arg(&*settings.group)
                .arg(&*settings.consumer)
                .arg(idle_ms)
                .arg(&cursor)
                .arg("COUNT")
                .arg(settings.batch)
                .query_async::<Value>(&mut shared.streams.conn())
                .await;
            let (next, entries) = match reply.map(claimed) {
                Ok(Ok(claimed)) => claimed,
                Ok(Err(problem)) => {
                    tracing::error!(stream = &*settings.stream, "{problem}");
                    sleep_or_stop(backoff.next_delay(), &mut stop).await;
                    continue 'ticks;
                }
                Err(error) => {
                    // A missing group is re-created by the reader.
                    if !is_no_group(&error) {
                        tracing::warn!(
                            stream = &*settings.stream,
                            group = &*settings.group,
                            %error,
                            "cannot claim idle entries; retrying"
                        );
                    }
                    sleep_or_stop(backoff.next_delay(), &mut stop).await;
                    continue 'ticks;
                }
            };
            backoff.reset();
            if !entries.is_empty() {
                let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
                let deliveries = match delivery_counts(&shared.streams, &ids).await {
                    Ok(counts) => counts,
                    // They stay pending and are claimed again next time.
                    Err(error) => {
                        tracing::warn!(%error, "cannot read delivery counts of claimed entries");
                        continue 'ticks;
                    }
                };
                tracing::debug!(
                    stream = &*settings.stream,
                    consumer = &*settings.consumer,
                    entries = entries.len(),
                    "claimed idle entries"
                );
                // Not those this consumer is still handling (claimed back
                // because their handling outlasted claim_idle).
                let taken_over = shared.in_flight.count_new(&entries);
                metrics::counter!("earn_redis_claimed_total", "stream" => settings.stream.clone())
                    .increment(taken_over as u64);
                if !shared
                    .deliver(&settings, entries, &deliveries, permit)
                    .await
                {
                    break 'ticks;
                }
            }
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
    }
}

/// `[next cursor, [[id, fields], …], [deleted ids]]`.
fn claimed(reply: Value) -> Result<(String, Vec<entry::RawEntry>), String> {
    let Value::Array(parts) = reply else {
        return Err(format!("unexpected XAUTOCLAIM reply: {reply:?}"));
    };
    let mut parts = parts.into_iter();
    let next = parts
        .next()
        .and_then(entry::string)
        .ok_or("XAUTOCLAIM returned no cursor")?;
    let mut entries = Vec::new();
    entry::entries_into(parts.next().unwrap_or(Value::Nil), &mut entries)?;
    // Entries deleted from the stream (the third part) are removed from
    // the pending list by XAUTOCLAIM itself.
    Ok((next, entries))
}
