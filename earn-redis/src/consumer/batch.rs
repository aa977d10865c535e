//! A batch: the entries of one read or claim, handed to the bus together
//! and acknowledged together once every one of them is finished.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use earn_core::{Delivery, Event, EventBus, Finished};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use crate::entry::{Content, EntryId, RawEntry};
use crate::settings::RedisSettings;

/// The entries this consumer is handling now, so a claim does not hand
/// the bus an entry it already has.
#[derive(Default)]
pub(crate) struct InFlight(Mutex<HashSet<EntryId>>);

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashSet<EntryId>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// How many of `entries` are not being handled here already.
    pub(crate) fn count_new(&self, entries: &[RawEntry]) -> usize {
        let set = self.lock();
        entries
            .iter()
            .filter(|entry| EntryId::parse(&entry.id).is_none_or(|key| !set.contains(&key)))
            .count()
    }

    pub(crate) fn remove(&self, keys: impl Iterator<Item = EntryId>) {
        let mut set = self.lock();
        for key in keys {
            set.remove(&key);
        }
    }
}

/// What happens to an entry once its batch is finished. No verdict: it is
/// acknowledged (and its set of finished handlers deleted).
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Handlers failed; it stays pending and is claimed again after
    /// `claim_idle`; the handlers that finished are added to its set.
    Retry {
        reason: String,
        finished: Vec<Arc<str>>,
    },
    /// Moved to the dead-letter stream and acknowledged, atomically, with
    /// the handlers that gave up and those that finished.
    DeadLetter {
        reason: String,
        gave_up: Vec<Arc<str>>,
        finished: Vec<Arc<str>>,
    },
    /// Not handled here (the bus refused it, or another batch of this
    /// consumer has it): stays pending, untouched.
    Leave,
}

/// What is known of an entry's earlier deliveries.
pub(crate) struct History {
    /// Redis's delivery count, this one included.
    pub(crate) deliveries: u32,
    /// The handlers already finished with it.
    pub(crate) finished: Finished,
}

/// One entry of a batch.
pub(crate) struct Slot {
    pub(crate) id: String,
    /// Set when this batch registered the entry as in flight (and so must
    /// unregister it).
    pub(crate) key: Option<EntryId>,
    pub(crate) event_id: Option<Uuid>,
    pub(crate) deliveries: u32,
}

impl Verdict {
    /// A dead letter no handler ran for (not an event, past the limit).
    fn dead(reason: String, finished: &Finished) -> Verdict {
        Verdict::DeadLetter {
            reason,
            gave_up: Vec::new(),
            finished: finished.names().to_vec(),
        }
    }
}

pub(crate) struct Batch {
    pub(crate) slots: Vec<Slot>,
    verdicts: Mutex<Vec<Option<Verdict>>>,
    /// Entries not finished yet, plus one held while handing them to the bus.
    remaining: AtomicUsize,
    max_deliveries: u32,
    done: UnboundedSender<Arc<Batch>>,
    /// Returned when the acknowledgements are written: bounds the batches
    /// in flight.
    _permit: OwnedSemaphorePermit,
}

/// What handing a batch to the bus found out about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BusState {
    Open,
    Closed,
}

impl Batch {
    /// The verdicts, one per slot.
    pub(crate) fn take_verdicts(&self) -> Vec<Option<Verdict>> {
        std::mem::take(&mut *self.verdicts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn set(&self, index: usize, verdict: Verdict) {
        self.verdicts.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(verdict);
    }

    /// One entry is finished; the last one sends the batch to the acker.
    fn finish_one(self: &Arc<Self>) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The acker is gone only if the consumer was aborted: the
            // entries stay pending.
            let _ = self.done.send(self.clone());
        }
    }

