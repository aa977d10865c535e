//! `Consumer`: the tasks that pull a group's messages into an `EventBus`
//! and acknowledge what it handled.
//!
//! Three tasks per consumer, none per event: the reader (pulls, decodes,
//! hands events to the bus), the acker (acknowledges, retries with `nak`,
//! dead-letters) and the runner of delayed events.

mod acker;
pub(crate) use acker::Handled;
mod reader;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use earn_core::{Error, EventBus, ShutdownReport};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::done::DoneStore;
use crate::settings::StartFrom;
use crate::streams::{NatsStreams, transport};

/// The stream sequences this process is handling now, so a message
/// JetStream delivers again while its first delivery is still being
/// handled (its `ack_wait` passed) is not handled twice here.
#[derive(Default)]
pub(crate) struct InFlight(Mutex<HashSet<u64>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `sequence`; `false` if it is already being handled.
    pub(crate) fn insert(&self, sequence: u64) -> bool {
        self.lock().insert(sequence)
    }

    pub(crate) fn remove(&self, sequence: u64) {
        self.lock().remove(&sequence);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What the reader and the acker share.
pub(crate) struct Shared {
    pub(crate) streams: NatsStreams,
    pub(crate) bus: EventBus,
    pub(crate) done: DoneStore,
    /// One per message held (`max_in_flight`).
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) in_flight: Arc<InFlight>,
    /// Handled messages, to the acker.
    pub(crate) finished: mpsc::UnboundedSender<acker::Handled>,
    pub(crate) stop: Arc<watch::Sender<bool>>,
}

/// Resolves once the consumer is told to stop.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Sleeps `delay`, or less if the consumer is told to stop.
pub(crate) async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = stopped(stop) => {}
    }
}

/// A running consumer of a group ([`NatsStreams::consume`]). Stop it with
/// [`shutdown`](Consumer::shutdown); dropping it stops it too, in the
/// background, the same way.
///
/// ```no_run
/// # async fn run(streams: earn::nats::NatsStreams, bus: earn::EventBus) -> Result<(), earn::Error> {
/// use std::time::Duration;
/// let consumer = streams.consume(bus.clone()).await?;
/// // … on SIGTERM: stop pulling, let handlers finish, then the bus.
/// let report = consumer.shutdown(Duration::from_secs(10)).await;
/// if !report.drained {
///     eprintln!("{} messages were still being handled; JetStream redelivers them", report.left);
/// }
/// bus.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct Consumer {
    name: Arc<str>,
    streams: NatsStreams,
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
    pub(crate) async fn start(streams: NatsStreams, bus: EventBus) -> Result<Consumer, Error> {
        let settings = streams.settings().clone();
        let durable = ensure_group(&streams).await?;
        let done = DoneStore::open(&streams).await?;
        let delayed = crate::delayed::consumer(&streams).await?;
        let (finished, finished_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let stop = Arc::new(stop);
        let in_flight = Arc::new(InFlight::default());
        let permits = Arc::new(Semaphore::new(settings.max_in_flight));
        let acking = acker::Acking {
            streams: streams.clone(),
            done: done.clone(),
        };
        let shared = Arc::new(Shared {
            streams: streams.clone(),
            bus,
            done,
            permits,
            in_flight: in_flight.clone(),
            finished,
            stop: stop.clone(),
        });
        // Every log of the consumer's tasks names the stream, group and consumer.
        let span = tracing::info_span!(
            "earn.nats.consumer",
            stream = &*settings.stream,
            group = &*settings.group,
            consumer = &*settings.consumer,
        );
        let tasks = vec![
            tokio::spawn(
                reader::run(shared.clone(), durable, stop_rx.clone()).instrument(span.clone()),
            ),
            tokio::spawn(
                crate::delayed::run(streams.clone(), delayed, stop_rx).instrument(span.clone()),
            ),
        ];
        let acker = tokio::spawn(acker::run(acking, finished_rx).instrument(span));
        tracing::info!(
            stream = &*settings.stream,
            group = &*settings.group,
            consumer = &*settings.consumer,
            "consumer started"
        );
        Ok(Consumer {
            name: settings.consumer,
            streams,
            stop,
            in_flight,
            tasks,
            acker: Some(acker),
        })
    }

    /// Stops pulling, lets the bus finish the messages already handed to
    /// it, sends their acknowledgements, and returns; or gives up at
    /// `deadline`. What was not finished by then is not acknowledged and
    /// JetStream delivers it again after
    /// [`ack_wait`](crate::NatsSettings::ack_wait): nothing is lost either
    /// way.
    ///
    /// Shut the consumer down before the bus it delivers to.
    ///
    /// ```no_run
    /// # async fn run(consumer: earn::nats::Consumer) {
    /// let report = consumer.shutdown(std::time::Duration::from_secs(10)).await;
    /// assert!(report.drained, "{} messages left unacknowledged", report.left);
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
            // The acker ends once every message in flight has its verdict
            // carried out (the reader, gone, held the last sender).
            if let Some(acker) = &mut acker {
                let _ = acker.await;
            }
            // The acknowledgements are on their way to the server.
            let _ = self.streams.client().flush().await;
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
    /// what was delivered is redelivered after `ack_wait`. For tests of
    /// recovery.
    #[doc(hidden)]
    pub fn abort(mut self) {
        self.stop.send_replace(true);
        for task in self.tasks.drain(..).chain(self.acker.take()) {
            task.abort();
        }
    }

    /// This process's name ([`NatsSettings::consumer`](crate::NatsSettings::consumer)).
    ///
    /// ```no_run
    /// # async fn run(streams: earn::nats::NatsStreams, bus: earn::EventBus) -> Result<(), earn::Error> {
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

/// The group's durable pull consumer, created if it is missing.
async fn ensure_group(
    streams: &NatsStreams,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, Error> {
    let settings = streams.settings();
    let stream = streams
        .js()
        .get_stream(&*settings.stream)
        .await
        .map_err(transport("open the stream"))?;
    let filter_subject = match &settings.filter {
        Some(pattern) => settings.filter_subject(pattern)?,
        None => String::new(),
    };
    let config = pull::Config {
        durable_name: Some(settings.group.to_string()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        // earn counts deliveries and dead-letters past the limit; at
        // JetStream's own `max_deliver` a message would just stop coming.
        max_deliver: -1,
        // Each process bounds what it holds (`max_in_flight`).
        max_ack_pending: -1,
        filter_subject,
        deliver_policy: match settings.start {
            StartFrom::Beginning => DeliverPolicy::All,
            StartFrom::New => DeliverPolicy::New,
        },
        ..Default::default()
    };
    stream
        .get_or_create_consumer(&settings.group, config)
        .await
        .map_err(transport("create the group"))
}
