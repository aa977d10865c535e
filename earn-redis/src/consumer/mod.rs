//! `Consumer`: the tasks that read a stream into an `EventBus` and
//! acknowledge what it handled.
//!
//! Four tasks per consumer, none per event: the reader (own pending
//! entries, then new ones), the claimer (`XAUTOCLAIM`), housekeeping
//! (delayed events, trimming) and the acker.

mod acker;
mod batch;
mod claimer;
mod housekeeping;
mod reader;

use std::sync::Arc;
use std::time::Duration;

use earn_core::{Error, EventBus, Finished, ShutdownReport};
use redis::Value;
use redis::aio::ConnectionManager;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::entry;
use crate::settings::RedisSettings;
use crate::streams::{RedisStreams, connection_config};
use batch::{Batch, History, InFlight};

/// What the reader's connection allows beyond the `BLOCK` time before a
/// read counts as failed.
const READ_MARGIN: Duration = Duration::from_secs(2);

/// What the reader and the claimer share.
pub(crate) struct Shared {
    pub(crate) streams: RedisStreams,
    pub(crate) bus: EventBus,
    /// One per batch in flight (`workers`).
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) in_flight: Arc<InFlight>,
    /// Finished batches, to the acker.
    pub(crate) finished: mpsc::UnboundedSender<Arc<Batch>>,
    stop: Arc<watch::Sender<bool>>,
}

impl Shared {
    /// Hands `entries` (with their delivery counts) to the bus as one
    /// batch holding `permit`, each with the handlers that finished with it
    /// in an earlier delivery; `false` once the bus is shut down and the
    /// consumer stops.
    pub(crate) async fn deliver(
        &self,
        settings: &RedisSettings,
        entries: Vec<entry::RawEntry>,
        deliveries: &[u32],
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> bool {
        let history = match history(&self.streams, &entries, deliveries).await {
            Ok(history) => history,
            Err(error) => {
                tracing::warn!(
                    %error,
                    "cannot read which handlers finished {} redelivered entries; they stay \
                     pending and are delivered again after claim_idle",
                    entries.len()
                );
                return true;
            }
        };
        let state = batch::deliver(
            &self.bus,
            &self.in_flight,
            entries,
            settings,
            history,
            permit,
            &self.finished,
        )
        .await;
        if state == batch::BusState::Closed {
            self.bus_closed(settings);
            return false;
        }
        true
    }

    /// The bus refused an event because it was shut down: stop consuming
    /// rather than let entries pile up undelivered.
    pub(crate) fn bus_closed(&self, settings: &RedisSettings) {
        tracing::error!(
            stream = &*settings.stream,
            group = &*settings.group,
            consumer = &*settings.consumer,
            "the event bus was shut down while the consumer was running; the consumer stops \
             (shut the consumer down before the bus); unhandled entries stay pending"
        );
        self.stop.send_replace(true);
    }
}

/// Resolves once the consumer is told to stop.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}

pub(crate) fn is_stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// Sleeps `delay`, or less if the consumer is told to stop.
pub(crate) async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = stopped(stop) => {}
    }
}

/// The delivery count of each pending entry (`XPENDING` per id, in one
/// pipeline); 1 for an entry no longer pending.
pub(crate) async fn delivery_counts(
    streams: &RedisStreams,
    ids: &[&str],
) -> Result<Vec<u32>, redis::RedisError> {
    let settings = streams.settings();
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("XPENDING")
            .arg(&*settings.stream)
            .arg(&*settings.group)
            .arg(*id)
            .arg(*id)
            .arg(1);
    }
    let replies: Vec<Value> = pipe.query_async(&mut streams.conn()).await?;
    Ok(replies.iter().map(pending_count).collect())
}

/// Each entry's delivery count and the handlers finished with it: those
/// named by a requeued dead letter, and, for an entry delivered before,
/// those recorded in its set (`SMEMBERS`, one pipeline, only for such
/// entries).
async fn history(
    streams: &RedisStreams,
    entries: &[entry::RawEntry],
    deliveries: &[u32],
) -> Result<Vec<History>, redis::RedisError> {
    let settings = streams.settings();
    let redelivered: Vec<usize> = (0..entries.len())
        .filter(|&i| deliveries.get(i).is_some_and(|&n| n > 1))
        .collect();
    let mut sets: Vec<Vec<String>> = Vec::new();
    if !redelivered.is_empty() {
        let mut pipe = redis::pipe();
        for &i in &redelivered {
            pipe.cmd("SMEMBERS").arg(settings.done_key(&entries[i].id));
        }
        sets = pipe.query_async(&mut streams.conn()).await?;
    }
    let mut sets = redelivered.into_iter().zip(sets).peekable();
    Ok(entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let recorded = sets.next_if(|(at, _)| *at == i).map(|(_, set)| set);
            let names = entry
                .finished
                .iter()
                .cloned()
                .chain(recorded.into_iter().flatten());
            History {
                deliveries: deliveries.get(i).copied().unwrap_or(1),
                finished: Finished::from_names(names),
            }
        })
        .collect())
}

/// The count of `[[id, consumer, idle, count]]`.
fn pending_count(reply: &Value) -> u32 {
    let Value::Array(rows) = reply else { return 1 };
    match rows.first() {
        Some(Value::Array(row)) => row
            .get(3)
            .and_then(entry::integer)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1),
        _ => 1,
    }
}

