//! The reader: its own pending entries first (`XREADGROUP … 0`), then new
//! ones (`XREADGROUP … >` with `BLOCK`), on a connection of its own.

use std::sync::Arc;

use redis::aio::ConnectionManager;

use super::{Shared, delivery_counts, sleep_or_stop, stopped};
use crate::entry;
use crate::settings::StartFrom;
use crate::streams::is_no_group;

/// Where the next read starts.
enum Cursor {
    /// In this consumer's pending entries, after this id.
    Own(String),
    /// Entries never delivered to the group.
    New,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut conn: ConnectionManager,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let settings = shared.streams.settings().clone();
    let mut cursor = Cursor::Own("0".to_owned());
    let mut backoff = crate::BACKOFF.start();
    let block_ms = u64::try_from(settings.block.as_millis()).unwrap_or(u64::MAX);
    loop {
        let permit = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            permit = shared.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&*settings.group)
            .arg(&*settings.consumer)
            .arg("COUNT")
            .arg(settings.batch);
        let id = match &cursor {
            Cursor::Own(after) => after.as_str(),
            Cursor::New => {
                cmd.arg("BLOCK").arg(block_ms);
                ">"
            }
        };
        cmd.arg("STREAMS").arg(&*settings.stream).arg(id);
        let reply = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            reply = cmd.query_async::<redis::Value>(&mut conn) => reply,
        };
        let entries = match reply {
            Ok(reply) => match entry::read_reply(reply) {
                Ok(entries) => entries,
                Err(problem) => {
                    tracing::error!(stream = &*settings.stream, "{problem}");
                    sleep_or_stop(backoff.next_delay(), &mut stop).await;
                    continue;
                }
            },
            Err(error) => {
                if is_no_group(&error) {
                    // Redis lost the group (restarted without its data, or
                    // someone deleted it): re-create it from the start of
                    // what the stream holds, so nothing published since is
                    // skipped.
                    tracing::warn!(
                        stream = &*settings.stream,
                        group = &*settings.group,
                        "the consumer group is missing; creating it again"
                    );
                    if let Err(error) = shared.streams.ensure_group(StartFrom::Beginning).await {
                        tracing::warn!(%error, "cannot create the consumer group");
                    }
                } else {
                    tracing::warn!(
                        stream = &*settings.stream,
                        group = &*settings.group,
                        consumer = &*settings.consumer,
                        %error,
                        "cannot read the stream; retrying"
                    );
                }
                sleep_or_stop(backoff.next_delay(), &mut stop).await;
                continue;
            }
        };
        backoff.reset();
        if entries.is_empty() {
            if let Cursor::Own(_) = cursor {
                tracing::debug!(
                    consumer = &*settings.consumer,
                    "own pending entries drained"
                );
                cursor = Cursor::New;
            }
            continue;
        }
        let deliveries = match &cursor {
            Cursor::New => vec![1; entries.len()],
            Cursor::Own(_) => {
                let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
                match delivery_counts(&shared.streams, &ids).await {
                    Ok(counts) => counts,
                    Err(error) => {
                        // Read again from the same place: the entries stay pending.
                        tracing::warn!(%error, "cannot read delivery counts; retrying");
                        sleep_or_stop(backoff.next_delay(), &mut stop).await;
                        continue;
                    }
                }
            }
        };
        if let (Cursor::Own(after), Some(last)) = (&mut cursor, entries.last()) {
            after.clone_from(&last.id);
        }
        tracing::trace!(
            consumer = &*settings.consumer,
            entries = entries.len(),
            "read"
        );
        if !shared
            .deliver(&settings, entries, &deliveries, permit)
            .await
        {
            break;
        }
    }
}
