//! `EventBus`: inline `emit`, queued `publish` with retries and dead
//! letters, run-time subscriptions, `wait_for`, `shutdown`.

mod builder;
mod completion;
mod dead_letter;
mod dispatch;
mod error;
mod in_flight;
mod retry;
mod scope;
mod stats;
mod subscriptions;
mod timer;
mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use crate::dead_letter::DeadLetter;
pub use builder::EventBusBuilder;
pub use completion::{Delivery, Finished};
pub use dead_letter::{BusDeadLetters, DeadLetterStore, MemoryDeadLetters};
pub use dispatch::EmitReport;
pub use error::{BusError, Overflow, ShutdownReport};
pub use retry::RetryPolicy;
pub use scope::SubscriptionGuard;
pub use stats::HandlerStats;
pub use subscriptions::SubscriptionId;

use tracing::Instrument;

use crate::event::Event;
use crate::handler::{HandlerStep, IntoHandlerResult};
use crate::pattern::Pattern;
use crate::service::{Attachment, Service};
use completion::{Completion, Owner};
use subscriptions::{Registry, Resolved, Subscription};
use worker::Job;

/// State the workers share with the bus.
struct Shared {
    registry: RwLock<Registry>,
    config: builder::Config,
    dead_letters: Arc<dyn DeadLetterStore>,
    /// Published events not yet fully handled (queued, retrying, delayed).
    in_flight: in_flight::InFlight,
    /// Handler calls made and failed.
    stats: stats::Stats,
    closed: AtomicBool,
}

impl Shared {
    fn resolve(&self, name: &str) -> Resolved {
        if let Some(found) = read(&self.registry).cached(name) {
            return found;
        }
        write(&self.registry).resolve(name)
    }
}

fn read(registry: &RwLock<Registry>) -> std::sync::RwLockReadGuard<'_, Registry> {
    registry
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(registry: &RwLock<Registry>) -> std::sync::RwLockWriteGuard<'_, Registry> {
    registry
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Inner {
    shared: Arc<Shared>,
    /// The one queue every worker takes from. The timer holds it weakly,
    /// so dropping every handle of the bus closes it and stops the workers.
    queue: async_channel::Sender<Job>,
    timer: timer::TimerHandle,
}

/// An event bus. Cheap to clone; clones share handlers, queue and dead
/// letters.
///
/// [`emit`](Self::emit) runs handlers inline; [`publish`](Self::publish)
/// queues events for a pool of worker tasks sharing one bounded queue
/// (a free worker takes the next event); [`deliver`](Self::deliver) is
/// the transports' way in (Redis Streams, the outbox relay).
///
/// # Cancellation
///
/// Every future the bus returns can be dropped at any point without
/// leaving a count, a subscription or a task behind:
///
/// - [`publish`](Self::publish), [`publish_then`](Self::publish_then),
///   [`deliver_then`](Self::deliver_then) and a requeue of a dead letter ([`dead_letter_source`](Self::dead_letter_source)):
///   dropped while waiting for room in the queue, the event is not queued
///   (a requeued dead letter stays in the store). Once queued it is the
///   bus's and runs whatever happens to the future.
/// - [`deliver`](Self::deliver) / [`redeliver`](Self::redeliver): as
///   above; dropped after the event was queued, the handlers still run and
///   the [`Delivery`] is discarded.
/// - [`wait_for`](Self::wait_for): its subscription is removed when the
///   future is dropped, polled or not.
/// - [`wait_idle`](Self::wait_idle), [`shutdown`](Self::shutdown): only
///   the wait stops (the bus stays closed after a dropped `shutdown`).
/// - [`emit`](Self::emit): the handler running at that moment is dropped at
///   its `.await` and the handlers after it do not run.
///
/// [`publish_delayed`](Self::publish_delayed) is not async: once it
/// returns `Ok` the event belongs to the bus.
///
/// ```
/// use earn::{Event, EventBus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::builder().without_registered_handlers().build()?;
/// bus.subscribe_sync("user.*", 0, |event: &Event| println!("saw {}", event.name()))?;
/// let report = bus.emit(Event::new("user.created", &42)?).await;
/// assert_eq!(report.ran(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("handlers", &read(&self.inner.shared.registry).len())
            .field("in_flight", &self.inner.shared.in_flight.count())
            .finish()
    }
}

