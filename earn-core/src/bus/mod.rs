//! `EventBus`: inline `emit`, queued `publish` with retries and dead
//! letters, run-time subscriptions, `wait_for`, `shutdown`.

mod dead_letter;
mod dispatch;
mod in_flight;
mod retry;
mod subscriptions;
mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

pub use dead_letter::{DeadLetter, DeadLetterStore, MemoryDeadLetters};
pub use dispatch::EmitReport;
pub use retry::RetryPolicy;
pub use subscriptions::SubscriptionId;
pub use worker::Delivery;

use tracing::Instrument;

use crate::event::Event;
use crate::handler::{HandlerStep, IntoHandlerResult, handler_registrations};
use crate::pattern::{Pattern, PatternError};
use crate::service::{Attachment, Service};
use subscriptions::{Registry, Resolved, Subscription};
use worker::Job;

/// What `publish` does when the queue is full. Never a silent drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for room (back-pressure on the publisher).
    #[default]
    Wait,
    /// Return [`BusError::QueueFull`] at once.
    Error,
}

/// Why the bus refused something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The queue is full and the overflow policy is [`Overflow::Error`].
    #[error("the event queue is full ({capacity} events): event `{event}` was not published")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
        /// The event's name.
        event: String,
    },
    /// The bus was shut down.
    #[error("the event bus is shut down: event `{event}` was not published")]
    Closed {
        /// The event's name.
        event: String,
    },
    /// An invalid pattern.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// `wait_for` saw no matching event in time.
    #[error("no event matching `{pattern}` within {timeout:?}")]
    Timeout {
        /// The pattern waited for.
        pattern: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// No dead letter with that id.
    #[error("no dead letter with id {0}")]
    NoDeadLetter(u64),
    /// A requeued dead letter's handler is no longer subscribed.
    #[error("handler `{0}` of the dead letter is not subscribed to this bus")]
    NoHandler(String),
    /// The bus was built outside a tokio runtime.
    #[error("EventBus::build must be called inside a tokio runtime (its workers are tokio tasks)")]
    NoRuntime,
}

/// What [`EventBus::shutdown`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether every queued event, retry and delayed event finished in time.
    pub drained: bool,
    /// Events still queued, retrying or delayed at the deadline.
    pub left: usize,
}

#[derive(Clone)]
struct Config {
    workers: usize,
    capacity: usize,
    overflow: Overflow,
    retry: RetryPolicy,
    handler_timeout: Option<Duration>,
}

/// State the workers share with the bus.
struct Shared {
    registry: RwLock<Registry>,
    config: Config,
    dead_letters: Arc<dyn DeadLetterStore>,
    /// Published events not yet fully handled (queued, retrying, delayed).
    in_flight: in_flight::InFlight,
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
    queues: Vec<tokio::sync::mpsc::Sender<Job>>,
    next: AtomicUsize,
}

/// An event bus. Cheap to clone; clones share handlers, queue and dead
/// letters.
///
/// ```
/// use earn_core::{Event, EventBus};
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

/// Configures an [`EventBus`].
pub struct EventBusBuilder {
    config: Config,
    dead_letters: Arc<dyn DeadLetterStore>,
    registered: bool,
    runtime: Option<tokio::runtime::Handle>,
}

impl EventBusBuilder {
    /// Worker tasks running `publish`ed events (default: the number of CPUs).
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// How many published events may wait in the queue (default 10 000).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.capacity = capacity.max(1);
        self
    }

    /// What `publish` does when the queue is full (default: wait).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Retries of failing handlers on `publish` (default: 3 attempts,
    /// 100 ms doubling, 20 % jitter).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Where dead letters go (default: in memory).
    pub fn dead_letters(mut self, store: Arc<dyn DeadLetterStore>) -> Self {
        self.dead_letters = store;
        self
    }

    /// Default timeout of async handlers (default: none).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.handler_timeout = Some(timeout);
        self
    }

    /// Leaves out the `#[event_handler]` functions linked into the program
    /// (they are included by default).
    pub fn without_registered_handlers(mut self) -> Self {
        self.registered = false;
        self
    }

    /// Runs the workers on this runtime instead of the current one.
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Builds the bus and starts its workers on the current tokio runtime.
    pub fn build(self) -> Result<EventBus, BusError> {
        let runtime = match self.runtime {
            Some(handle) => handle,
            None => tokio::runtime::Handle::try_current().map_err(|_| BusError::NoRuntime)?,
        };
        let mut registry = Registry::default();
        if self.registered {
            let mut statics: Vec<_> = handler_registrations().collect();
            // Registration order of link-time handlers is source order, never link order.
            statics.sort_by_key(|r| (r.file, r.line, r.name));
            for r in statics {
                match Subscription::from_options(r.name, &r.options, Arc::new(r.call)) {
                    Ok(subscription) => {
                        registry.insert(subscription);
                    }
                    // The macro checked the pattern; never skip a handler silently.
                    Err(error) => {
                        tracing::error!(handler = r.name, %error, "event handler not registered")
                    }
                }
            }
        }
        let shared = Arc::new(Shared {
            registry: RwLock::new(registry),
            config: self.config.clone(),
            dead_letters: self.dead_letters,
            in_flight: in_flight::InFlight::default(),
            closed: AtomicBool::new(false),
        });
        let per_worker = self.config.capacity.div_ceil(self.config.workers).max(1);
        let queues = (0..self.config.workers)
            .map(|_| {
                let (sender, receiver) = tokio::sync::mpsc::channel(per_worker);
                runtime.spawn(worker::run(shared.clone(), receiver));
                sender
            })
            .collect();
        Ok(EventBus {
            inner: Arc::new(Inner {
                shared,
                queues,
                next: AtomicUsize::new(0),
            }),
        })
    }
}

