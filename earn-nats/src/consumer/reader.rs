//! The reader: pulls the group's messages, decodes them, and hands each
//! event to the bus with the handlers already finished with it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::{Consumer as Durable, pull};
use earn_core::{Delivery, Event, Finished};
use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::acker::{Handled, Verdict};
use super::{Shared, sleep_or_stop, stopped};
use crate::wire::{self, Content};

/// How long a pull request waits on the server, and how often the server
/// says it is still there when it has nothing to send.
const EXPIRES: Duration = Duration::from_secs(30);
const HEARTBEAT: Duration = Duration::from_secs(5);

pub(crate) async fn run(
    shared: Arc<Shared>,
    durable: Durable<pull::Config>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = shared.streams.settings().clone();
    let mut failures = crate::BACKOFF.start();
    while !*stop.borrow() {
        let messages = durable
            .stream()
            .max_messages_per_batch(settings.batch)
            .expires(EXPIRES)
            .heartbeat(HEARTBEAT)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                let delay = failures.next_delay();
                tracing::warn!(%error, ?delay, "cannot pull from the group; retrying");
                sleep_or_stop(delay, &mut stop).await;
                continue;
            }
        };
        loop {
            // Room first: at the limit nothing more is taken.
            let permit = tokio::select! {
                permit = shared.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = stopped(&mut stop) => return,
            };
            let next = tokio::select! {
                next = messages.next() => next,
                () = stopped(&mut stop) => return,
            };
            match next {
                Some(Ok(message)) => {
                    failures.reset();
                    if !deliver(&shared, message, permit).await {
                        return;
                    }
                }
                Some(Err(error)) => {
                    let delay = failures.next_delay();
                    tracing::warn!(%error, ?delay, "pulling from the group failed; pulling again");
                    sleep_or_stop(delay, &mut stop).await;
                    break;
                }
                None => break,
            }
        }
    }
}

/// Hands one message to the bus, or straight to the acker when no handler
/// is to run; `false` once the bus is shut down and the consumer stops.
async fn deliver(
    shared: &Arc<Shared>,
    message: Message,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> bool {
    let settings = shared.streams.settings();
    let Ok(info) = message.info() else {
        tracing::warn!(subject = %message.subject, "a message without JetStream metadata; ignored");
        return true;
    };
    let sequence = info.stream_sequence;
    let deliveries = u32::try_from(info.delivered).unwrap_or(u32::MAX).max(1);
    if !shared.in_flight.insert(sequence) {
        // Its first delivery is still being handled here: that one acks.
        return true;
    }
    let headers = message.headers.as_ref();
    let other_group =
        wire::header(headers, wire::HEADER_FOR).is_some_and(|group| group != &*settings.group);
    let mut finished = wire::names(headers, wire::HEADER_FINISHED);
    let content = wire::decode(headers, &message.payload);
    let mut handled = Handled::new(shared, message, sequence, deliveries, permit);
    if other_group {
        // A requeued dead letter of another group: acknowledged unread.
        handled.finish(Verdict::Ack);
        return true;
    }
    let max = settings.max_deliveries;
    let mut data = match content {
        Content::Invalid(reason) => {
            handled.finish(Verdict::dead(reason, Vec::new(), finished));
            return true;
        }
        Content::Event(_) if deliveries > max => {
            handled.finish(Verdict::dead(
                format!(
                    "delivered {deliveries} times without being acknowledged (its consumers \
                     stopped while handling it); max_deliveries is {max}"
                ),
                Vec::new(),
                finished,
            ));
            return true;
        }
        Content::Event(data) => data,
    };
    if deliveries > 1 {
        match shared.done.get(sequence).await {
            Ok(recorded) => {
                handled.recorded = true;
                finished.extend(recorded);
            }
            Err(error) => {
                tracing::warn!(
                    %error, sequence,
                    "cannot read which handlers finished a redelivered message; it is \
                     delivered again later"
                );
                handled.finish(Verdict::Later);
                return true;
            }
        }
    }
    data.attempt = deliveries;
    let event = Event::from_data(data);
    let queued = shared
        .bus
        .deliver_then(event, Finished::from_names(finished), move |delivery| {
            let verdict = verdict(&delivery, deliveries, max);
            handled.finish(verdict);
        })
        .await;
    if queued.is_err() {
        // Dropped with the closure: not acknowledged, delivered again.
        tracing::error!(
            "the event bus was shut down while the consumer was running; the consumer stops \
             (shut the consumer down before the bus); unhandled messages are delivered again"
        );
        shared.stop.send_replace(true);
        return false;
    }
    true
}

/// What the bus's report on one delivery means for the message.
fn verdict(delivery: &Delivery, deliveries: u32, max: u32) -> Verdict {
    if delivery.is_ok() {
        return Verdict::Ack;
    }
    let reason = delivery.reason();
    let permanent = delivery.is_permanent();
    let finished = delivery.finished().to_vec();
    if permanent || deliveries >= max {
        let gave_up = delivery
            .failures()
            .iter()
            .map(|(h, _)| h.to_string())
            .collect();
        Verdict::dead(
            reason,
            gave_up,
            finished.iter().map(|n| n.to_string()).collect(),
        )
    } else {
        Verdict::Retry { reason, finished }
    }
}