/// A running consumer of a stream's group
/// ([`RedisStreams::consume`]). Stop it with [`shutdown`](Consumer::shutdown);
/// dropping it stops it too, in the background, the same way.
///
/// ```no_run
/// # async fn run(streams: earn::redis::RedisStreams, bus: earn::EventBus) -> Result<(), earn::Error> {
/// use std::time::Duration;
/// let consumer = streams.consume(bus.clone()).await?;
/// // … on SIGTERM: stop reading, let handlers finish, then the bus.
/// let report = consumer.shutdown(Duration::from_secs(10)).await;
/// if !report.drained {
///     eprintln!("{} entries were still being handled; they stay pending", report.left);
/// }
/// bus.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct Consumer {
    name: Arc<str>,
    stop: Arc<watch::Sender<bool>>,
    in_flight: Arc<InFlight>,
    tasks: Vec<JoinHandle<()>>,
    acker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl Consumer {
    pub(crate) async fn start(streams: RedisStreams, bus: EventBus) -> Result<Consumer, Error> {
        let settings = streams.settings().clone();
        // A blocking read holds its connection for up to `block`: it gets
        // one of its own, so publishing and acknowledging never wait on it.
        let reader_conn = ConnectionManager::new_with_config(
            streams.inner.client.clone(),
            connection_config(settings.block + READ_MARGIN),
        )
        .await
        .map_err(|error| streams.inner.connection.connect_error(error))?;
        let (finished, finished_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let stop = Arc::new(stop);
        let in_flight = Arc::new(InFlight::default());
        let shared = Arc::new(Shared {
            streams: streams.clone(),
            bus,
            permits: Arc::new(Semaphore::new(settings.workers)),
            in_flight: in_flight.clone(),
            finished,
            stop: stop.clone(),
        });
        // Every log of the consumer's tasks names the stream, group and consumer.
        let span = tracing::info_span!(
            "earn.redis.consumer",
            stream = &*settings.stream,
            group = &*settings.group,
            consumer = &*settings.consumer,
        );
        let tasks = vec![
            tokio::spawn(
                reader::run(shared.clone(), reader_conn, stop_rx.clone()).instrument(span.clone()),
            ),
            tokio::spawn(claimer::run(shared, stop_rx.clone()).instrument(span.clone())),
            tokio::spawn(housekeeping::run(streams.clone(), stop_rx).instrument(span.clone())),
        ];
        tracing::info!(
            stream = &*settings.stream,
            group = &*settings.group,
            consumer = &*settings.consumer,
            server = %streams.inner.connection,
            "consumer started"
        );
        let acker =
            tokio::spawn(acker::run(streams, in_flight.clone(), finished_rx).instrument(span));
        Ok(Consumer {
            name: settings.consumer,
            stop,
            in_flight,
            tasks,
            acker: Some(acker),
        })
    }

    /// Stops reading, lets the bus finish the entries already handed to it,
    /// writes their acknowledgements, and returns; or gives up at
    /// `deadline`. What was not finished by then stays pending in Redis and
    /// is delivered again (to this consumer name on its next start, or to
    /// any consumer after `claim_idle`): nothing is lost either way.
    ///
    /// Shut the consumer down before the bus it delivers to.
    ///
    /// Dropping the returned future stops only the wait: the consumer was
    /// told to stop and its tasks end by themselves.
    ///
    /// ```no_run
    /// # async fn run(consumer: earn::redis::Consumer) {
    /// let report = consumer.shutdown(std::time::Duration::from_secs(10)).await;
    /// assert!(report.drained, "{} entries left pending", report.left);
    /// # }
    /// ```
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        self.stop.send_replace(true);
        let mut tasks = std::mem::take(&mut self.tasks);
        let mut acker = self.acker.take();
        let finish = async {
            for task in &mut tasks {
                let _ = task.await;
            }
            // The acker ends once every batch is acknowledged.
            if let Some(acker) = &mut acker {
                let _ = acker.await;
            }
        };
        let drained = tokio::time::timeout(deadline, finish).await.is_ok();
        for task in tasks.iter().chain(&acker) {
            task.abort();
        }
        let left = self.in_flight.len();
        tracing::info!(consumer = &*self.name, drained, left, "consumer stopped");
        ShutdownReport { drained, left }
    }

    /// Stops at once without acknowledging anything, as a crash would:
    /// what was read stays pending. For tests of recovery.
    #[doc(hidden)]
    pub fn abort(mut self) {
        self.stop.send_replace(true);
        for task in self.tasks.drain(..).chain(self.acker.take()) {
            task.abort();
        }
    }

    /// The consumer's name in its group.
    ///
    /// ```no_run
    /// # async fn run(streams: earn::redis::RedisStreams, bus: earn::EventBus) -> Result<(), earn::Error> {
    /// let consumer = streams.consume(bus).await?;
    /// assert_eq!(consumer.name(), streams.settings().get_consumer());
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Stops as `shutdown` does, without waiting: the tasks end by
        // themselves once what is in flight is acknowledged.
        self.stop.send_replace(true);
    }
}