impl EventBus {
    /// A builder with the defaults.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder {
            config: Config {
                workers: std::thread::available_parallelism().map_or(2, usize::from),
                capacity: 10_000,
                overflow: Overflow::Wait,
                retry: RetryPolicy::default(),
                handler_timeout: None,
            },
            dead_letters: Arc::new(MemoryDeadLetters::default()),
            registered: true,
            runtime: None,
        }
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
        };
        Ok(write(&self.shared().registry).insert(subscription))
    }

    /// Attaches a service: each of its `#[event_handler]` methods becomes a
    /// subscription holding the service, until [`detach`](EventBus::detach).
    pub fn attach<S: Service>(&self, service: Arc<S>) -> Result<Attachment, BusError> {
        let mut ids = Vec::new();
        for handler in S::handlers() {
            let call = handler.call;
            let service = service.clone();
            let call: subscriptions::CallFn = Arc::new(move |event: &Event| call(&service, event));
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
    pub async fn emit(&self, event: Event) -> EmitReport {
        let event = dispatch::inherit(event);
        metrics::counter!("earn_events_emitted_total").increment(1);
        let handlers = self.shared().resolve(event.name().as_str());
        let timeout = self.shared().config.handler_timeout;
        let span = dispatch::emit_span(&event);
        // Entering a span that no subscriber wants still costs a few
        // nanoseconds per poll: skip it then.
        if span.is_disabled() {
            dispatch::emit(handlers, &event, timeout).await
        } else {
            dispatch::emit(handlers, &event, timeout)
                .instrument(span)
                .await
        }
    }

    /// Queues `event` for the workers. With [`Overflow::Wait`] this waits
    /// for room in the queue; with [`Overflow::Error`] a full queue is an
    /// error. Failing handlers are retried with backoff, then
    /// dead-lettered.
    pub async fn publish(&self, event: Event) -> Result<(), BusError> {
        self.publish_job(event, None).await
    }

    /// [`publish`](EventBus::publish), then calls `on_handled` once every
    /// handler of the event has finished with it: succeeded, or given up
    /// and dead-lettered it, retries included. The transactional outbox
    /// deletes its row there, so a crash before that point redelivers
    /// instead of losing the event. Not called if the event is refused.
    pub async fn publish_then(
        &self,
        event: Event,
        on_handled: impl FnOnce() + Send + 'static,
    ) -> Result<(), BusError> {
        let done = worker::Completion::new(false, Box::new(move |_| on_handled()));
        self.publish_job(event, Some(done)).await
    }

    /// Runs `event`'s handlers on the workers, retries included, and
    /// resolves with how they finished. Unlike
    /// [`publish`](EventBus::publish), a handler that gives up is not
    /// dead-lettered here: it is in the returned [`Delivery`], for a
    /// transport that redelivers (Redis Streams leaves the entry
    /// unacknowledged). Waits for room in the queue whatever the overflow
    /// policy.
    ///
    /// ```
    /// use earn_core::{Event, EventBus, HandlerError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::builder()
    ///     .without_registered_handlers()
    ///     .retry(earn_core::RetryPolicy::none())
    ///     .build()?;
    /// bus.subscribe("job.*", 0, |_event: Event| async { Err::<(), _>(HandlerError::msg("busy")) })?;
    /// let delivery = bus.deliver(Event::new("job.run", &1)?).await?;
    /// assert!(!delivery.is_ok());
    /// assert!(bus.dead_letters().is_empty()); // the caller owns the failure
    /// # Ok(()) }
    /// ```
    pub async fn deliver(&self, event: Event) -> Result<Delivery, BusError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.deliver_then(event, move |delivery| {
            let _ = sender.send(delivery);
        })
        .await?;
        Ok(receiver.await.unwrap_or_default())
    }

    /// [`deliver`](EventBus::deliver) without waiting: returns once the
    /// event is queued and calls `on_done` when its handlers finished.
    pub async fn deliver_then(
        &self,
        event: Event,
        on_done: impl FnOnce(Delivery) + Send + 'static,
    ) -> Result<(), BusError> {
        let done = worker::Completion::new(true, Box::new(on_done));
        self.publish_job(event, Some(done)).await
    }

    async fn publish_job(
        &self,
        event: Event,
        done: Option<Arc<worker::Completion>>,
    ) -> Result<(), BusError> {
        if self.shared().closed.load(Ordering::Acquire) {
            return Err(BusError::Closed {
                event: event.name().to_string(),
            });
        }
        let event = dispatch::inherit(event);
        self.enqueue(Job {
            event,
            target: None,
            done,
        })
        .await
    }

    async fn enqueue(&self, job: Job) -> Result<(), BusError> {
        let shared = self.shared();
        let queues = &self.inner.queues;
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % queues.len();
        shared.in_flight.start();
        // A transport's delivery waits: it holds the event durably and
        // must not be told "full" for work it cannot put anywhere else.
        let overflow = match &job.done {
            Some(done) if done.owns_failures => Overflow::Wait,
            _ => shared.config.overflow,
        };
        let sent = match overflow {
            Overflow::Wait => queues[index]
                .send(job)
                .await
                .map_err(|refused| BusError::Closed {
                    event: refused.0.event.name().to_string(),
                }),
            Overflow::Error => queues[index]
                .try_send(job)
                .map_err(|refused| match refused {
                    tokio::sync::mpsc::error::TrySendError::Full(job) => BusError::QueueFull {
                        capacity: shared.config.capacity,
                        event: job.event.name().to_string(),
                    },
                    tokio::sync::mpsc::error::TrySendError::Closed(job) => BusError::Closed {
                        event: job.event.name().to_string(),
                    },
                }),
        };
        match sent {
            Ok(()) => {
                metrics::counter!("earn_events_published_total").increment(1);
                Ok(())
            }
            Err(error) => {
                shared.in_flight.finish(1);
                Err(error)
            }
        }
    }

    /// Publishes `event` after `delay` (counted as in flight until then).
    pub fn publish_delayed(&self, event: Event, delay: Duration) -> Result<(), BusError> {
        let shared = self.shared();
        if shared.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed {
                event: event.name().to_string(),
            });
        }
        let event = dispatch::inherit(event);
        shared.in_flight.start();
        let bus = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(error) = bus.publish(event).await {
                tracing::error!(%error, "a delayed event could not be published");
            }
            bus.shared().in_flight.finish(1);
        });
        Ok(())
    }

    /// Waits for the next event matching `pattern`. The subscription is
    /// made when `wait_for` is called, so an event published right after is
    /// seen even if the future is awaited later.
    pub fn wait_for(
        &self,
        pattern: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Event, BusError>> + Send + 'static {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let slot = Mutex::new(Some(sender));
        let subscribed = self.subscribe_sync(pattern, i32::MAX, move |event: &Event| {
            if let Some(sender) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = sender.send(event.clone());
            }
        });
        let bus = self.clone();
        let pattern = pattern.to_owned();
        async move {
            let id = subscribed?;
            let received = tokio::time::timeout(timeout, receiver).await;
            bus.unsubscribe(id);
            match received {
                Ok(Ok(event)) => Ok(event),
                _ => Err(BusError::Timeout { pattern, timeout }),
            }
        }
    }

    /// Stops accepting events and waits until every queued event, retry
    /// and delayed event is handled, or `deadline` passes.
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

    /// Waits until no published event is queued, retrying or delayed.
    pub async fn wait_idle(&self) {
        self.shared().in_flight.wait_idle().await;
    }

    /// Events published and not yet fully handled.
    pub fn in_flight(&self) -> usize {
        self.shared().in_flight.count()
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared().dead_letters.list()
    }

    /// Publishes a dead letter again, to the handler that gave up on it
    /// only, starting again at attempt 1.
    pub async fn requeue(&self, id: u64) -> Result<(), BusError> {
        let shared = self.shared();
        let letter = shared
            .dead_letters
            .take(id)
            .ok_or(BusError::NoDeadLetter(id))?;
        let Some(sub) = read(&shared.registry).find_by_name(&letter.handler) else {
            let handler = letter.handler.clone();
            shared.dead_letters.push(letter);
            return Err(BusError::NoHandler(handler));
        };
        self.enqueue(Job {
            event: letter.event.with_attempt(1),
            target: Some(sub),
            done: None,
        })
        .await
    }

    /// Removes every dead letter; returns how many there were.
    pub fn purge_dead_letters(&self) -> usize {
        self.shared().dead_letters.purge()
    }
}
