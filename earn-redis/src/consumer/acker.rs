//! The acker: acknowledges finished batches (one `XACK` for all the
//! batches ready), moves dead letters, and retries until Redis takes them.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::batch::{Batch, InFlight, Verdict};
use crate::streams::{RedisStreams, is_no_group};

/// Batches taken at once: their acknowledgements go in one `XACK`.
const ROUND: usize = 64;

pub(crate) async fn run(
    streams: RedisStreams,
    in_flight: Arc<InFlight>,
    mut finished: UnboundedReceiver<Arc<Batch>>,
) {
    let mut ready = Vec::with_capacity(ROUND);
    let mut backoff = crate::BACKOFF.start();
    while finished.recv_many(&mut ready, ROUND).await > 0 {
        let mut round = Round::new(&ready);
        loop {
            match round.flush(&streams, &ready).await {
                Ok(()) => break,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        stream = streams.settings().get_stream(),
                        group = streams.settings().get_group(),
                        %error,
                        "cannot acknowledge {} entries; retrying in {delay:?} (they stay pending meanwhile)",
                        round.left(),
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
        backoff.reset();
        in_flight.remove(
            ready
                .iter()
                .flat_map(|batch| batch.slots.iter().filter_map(|slot| slot.key)),
        );
        // Dropping the batches returns their permits: the reader may read more.
        ready.clear();
    }
}

/// A dead letter to write.
struct Dead {
    id: String,
    reason: String,
    deliveries: u32,
    event_id: Option<uuid::Uuid>,
    gave_up: String,
    finished: String,
}

/// Handler names as stored in Redis: one per line.
fn lines(names: &[Arc<str>]) -> String {
    names
        .iter()
        .map(|name| &**name)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one round writes; what is written is marked, so a retry after an
/// error writes only the rest.
struct Round {
    /// Per batch, per slot: acknowledge it (no verdict means success).
    ack: Vec<Vec<bool>>,
    acks: usize,
    /// Sets of finished handlers: to delete (acknowledged entries that
    /// were delivered before) or to add to (entries left pending).
    forget: Vec<String>,
    remember: Vec<(String, Vec<Arc<str>>)>,
    dead: VecDeque<Dead>,
}

impl Round {
    fn new(ready: &[Arc<Batch>]) -> Round {
        let mut round = Round {
            ack: Vec::with_capacity(ready.len()),
            acks: 0,
            forget: Vec::new(),
            remember: Vec::new(),
            dead: VecDeque::new(),
        };
        for batch in ready {
            let mut ack = Vec::with_capacity(batch.slots.len());
            for (slot, verdict) in batch.slots.iter().zip(batch.take_verdicts()) {
                ack.push(verdict.is_none());
                match verdict {
                    None => {
                        round.acks += 1;
                        // Only an entry delivered before can have a set.
                        if slot.deliveries > 1 {
                            round.forget.push(slot.id.clone());
                        }
                    }
                    Some(Verdict::Leave) => {}
                    Some(Verdict::Retry { reason, finished }) => {
                        tracing::warn!(
                            entry = slot.id,
                            event_id = ?slot.event_id,
                            deliveries = slot.deliveries,
                            "{reason}; the entry stays pending and is delivered again after claim_idle",
                        );
                        if !finished.is_empty() {
                            round.remember.push((slot.id.clone(), finished));
                        }
                    }
                    Some(Verdict::DeadLetter {
                        reason,
                        gave_up,
                        finished,
                    }) => round.dead.push_back(Dead {
                        id: slot.id.clone(),
                        reason,
                        deliveries: slot.deliveries,
                        event_id: slot.event_id,
                        gave_up: lines(&gave_up),
                        finished: lines(&finished),
                    }),
                }
            }
            round.ack.push(ack);
        }
        round
    }

    /// Entries still to write.
    fn left(&self) -> usize {
        self.acks + self.remember.len() + self.dead.len()
    }

    async fn flush(
        &mut self,
        streams: &RedisStreams,
        ready: &[Arc<Batch>],
    ) -> Result<(), redis::RedisError> {
        let settings = streams.settings();
        let stream = streams.stream_key().clone();
        let mut conn = streams.conn();
        if self.acks > 0 || !self.remember.is_empty() {
            // One round trip: the acknowledgements, and the sets of
            // finished handlers kept in step with them.
            let mut pipe = redis::pipe();
            if self.acks > 0 {
                let xack = pipe.cmd("XACK").arg(&*stream).arg(settings.get_group());
                for (batch, ack) in ready.iter().zip(&self.ack) {
                    for (slot, _) in batch.slots.iter().zip(ack).filter(|(_, ack)| **ack) {
                        xack.arg(&slot.id);
                    }
                }
            }
            if !self.forget.is_empty() {
                let del = pipe.cmd("DEL").ignore();
                for id in &self.forget {
                    del.arg(settings.done_key(id));
                }
            }
            let ttl = u64::try_from(settings.done_ttl().as_millis()).unwrap_or(u64::MAX);
            for (id, finished) in &self.remember {
                let key = settings.done_key(id);
                let sadd = pipe.cmd("SADD").arg(&key).ignore();
                for name in finished {
                    sadd.arg(&**name);
                }
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
            }
            let acked = pipe.query_async::<Vec<u64>>(&mut conn).await;
            match acked {
                Ok(replies) => {
                    let n = replies.first().copied().unwrap_or(0);
                    metrics::counter!("earn_redis_acked_total", "stream" => stream.clone())
                        .increment(n);
                }
                // The group is gone (Redis lost its data): nothing is pending
                // any more; the reader re-creates the group.
                Err(error) if is_no_group(&error) => {
                    tracing::warn!(
                        stream = &*stream,
                        group = settings.get_group(),
                        "the consumer group vanished before {} entries were acknowledged",
                        self.acks
                    );
                }
                Err(error) => return Err(error),
            }
            self.acks = 0;
            self.forget.clear();
            self.remember.clear();
        }
        // In stream order.
        while let Some(dead) = self.dead.front() {
            let moved = streams
                .inner
                .scripts
                .dead_letter
                .key(&*stream)
                .key(&*streams.inner.dead)
                .key(settings.done_key(&dead.id))
                .arg(settings.get_group())
                .arg(&dead.id)
                .arg(&dead.reason)
                .arg(dead.deliveries)
                .arg(&dead.gave_up)
                .arg(&dead.finished)
                .invoke_async::<u64>(&mut conn)
                .await;
            match moved {
                Ok(1) => {
                    metrics::counter!("earn_redis_dead_letters_total", "stream" => stream.clone())
                        .increment(1);
                    tracing::error!(
                        stream = &*stream,
                        group = settings.get_group(),
                        entry = dead.id,
                        event_id = ?dead.event_id,
                        deliveries = dead.deliveries,
                        reason = dead.reason,
                        "entry moved to the dead-letter stream `{}`: {}",
                        streams.inner.dead,
                        dead.reason,
                    );
                }
                // No longer pending here (another consumer finished it, or
                // the group is gone): nothing to move.
                Ok(_) => {}
                Err(error) if is_no_group(&error) => {}
                Err(error) => return Err(error),
            }
            self.dead.pop_front();
        }
        Ok(())
    }
}
