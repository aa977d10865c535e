//! The acker: what happens to a message once its handlers are done with
//! it. Acknowledged; or `nak`ed with a delay for a retry, the handlers
//! that finished recorded first; or moved to the dead letters and then
//! acknowledged.

use std::sync::Arc;

use async_nats::jetstream::{AckKind, Message};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::{InFlight, Shared};

/// What happens to a message.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Handled (or not for this group): acknowledged.
    Ack,
    /// Handlers failed: delivered again after the retry backoff; the
    /// handlers that finished are recorded first.
    Retry {
        reason: String,
        finished: Vec<Arc<str>>,
    },
    /// Moved to the dead-letter stream, then acknowledged.
    DeadLetter(crate::dead_letter::Burial),
    /// Not handled now (a store could not be read): delivered again after
    /// the retry backoff, as if it failed, without recording anything.
    Later,
}

impl Verdict {
    pub(crate) fn dead(reason: String, gave_up: Vec<String>, finished: Vec<String>) -> Verdict {
        Verdict::DeadLetter(crate::dead_letter::Burial {
            reason,
            gave_up,
            finished,
        })
    }
}

/// A message this process holds, until its verdict is carried out. Its
/// permit bounds what the process holds; dropping it forgets the message
/// here (JetStream delivers it again unless it was acknowledged).
pub(crate) struct Handled {
    pub(crate) message: Message,
    pub(crate) sequence: u64,
    pub(crate) deliveries: u32,
    /// A record of finished handlers may exist: forget it once done.
    pub(crate) recorded: bool,
    verdict: Option<Verdict>,
    to_acker: mpsc::UnboundedSender<Handled>,
    in_flight: Arc<InFlight>,
    _permit: OwnedSemaphorePermit,
}

impl Handled {
    pub(crate) fn new(
        shared: &Shared,
        message: Message,
        sequence: u64,
        deliveries: u32,
        permit: OwnedSemaphorePermit,
    ) -> Handled {
        Handled {
            message,
            sequence,
            deliveries,
            recorded: false,
            verdict: None,
            to_acker: shared.finished.clone(),
            in_flight: shared.in_flight.clone(),
            _permit: permit,
        }
    }

    /// Sends the message with its verdict to the acker.
    pub(crate) fn finish(mut self, verdict: Verdict) {
        self.verdict = Some(verdict);
        let to_acker = self.to_acker.clone();
        // The acker is gone only if the consumer was aborted: the message
        // is delivered again.
        let _ = to_acker.send(self);
    }
}

impl Drop for Handled {
    fn drop(&mut self) {
        self.in_flight.remove(self.sequence);
    }
}

/// What the acker works with. It holds no sender of its channel, so it
/// ends once the reader and every message in flight are gone.
pub(crate) struct Acking {
    pub(crate) streams: crate::NatsStreams,
    pub(crate) done: crate::done::DoneStore,
}

pub(crate) async fn run(acking: Acking, mut handled: mpsc::UnboundedReceiver<Handled>) {
    let shared = &acking;
    let settings = shared.streams.settings();
    let (stream, group) = (settings.stream.clone(), settings.group.clone());
    let acked = metrics::counter!("earn_nats_acked_total", "stream" => stream.clone(), "group" => group.clone());
    let retried = metrics::counter!("earn_nats_retried_total", "stream" => stream.clone(), "group" => group.clone());
    let dead =
        metrics::counter!("earn_nats_dead_letters_total", "stream" => stream, "group" => group);
    while let Some(mut one) = handled.recv().await {
        match one.verdict.take().unwrap_or(Verdict::Later) {
            Verdict::Ack => {
                ack(shared, &one).await;
                acked.increment(1);
            }
            Verdict::Retry { reason, finished } => {
                if !finished.is_empty() {
                    match shared.done.put(one.sequence, &finished).await {
                        Ok(()) => one.recorded = true,
                        Err(error) => tracing::warn!(
                            %error, sequence = one.sequence,
                            "cannot record the handlers that finished; they run again on redelivery"
                        ),
                    }
                }
                tracing::debug!(sequence = one.sequence, deliveries = one.deliveries, %reason, "delivery failed; retrying");
                nak(shared, &one).await;
                retried.increment(1);
            }
            Verdict::Later => nak(shared, &one).await,
            Verdict::DeadLetter(burial) => {
                match crate::dead_letter::bury(&shared.streams, &one, &burial).await {
                    Ok(()) => {
                        ack(shared, &one).await;
                        dead.increment(1);
                        tracing::warn!(
                            sequence = one.sequence,
                            deliveries = one.deliveries,
                            reason = %burial.reason,
                            "message moved to the dead letters"
                        );
                    }
                    Err(error) => {
                        tracing::warn!(%error, sequence = one.sequence, "cannot store a dead letter; the message is delivered again");
                        nak(shared, &one).await;
                    }
                }
            }
        }
    }
}

/// Acknowledges `one` and forgets its finished handlers.
async fn ack(shared: &Acking, one: &Handled) {
    if let Err(error) = one.message.ack().await {
        tracing::warn!(%error, sequence = one.sequence, "acknowledgement not sent; the message is delivered again");
        return;
    }
    if one.recorded
        && let Err(error) = shared.done.forget(one.sequence).await
    {
        tracing::debug!(%error, sequence = one.sequence, "finished handlers not forgotten; they expire");
    }
}

/// Asks for `one` again after the retry backoff for its delivery count.
async fn nak(shared: &Acking, one: &Handled) {
    let delay = shared
        .streams
        .settings()
        .retry_backoff
        .delay(one.deliveries);
    if let Err(error) = one.message.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::debug!(%error, sequence = one.sequence, "nak not sent; the message comes back after ack_wait");
    }
}