impl EventBus {
    /// A builder with the defaults.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::default()
    }

    /// The process-wide default bus, with every `#[event_handler]`. Its
    /// workers run on a runtime of their own, so it works from any runtime
    /// (and from tests that each start one).
    pub fn global() -> &'static EventBus {
        static GLOBAL: OnceLock<EventBus> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("earn-bus")
                .enable_all()
                .build()
                .unwrap_or_else(|error| {
                    panic!("cannot start the default event bus runtime: {error}")
                });
            let bus = EventBus::builder()
                .runtime(runtime.handle().clone())
                .build()
                .unwrap_or_else(|error| panic!("cannot build the default event bus: {error}"));
            // The runtime lives as long as the process.
            #[allow(
                clippy::mem_forget,
                reason = "the bus is static: its runtime must never stop"
            )]
            std::mem::forget(runtime);
            bus
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn add(
        &self,
        pattern: &str,
        priority: i32,
        call: subscriptions::CallFn,
    ) -> Result<SubscriptionId, BusError> {
        self.add_subscription(pattern, priority, call, false)
    }

    fn add_subscription(
        &self,
        pattern: &str,
        priority: i32,
        call: subscriptions::CallFn,
        batched: bool,
    ) -> Result<SubscriptionId, BusError> {
        let pattern = Pattern::new(pattern)?;
        let id = Registry::next_id();
        let subscription = Subscription {
            id,
            name: format!("subscription#{id}@{pattern}").into(),
            pattern,
            priority,
            filter: None,
            retries: None,
            timeout: None,
            call,
            batched,
        };
        Ok(write(&self.shared().registry).insert(subscription))
    }

    /// Subscribes a call whose events a worker hands over without waiting
    /// for their outcome (batches, aggregation windows).
    pub(crate) fn subscribe_deferred(
        &self,
        pattern: &str,
        call: subscriptions::CallFn,
    ) -> Result<SubscriptionId, BusError> {
        self.add_subscription(pattern, 0, call, true)
    }

    /// A handle that does not keep the bus alive.
    pub(crate) fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.inner))
    }

    /// Subscribes an async closure that takes events in batches (NeonEx's
    /// EventBatcher): it is called with up to `size` events once that many
    /// wait, or `linger` after the first one arrived. Delivery stays per
    /// event: each event succeeds or fails with its batch, or alone when
    /// the closure names it ([`BatchError::at`](crate::BatchError::at)),
    /// and is retried and dead-lettered alone. Workers hand events to the
    /// batch and go on, so a batch fills while the queue drains;
    /// [`emit`](Self::emit) waits for its event's batch (use
    /// [`emit_all`](Self::emit_all) to fill one).
    ///
    /// ```
    /// use std::time::Duration;
    /// use earn::{BatchError, Event, EventBus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// bus.subscribe_batch("metric.*", 0, 100, Duration::from_millis(50), |events: Vec<Event>| async move {
    ///     println!("storing {} readings in one insert", events.len());
    ///     Ok::<_, BatchError>(())
    /// })?;
    /// let readings = (0..250).map(|i| Event::new("metric.cpu", &i)).collect::<Result<Vec<_>, _>>()?;
    /// bus.publish_all(readings).await?; // three calls: 100, 100, 50
    /// bus.wait_idle().await;
    /// # Ok(()) }
    /// ```
    pub fn subscribe_batch<F, Fut, R>(
        &self,
        pattern: &str,
        priority: i32,
        size: usize,
        linger: Duration,
        handler: F,
    ) -> Result<SubscriptionId, BusError>
    where
        F: Fn(Vec<Event>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: crate::batch::IntoBatchResult,
    {
        let run: crate::batch::BatchFn = Arc::new(move |events: Vec<Event>| {
            let future = handler(events);
            Box::pin(async move { future.await.into_batch_result() }) as crate::batch::BatchStep
        });
        let call = subscriptions::batched(size, linger, run);
        self.add_subscription(pattern, priority, call, true)
    }

    /// Attaches a service: each of its `#[event_handler]` methods becomes a
    /// subscription holding the service, until [`detach`](EventBus::detach).
    pub fn attach<S: Service>(&self, service: Arc<S>) -> Result<Attachment, BusError> {
        self.attach_calls::<S>(|handler| {
            let call = handler.call;
            let service = service.clone();
            Arc::new(move |event: &Event| call(&service, event))
        })
    }

    /// Subscribes each handler of `S` with the call `make` builds for it.
    fn attach_calls<S: Service>(
        &self,
        make: impl Fn(&crate::service::ServiceHandler<S>) -> subscriptions::CallFn,
    ) -> Result<Attachment, BusError> {
        let mut ids = Vec::new();
        for handler in S::handlers() {
            let call = make(handler);
            match Subscription::from_options(handler.name, &handler.options, call) {
                Ok(subscription) => ids.push(write(&self.shared().registry).insert(subscription)),
                Err(error) => {
                    self.detach(Attachment { ids });
                    return Err(error.into());
                }
            }
        }
        Ok(Attachment { ids })
    }

    /// Removes every handler of an attached service; returns how many.
    pub fn detach(&self, attachment: Attachment) -> usize {
        let mut registry = write(&self.shared().registry);
        attachment
            .ids
            .into_iter()
            .filter(|id| registry.remove(*id))
            .count()
    }

    /// Subscribes an async closure to `pattern`. Higher `priority` runs
    /// first; equal priorities run in subscription order.
    pub fn subscribe<F, Fut, R>(
        &self,
        pattern: &str,
        priority: i32,
        handler: F,
    ) -> Result<SubscriptionId, BusError>
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHandlerResult,
    {
        self.add(
            pattern,
            priority,
            Arc::new(move |event: &Event| {
                let future = handler(event.clone());
                HandlerStep::Pending(Box::pin(async move { future.await.into_handler_result() }))
            }),
        )
    }

    /// Subscribes a synchronous closure (no allocation per call).
    pub fn subscribe_sync<F, R>(
        &self,
        pattern: &str,
        priority: i32,
        handler: F,
    ) -> Result<SubscriptionId, BusError>
    where
        F: Fn(&Event) -> R + Send + Sync + 'static,
        R: IntoHandlerResult,
    {
        self.add(
            pattern,
            priority,
            Arc::new(move |event: &Event| HandlerStep::Ready(handler(event).into_handler_result())),
        )
    }

    /// Removes a subscription; `false` if it was not there.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        write(&self.shared().registry).remove(id)
    }

    /// Runs the handlers matching `event` now, in priority order, and
    /// reports what ran. A handler that fails, panics or times out is
    /// reported and the next one still runs; one returning
    /// [`Propagation::Stop`](crate::Propagation::Stop) ends the dispatch.
    ///
    /// Dropping the future stops the dispatch at the running handler
    /// (nothing is left counted or subscribed).
    pub async fn emit(&self, event: Event) -> EmitReport {
        let event = dispatch::inherit(event);
        metrics::counter!("earn_events_emitted_total").increment(1);
        let handlers = self.shared().resolve(event.name().as_str());
        let timeout = self.shared().config.handler_timeout;
        let span = dispatch::emit_span(&event);
        let shared = self.shared();
        let envelope = &shared.config.envelope;
        // Entering a span that no subscriber wants still costs a few
        // nanoseconds per poll: skip it then. (One dispatch future per
        // branch: built before the branch, it would be held twice over.)
        if span.is_disabled() {
            dispatch::emit(handlers, &event, envelope, timeout, &shared.stats).await
        } else {
            dispatch::emit(handlers, &event, envelope, timeout, &shared.stats)
                .instrument(span)
                .await
        }
    }

    /// Queues `event` for the workers. With [`Overflow::Wait`] this waits
    /// for room in the queue; with [`Overflow::Error`] a full queue is an
    /// error. Failing handlers are retried with the bus's
    /// [`RetryPolicy`], then dead-lettered.
    ///
    /// Cancel-safe: dropped while it waits for room, the event is not
    /// queued and nothing of it is left counted.
    ///
    /// With the `otel` feature the event takes the current span's trace
    /// context (`earn::trace_context::inject`), and its handlers run in a
    /// consumer span of that trace on the worker.
    pub async fn publish(&self, event: Event) -> Result<(), BusError> {
        self.publish_job(event, None, Seal::Here).await
    }

    /// Runs the handlers of every event of `events` now, the events side
    /// by side in this task (Nexios's `gather`), each dispatched as
    /// [`emit`](EventBus::emit) does; returns their reports in the order
    /// given. Dropping the future stops every dispatch at its running
    /// handler.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = earn::EventBus::builder().without_registered_handlers().build()?;
    /// bus.subscribe("metric.*", 0, |event: earn::Event| async move {
    ///     println!("{}", event.name());
    /// })?;
    /// let readings = (0..3).map(|i| earn::Event::new("metric.cpu", &i)).collect::<Result<Vec<_>, _>>()?;
    /// let reports = bus.emit_all(readings).await;
    /// assert!(reports.iter().all(|report| report.ran() == 1));
    /// # Ok(()) }
    /// ```
    pub async fn emit_all(&self, events: impl IntoIterator<Item = Event>) -> Vec<EmitReport> {
        type Dispatch<'a> =
            std::pin::Pin<Box<dyn std::future::Future<Output = EmitReport> + Send + 'a>>;
        let mut running: Vec<Dispatch<'_>> = events
            .into_iter()
            .map(|event| Box::pin(self.emit(event)) as Dispatch<'_>)
            .collect();
        let mut reports: Vec<Option<EmitReport>> = running.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut waiting = false;
            for (dispatch, report) in running.iter_mut().zip(reports.iter_mut()) {
                if report.is_none() {
                    match dispatch.as_mut().poll(cx) {
                        std::task::Poll::Ready(done) => *report = Some(done),
                        std::task::Poll::Pending => waiting = true,
                    }
                }
            }
            if waiting {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        reports.into_iter().flatten().collect()
    }

    /// Queues every event of `events` for the workers, in order: the
    /// bus's side of a batch (the Redis and NATS transports send theirs in
    /// pipelines, the outbox in multi-row inserts). Stops at the first
    /// refusal ([`Overflow::Error`] with a full queue, a bus shut down):
    /// the events before it are queued, the rest are not.
    pub async fn publish_all(
        &self,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<(), BusError> {
        for event in events {
            self.publish_job(event, None, Seal::Here).await?;
        }
        Ok(())
    }

    /// [`publish`](EventBus::publish), then calls `on_handled` once every
    /// handler of the event has finished with it: succeeded, or given up
    /// and dead-lettered it, retries included. The transactional outbox
    /// deletes its row there, so a crash before that point redelivers
    /// instead of losing the event. Not called if the event is refused.
    ///
    /// Cancel-safe like `publish`: dropped before the event is queued,
    /// `on_handled` is dropped uncalled.
    pub async fn publish_then(
        &self,
        event: Event,
        on_handled: impl FnOnce() + Send + 'static,
    ) -> Result<(), BusError> {
        self.publish_handled(event, on_handled, Seal::Here).await
    }

    /// [`publish_then`](Self::publish_then) of an event sealed where it
    /// was stored (the outbox's [`EventSink`](crate::EventSink) hand-over)
    /// or of one sealed here.
    pub(crate) async fn publish_handled(
        &self,
        event: Event,
        on_handled: impl FnOnce() + Send + 'static,
        seal: Seal,
    ) -> Result<(), BusError> {
        let done = Completion::new(
            Owner::Bus,
            Finished::none(),
            Box::new(move |_| on_handled()),
        );
        self.publish_job(event, Some(done), seal).await
    }

    /// Runs `event`'s handlers on the workers and resolves with how they
    /// finished: for a transport that redelivers (Redis Streams leaves an
    /// entry unacknowledged) and so owns the failures.
    ///
    /// Each handler gets one attempt per delivery: the bus does not retry
    /// and does not dead-letter here; a handler that fails is in the
    /// returned [`Delivery`], and the transport's delivery limit is the one
    /// budget. [`Event::attempt`] is the transport's delivery count. Give
    /// the [`Delivery::finished`] handlers to [`redeliver`](Self::redeliver)
    /// next time, so only the ones that failed run again. Waits for room
    /// in the queue whatever the overflow policy.
    ///
    /// Cancel-safe: dropped while waiting for room, the event is not
    /// queued; dropped later, its handlers still run and the `Delivery` is
    /// discarded.
    ///
    /// ```
    /// use earn::{DeadLetterFilter, DeadLetters, Event, EventBus, HandlerError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// bus.subscribe_sync("job.*", 1, |_event: &Event| ())?;
    /// bus.subscribe("job.*", 0, |_event: Event| async { Err::<(), _>(HandlerError::msg("busy")) })?;
    /// let delivery = bus.deliver(Event::new("job.run", &1)?).await?;
    /// assert_eq!(delivery.failures().len(), 1); // one attempt, no local retry
    /// assert_eq!(delivery.finished().len(), 1);
    /// let dead = bus.dead_letter_source().count(&DeadLetterFilter::default()).await?;
    /// assert_eq!(dead, 0); // the caller owns the failure
    /// # Ok(()) }
    /// ```
    pub async fn deliver(&self, event: Event) -> Result<Delivery, BusError> {
        self.redeliver(event, Finished::none()).await
    }

    /// [`deliver`](Self::deliver) again an event some of whose handlers
    /// already finished with it in an earlier delivery: those in
    /// `finished` are skipped (and reported finished again).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use earn::{Event, EventBus, Finished, HandlerError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// let receipts = Arc::new(AtomicU32::new(0));
    /// let sent = receipts.clone();
    /// bus.subscribe_sync("order.*", 1, move |_: &Event| { sent.fetch_add(1, Ordering::SeqCst); })?;
    /// bus.subscribe_sync("order.*", 0, |e: &Event| {
    ///     if e.attempt() == 1 { Err(HandlerError::msg("ledger down")) } else { Ok(()) }
    /// })?;
    /// let event = Event::new("order.paid", &7)?;
    /// let first = bus.deliver(event.clone()).await?;
    /// assert!(!first.is_ok());
    /// // The transport delivers it again, with the handlers that finished.
    /// let second = bus
    ///     .redeliver(event.with_attempt(2), Finished::from_names(first.finished().iter().cloned()))
    ///     .await?;
    /// assert!(second.is_ok());
    /// assert_eq!(receipts.load(Ordering::SeqCst), 1, "the receipt is not sent twice");
    /// # Ok(()) }
    /// ```
    pub async fn redeliver(&self, event: Event, finished: Finished) -> Result<Delivery, BusError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.deliver_then(event, finished, move |delivery| {
            let _ = sender.send(delivery);
        })
        .await?;
        Ok(receiver.await.unwrap_or_default())
    }

    /// [`redeliver`](Self::redeliver) without waiting: returns once the
    /// event is queued and calls `on_done` when its handlers finished.
    /// Give [`Finished::none()`] for a first delivery.
    ///
    /// Cancel-safe: dropped before the event is queued, `on_done` is
    /// dropped uncalled and nothing is left counted.
    pub async fn deliver_then(
        &self,
        event: Event,
        finished: Finished,
        on_done: impl FnOnce(Delivery) + Send + 'static,
    ) -> Result<(), BusError> {
        let done = Completion::new(Owner::Transport, finished, Box::new(on_done));
        self.publish_job(event, Some(done), Seal::Sealed).await
    }

    async fn publish_job(
        &self,
        event: Event,
        done: Option<Arc<Completion>>,
        seal: Seal,
    ) -> Result<(), BusError> {
        if self.shared().closed.load(Ordering::Acquire) {
            return Err(BusError::Closed {
                event: event.name().to_string(),
            });
        }
        let delivered = done
            .as_ref()
            .is_some_and(|done| done.owner == Owner::Transport);
        // A transport's delivery waits: it holds the event durably and
        // must not be told "full" for work it cannot put anywhere else.
        let overflow = if delivered {
            Overflow::Wait
        } else {
            self.shared().config.overflow
        };
        let event = dispatch::inherit(event);
        // An event this process publishes leaves the current span; one a
        // transport delivers is being consumed, not produced.
        #[cfg(feature = "otel")]
        let event = if delivered {
            event
        } else {
            crate::trace_context::inject(event)
        };
        let event = match seal {
            Seal::Here => self.shared().config.envelope.seal(event)?,
            Seal::Sealed => event,
        };
        self.enqueue(
            Job {
                event,
                target: None,
                done,
            },
            overflow,
        )
        .await
    }

    /// Puts `job` in the queue. The event counts as in flight from here
    /// on; refused, or dropped while waiting, it does not.
    async fn enqueue(&self, job: Job, overflow: Overflow) -> Result<(), BusError> {
        let shared = self.shared();
        let claim = shared.in_flight.claim();
        let queue = &self.inner.queue;
        match overflow {
            Overflow::Wait => queue.send(job).await.map_err(|refused| BusError::Closed {
                event: refused.0.event.name().to_string(),
            })?,
            Overflow::Error => queue.try_send(job).map_err(|refused| match refused {
                async_channel::TrySendError::Full(job) => BusError::QueueFull {
                    capacity: shared.config.capacity,
                    event: job.event.name().to_string(),
                },
                async_channel::TrySendError::Closed(job) => BusError::Closed {
                    event: job.event.name().to_string(),
                },
            })?,
        }
        claim.keep();
        metrics::counter!("earn_events_published_total").increment(1);
        Ok(())
    }

    /// Publishes `event` after `delay`. From now on the bus holds it: it
    /// counts in [`in_flight`](Self::in_flight), [`wait_idle`](Self::wait_idle)
    /// and [`shutdown`](Self::shutdown), and when it is due it enters the
    /// queue, waiting for room whatever the overflow policy. The timer runs
    /// on the bus's runtime, not the caller's. If the bus can no longer run
    /// it (every handle dropped, its runtime shut down), each matching
    /// handler dead-letters it with the reason.
    pub fn publish_delayed(&self, event: Event, delay: Duration) -> Result<(), BusError> {
        let shared = self.shared();
        if shared.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed {
                event: event.name().to_string(),
            });
        }
        let event = dispatch::inherit(event);
        #[cfg(feature = "otel")]
        let event = crate::trace_context::inject(event);
        let event = shared.config.envelope.seal(event)?;
        let name = event.name().to_string();
        let claim = shared.in_flight.claim();
        let now = tokio::time::Instant::now();
        // A delay past any real due time (`Duration::MAX`) waits "for ever".
        let due = now
            .checked_add(delay)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let job = Job {
            event,
            target: None,
            done: None,
        };
        self.inner
            .timer
            .schedule(job, due)
            .map_err(|_| BusError::Closed { event: name })?;
        claim.keep();
        Ok(())
    }

    /// Waits for the next event matching `pattern`. The subscription is
    /// made when `wait_for` is called, so an event published right after is
    /// seen even if the future is awaited later.
    ///
    /// Cancel-safe: the subscription belongs to the returned future;
    /// dropping it, polled or not, unsubscribes.
    pub fn wait_for(
        &self,
        pattern: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Event, BusError>> + Send + 'static {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let slot = Mutex::new(Some(sender));
        let subscribed = self
            .subscribe_sync(pattern, i32::MAX, move |event: &Event| {
                if let Some(sender) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = sender.send(event.clone());
                }
            })
            .map(|id| Unsubscribe {
                bus: self.clone(),
                id,
            });
        let pattern = pattern.to_owned();
        async move {
            let _subscription = subscribed?;
            match tokio::time::timeout(timeout, receiver).await {
                Ok(Ok(event)) => Ok(event),
                _ => Err(BusError::Timeout { pattern, timeout }),
            }
        }
    }

    /// Publishes `event` as a request and waits for its reply: the event
    /// a handler sends with [`reply::send`](crate::reply::send), correlated with the
    /// request by its id (Nexus's request-response). The request is
    /// queued like [`publish`](Self::publish) and carries `earn-reply-to:
    /// bus`.
    ///
    /// A handler answers with [`earn::reply::send`](crate::reply::send).
    /// A request no handler of this bus matches fails at once with
    /// [`BusError::NoResponder`]; one not answered within `timeout` with
    /// [`BusError::NoReply`]. Cancel-safe: dropped, it stops waiting, and
    /// a late reply is dropped (logged at debug level). Across processes,
    /// use the `request` of Redis Streams or NATS.
    ///
    /// ```
    /// use std::time::Duration;
    /// use earn::{Event, EventBus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// bus.subscribe("price.quote", 0, |request: Event| async move {
    ///     let sku: String = request.payload()?;
    ///     earn::reply::send(&request, &format!("{sku}: 12.50")).await?;
    ///     Ok::<_, earn::HandlerError>(())
    /// })?;
    /// let reply = bus
    ///     .request(Event::new("price.quote", "BOOK-1")?, Duration::from_secs(1))
    ///     .await?;
    /// assert_eq!(reply.payload::<String>()?, "BOOK-1: 12.50");
    /// assert_eq!(reply.name().as_str(), "price.quote.reply");
    /// # Ok(()) }
    /// ```
    pub async fn request(&self, event: Event, timeout: Duration) -> Result<Event, BusError> {
        let name = event.name().to_string();
        if self.shared().resolve(&name).subs.is_empty() {
            return Err(BusError::NoResponder { event: name });
        }
        let event = event.with_meta(crate::reply::REPLY_TO, "bus");
        let id = event.id();
        let waiting = crate::reply::waiters().wait(id);
        self.publish(event).await?;
        waiting.reply(timeout).await.ok_or(BusError::NoReply {
            event: name,
            id,
            timeout,
        })
    }

    /// Stops accepting events and waits until every queued event, retry
    /// and delayed event is handled, or `deadline` passes. What was
    /// accepted before still runs after the deadline; the report says how
    /// much was left.
    ///
    /// Cancel-safe: dropping it stops the wait only; the bus stays closed
    /// to new events.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let shared = self.shared();
        shared.closed.store(true, Ordering::Release);
        let drained = tokio::time::timeout(deadline, self.wait_idle())
            .await
            .is_ok();
        ShutdownReport {
            drained,
            left: shared.in_flight.count(),
        }
    }

    /// Waits until no published event is queued, being handled, retrying
    /// or delayed. Cancel-safe.
    pub async fn wait_idle(&self) {
        self.shared().in_flight.wait_idle().await;
    }

    /// How many handler calls this bus made, and how many failed, since it
    /// was built (each attempt counts).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use earn::{Event, EventBus, HandlerError};
    ///
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// bus.subscribe_sync("job.ok", 0, |_: &Event| ())?;
    /// bus.subscribe_sync("job.bad", 0, |_: &Event| Err::<(), _>(HandlerError::msg("no")))?;
    /// bus.emit(Event::new("job.ok", &1)?).await;
    /// bus.emit(Event::new("job.bad", &1)?).await;
    /// let stats = bus.handler_stats();
    /// assert_eq!((stats.succeeded, stats.failed), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn handler_stats(&self) -> HandlerStats {
        self.shared().stats.snapshot()
    }

    /// Events published and not yet fully handled: queued, being handled,
    /// waiting for a retry or delayed.
    ///
    /// Workers subtract what they handled in groups, when the queue runs
    /// empty or every 64 events, so under a steady load this may still
    /// count a few dozen events per worker that were just handled; it never
    /// counts fewer than are left, and [`wait_idle`](Self::wait_idle)
    /// returns only once every one is handled.
    pub fn in_flight(&self) -> usize {
        self.shared().in_flight.count()
    }

    /// The bus's dead letters as a [`DeadLetters`](crate::DeadLetters)
    /// source: list, count, requeue (to the handler that gave up only,
    /// from attempt 1), delete, purge.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), earn::Error> {
    /// use earn::{DeadLetterFilter, DeadLetters, EventBus, PageRequest};
    ///
    /// let bus = EventBus::builder().without_registered_handlers().build()?;
    /// let dead = bus.dead_letter_source();
    /// let all = DeadLetterFilter::default();
    /// for letter in dead.list(&all, PageRequest::first(50)).await? {
    ///     println!("{letter}");
    ///     dead.requeue(&letter.id).await?;
    /// }
    /// assert_eq!(dead.count(&all).await?, 0);
    /// # Ok(()) }
    /// ```
    pub fn dead_letter_source(&self) -> BusDeadLetters {
        BusDeadLetters { bus: self.clone() }
    }

    /// Publishes the dead letter `id` again, to the handler that gave up on
    /// it only, starting again at attempt 1, under the overflow policy;
    /// `false` if there is no such dead letter.
    ///
    /// Cancel-safe: refused, or dropped before the event is queued, the
    /// dead letter stays in the store.
    pub(crate) async fn requeue(&self, id: &str) -> Result<bool, BusError> {
        let shared = self.shared();
        let Some(letter) = shared.dead_letters.take(id) else {
            return Ok(false);
        };
        let restore = Restore {
            store: &*shared.dead_letters,
            letter: Some(letter),
        };
        let letter = restore
            .letter
            .as_ref()
            .map(|l| (l.handler.clone(), l.event.clone()));
        let Some((Some(handler), Some(event))) = letter else {
            return Ok(false);
        };
        let Some(sub) = read(&shared.registry).find_by_name(&handler) else {
            return Err(BusError::NoHandler(handler));
        };
        let job = Job {
            event: event.with_attempt(1),
            target: Some(sub),
            done: None,
        };
        self.enqueue(job, shared.config.overflow).await?;
        restore.disarm();
        Ok(true)
    }
}

