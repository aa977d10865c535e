//! Delayed events: they wait in the stream `{stream}_delayed` and are
//! moved to the event stream once due by whichever consumer pulls them,
//! through one durable consumer shared by every group and process.
//!
//! A message not yet due is `nak`ed with the time it still has to wait,
//! so JetStream holds it and hands it back then; nothing polls. The move
//! publishes under the event id, so a move repeated after a crash between
//! the publish and the acknowledgement is stored once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, Consumer as Durable, pull};
use async_nats::jetstream::{AckKind, Message};
use earn_core::Error;
use futures_util::StreamExt as _;
use tokio::sync::watch;

use crate::consumer::{sleep_or_stop, stopped};
use crate::streams::{NatsStreams, transport};
use crate::wire::{self, Content};

/// The durable consumer of the delayed stream, shared by every group.
const RUNNER: &str = "earn-delayed";
/// The longest single wait asked of JetStream; a later event is asked for
/// again then.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The runner's durable consumer, created if it is missing.
pub(crate) async fn consumer(streams: &NatsStreams) -> Result<Durable<pull::Config>, Error> {
    let stream = streams
        .js()
        .get_stream(streams.settings().delayed_stream())
        .await
        .map_err(transport("open the delayed events"))?;
    stream
        .get_or_create_consumer(
            RUNNER,
            pull::Config {
                durable_name: Some(RUNNER.to_owned()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver: -1,
                max_ack_pending: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(transport("create the delayed events' consumer"))
}

pub(crate) async fn run(
    streams: NatsStreams,
    durable: Durable<pull::Config>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = crate::BACKOFF.start();
    while !*stop.borrow() {
        let mut messages = match durable.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                let delay = failures.next_delay();
                tracing::warn!(%error, ?delay, "cannot pull delayed events; retrying");
                sleep_or_stop(delay, &mut stop).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                () = stopped(&mut stop) => return,
            };
            match next {
                Some(Ok(message)) => {
                    failures.reset();
                    move_if_due(&streams, message).await;
                }
                Some(Err(error)) => {
                    let delay = failures.next_delay();
                    tracing::debug!(%error, ?delay, "pulling delayed events failed; pulling again");
                    sleep_or_stop(delay, &mut stop).await;
                    break;
                }
                None => break,
            }
        }
    }
}

/// Moves `message` to the event stream if it is due; else asks for it
/// again when it is.
async fn move_if_due(streams: &NatsStreams, message: Message) {
    let headers = message.headers.as_ref();
    let due = wire::header(headers, wire::HEADER_DUE).and_then(|due| due.parse::<u64>().ok());
    let now = now_ms();
    let Some(due) = due else {
        dead_letter(
            streams,
            &message,
            "a delayed message without a valid `Earn-Due` header".to_owned(),
        )
        .await;
        return;
    };
    if due > now {
        let wait = Duration::from_millis(due - now).min(LONGEST_WAIT);
        let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
        return;
    }
    let data = match wire::decode(headers, &message.payload) {
        Content::Event(data) => data,
        Content::Invalid(reason) => {
            dead_letter(streams, &message, reason).await;
            return;
        }
    };
    let settings = streams.settings();
    let moved = streams
        .send(
            settings.subject(data.name.as_str()),
            wire::event_headers(&data, &data.id.to_string()),
            message.payload.clone(),
            "move a delayed event",
        )
        .await;
    match moved {
        Ok(_) => {
            metrics::counter!("earn_nats_published_total", "stream" => settings.stream.clone())
                .increment(1);
            let _ = message.ack().await;
        }
        Err(error) => {
            tracing::warn!(%error, event_id = %data.id, "cannot move a due delayed event; retrying");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

/// A delayed message that is not a delayed event: to the dead letters,
/// under the group `_delayed`.
async fn dead_letter(streams: &NatsStreams, message: &Message, reason: String) {
    let settings = streams.settings();
    let mut headers = HeaderMap::new();
    let name = wire::name_from_subject(&message.subject, &format!("{}_delayed", settings.prefix));
    headers.insert(wire::HEADER_NAME, name);
    headers.insert(wire::HEADER_REASON, wire::one_line(&reason).as_ref());
    headers.insert(wire::HEADER_GROUP, "_delayed");
    headers.insert(wire::HEADER_DELIVERIES, "1");
    headers.insert(wire::HEADER_FAILED_AT, now_ms().to_string().as_str());
    let stored = streams
        .send(
            settings.dead_subject("_delayed"),
            headers,
            message.payload.clone(),
            "dead-letter",
        )
        .await;
    match stored {
        Ok(_) => {
            tracing::warn!(%reason, "delayed message moved to the dead letters");
            let _ = message.ack().await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot dead-letter an invalid delayed message; retrying");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}