    /// The bus finished with entry `index`.
    fn delivered(self: &Arc<Self>, index: usize, delivery: Delivery) {
        if !delivery.is_ok() {
            let reason = delivery.reason();
            let permanent = delivery.is_permanent();
            let deliveries = self.slots[index].deliveries;
            let finished = delivery.finished().to_vec();
            let verdict = if permanent || deliveries >= self.max_deliveries {
                Verdict::DeadLetter {
                    reason,
                    gave_up: delivery.failures().iter().map(|(h, _)| h.clone()).collect(),
                    finished,
                }
            } else {
                Verdict::Retry { reason, finished }
            };
            self.set(index, verdict);
        }
        self.finish_one();
    }
}

/// Hands `entries` (with their delivery counts and the handlers already
/// finished with them) to `bus` as one batch of `settings`' group; a
/// requeued dead letter of another group is acknowledged unread.
/// Entries that are not events, or past the delivery limit, are marked for
/// the dead-letter stream without running handlers.
pub(crate) async fn deliver(
    bus: &EventBus,
    in_flight: &InFlight,
    entries: Vec<RawEntry>,
    settings: &RedisSettings,
    history: Vec<History>,
    permit: OwnedSemaphorePermit,
    done: &UnboundedSender<Arc<Batch>>,
) -> BusState {
    let (group, max_deliveries) = (&*settings.group, settings.max_deliveries);
    let count = entries.len();
    let mut slots = Vec::with_capacity(count);
    let mut contents = Vec::with_capacity(count);
    let mut finished = Vec::with_capacity(count);
    let mut duplicate = Vec::new();
    {
        let mut set = in_flight.lock();
        let history = history
            .into_iter()
            .chain(std::iter::repeat_with(|| History {
                deliveries: 1,
                finished: Finished::none(),
            }));
        for ((index, entry), history) in entries.into_iter().enumerate().zip(history) {
            let ours = entry.is_for(group);
            let parsed = EntryId::parse(&entry.id);
            let key = parsed.filter(|key| set.insert(*key));
            if parsed.is_some() && key.is_none() {
                duplicate.push(index);
            }
            slots.push(Slot {
                id: entry.id,
                key,
                event_id: match &entry.content {
                    Content::Event(data) => Some(data.id),
                    _ => None,
                },
                deliveries: history.deliveries,
            });
            finished.push(history.finished);
            // A requeued dead letter of another group: acknowledged unread.
            contents.push(if ours {
                entry.content
            } else {
                Content::Deleted
            });
        }
    }
    let batch = Arc::new(Batch {
        slots,
        verdicts: Mutex::new((0..count).map(|_| None).collect()),
        remaining: AtomicUsize::new(count + 1),
        max_deliveries,
        done: done.clone(),
        _permit: permit,
    });
    let mut state = BusState::Open;
    for (index, content) in contents.into_iter().enumerate() {
        if duplicate.contains(&index) {
            batch.set(index, Verdict::Leave);
            batch.finish_one();
            continue;
        }
        let deliveries = batch.slots[index].deliveries;
        match content {
            Content::Deleted => batch.finish_one(),
            Content::Invalid(reason) => {
                batch.set(index, Verdict::dead(reason, &finished[index]));
                batch.finish_one();
            }
            Content::Event(_) if deliveries > max_deliveries => {
                batch.set(
                    index,
                    Verdict::dead(
                        format!(
                            "delivered {deliveries} times without being acknowledged \
                             (its consumers stopped while handling it); max_deliveries is {max_deliveries}"
                        ),
                        &finished[index],
                    ),
                );
                batch.finish_one();
            }
            Content::Event(_) if state == BusState::Closed => {
                batch.set(index, Verdict::Leave);
                batch.finish_one();
            }
            Content::Event(mut data) => {
                data.attempt = deliveries;
                let event = Event::from_data(data);
                let own = batch.clone();
                let queued = bus
                    .deliver_then(event, finished[index].clone(), move |delivery| {
                        own.delivered(index, delivery)
                    })
                    .await;
                if queued.is_err() {
                    state = BusState::Closed;
                    batch.set(index, Verdict::Leave);
                    batch.finish_one();
                }
            }
        }
    }
    batch.finish_one();
    state
}