impl EventBus {
    /// The envelope given to the builder, unless it seals nothing.
    pub(crate) fn envelope_in_use(&self) -> Option<&crate::envelope::Envelope> {
        Some(&self.shared().config.envelope).filter(|envelope| !envelope.is_empty())
    }

    /// The store of the bus's dead letters.
    pub(crate) fn dead_letter_store(&self) -> &dyn DeadLetterStore {
        &*self.shared().dead_letters
    }
}

/// An [`EventBus`] held without keeping it alive.
#[derive(Clone)]
pub(crate) struct WeakBus(std::sync::Weak<Inner>);

impl WeakBus {
    pub(crate) fn upgrade(&self) -> Option<EventBus> {
        self.0.upgrade().map(|inner| EventBus { inner })
    }
}

/// Whether the bus seals an event it queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seal {
    /// Published in this process: sealed by the bus's envelope.
    Here,
    /// From a transport or a store: sealed (or not) by its producer, and
    /// opened strictly before the handlers.
    Sealed,
}

/// Puts a taken dead letter back unless disarmed.
struct Restore<'a> {
    store: &'a dyn DeadLetterStore,
    letter: Option<DeadLetter>,
}

impl Restore<'_> {
    fn disarm(mut self) {
        self.letter = None;
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Some(letter) = self.letter.take() {
            self.store.push(letter);
        }
    }
}

/// The subscription of a [`EventBus::wait_for`], removed with its future.
struct Unsubscribe {
    bus: EventBus,
    id: SubscriptionId,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.bus.unsubscribe(self.id);
    }
}
