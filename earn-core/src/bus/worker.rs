//! `publish`: a bounded queue per worker, retries with backoff, dead letters.

use std::sync::Arc;

use tracing::Instrument;

use super::Shared;
use super::dead_letter::{DeadLetter, next_id};
use super::dispatch::call;
use super::subscriptions::Subscription;
use crate::event::Event;
use crate::handler::{Failure, Propagation};

/// An event waiting for a worker: all its handlers, or one (a retry or a
/// requeued dead letter).
pub(crate) struct Job {
    pub(crate) event: Event,
    pub(crate) target: Option<Arc<Subscription>>,
    /// Told when the event is fully handled (every handler succeeded or
    /// dead-lettered it), retries included.
    pub(crate) done: Option<Arc<Completion>>,
}

/// What a [`Completion`] calls with the outcome.
type Callback = Box<dyn FnOnce(Delivery) + Send>;

/// Calls back once every delivery of one published event has finished,
/// with the handlers that gave up on it.
pub(crate) struct Completion {
    pending: std::sync::atomic::AtomicUsize,
    /// The caller owns failures (a transport that redelivers): they are
    /// reported to it, not dead-lettered in this process.
    pub(crate) owns_failures: bool,
    failures: std::sync::Mutex<Vec<(Arc<str>, Failure)>>,
    callback: std::sync::Mutex<Option<Callback>>,
}

impl Completion {
    pub(crate) fn new(owns_failures: bool, callback: Callback) -> Arc<Completion> {
        Arc::new(Completion {
            pending: std::sync::atomic::AtomicUsize::new(1),
            owns_failures,
            failures: std::sync::Mutex::new(Vec::new()),
            callback: std::sync::Mutex::new(Some(callback)),
        })
    }

    fn add(&self) {
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn gave_up(&self, handler: Arc<str>, failure: Failure) {
        lock(&self.failures).push((handler, failure));
    }

    fn finish(&self) {
        if self
            .pending
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            let callback = lock(&self.callback).take();
            if let Some(callback) = callback {
                callback(Delivery {
                    failures: std::mem::take(&mut *lock(&self.failures)),
                });
            }
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// How the handlers of one delivered event finished
/// ([`EventBus::deliver`](super::EventBus::deliver)).
#[derive(Debug, Default)]
pub struct Delivery {
    failures: Vec<(Arc<str>, Failure)>,
}

impl Delivery {
    /// Every matching handler succeeded (or the event matched none).
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The handlers that gave up, after their retries, and why.
    pub fn failures(&self) -> &[(Arc<str>, Failure)] {
        &self.failures
    }
}

struct FinishOnDrop(Option<Arc<Completion>>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(done) = &self.0 {
            done.finish();
        }
    }
}

/// A worker's last resolved handler list: a stream of events of one name
/// skips the registry lock and the lookup while no subscription changes.
#[derive(Default)]
pub(crate) struct LastResolved(Option<(u64, crate::EventName, super::subscriptions::Resolved)>);

impl LastResolved {
    fn resolve(
        &mut self,
        shared: &Shared,
        name: &crate::EventName,
    ) -> super::subscriptions::Resolved {
        let generation = super::subscriptions::generation();
        if let Some((seen, last, handlers)) = &self.0
            && *seen == generation
            && last == name
        {
            return handlers.clone();
        }
        let handlers = shared.resolve(name.as_str());
        self.0 = Some((generation, name.clone(), handlers.clone()));
        handlers
    }
}

/// How many queued jobs a worker takes at once.
const BATCH: usize = 64;

pub(crate) async fn run(shared: Arc<Shared>, mut queue: tokio::sync::mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last = LastResolved::default();
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        metrics::gauge!("earn_queue_depth").set(queue.len() as f64);
        let taken = batch.len();
        for job in batch.drain(..) {
            shared.process(job, &mut last).await;
        }
        shared.in_flight.finish(taken);
    }
}

impl Shared {
    /// Runs a job's handlers; schedules retries and dead letters failures.
    pub(crate) async fn process(self: &Arc<Self>, job: Job, last: &mut LastResolved) {
        let span = super::dispatch::deliver_span(&job.event);
        if span.is_disabled() {
            self.process_job(job, last).await;
        } else {
            self.process_job(job, last).instrument(span).await;
        }
    }

    async fn process_job(self: &Arc<Self>, job: Job, last: &mut LastResolved) {
        let Job {
            event,
            target,
            done,
        } = job;
        // Finishes this delivery however the handlers went (retries hold
        // their own count).
        let _finish = FinishOnDrop(done.clone());
        match target {
            Some(sub) => {
                self.deliver(&sub, &event, &done).await;
            }
            None => {
                let handlers = last.resolve(self, event.name());
                for sub in handlers.subs.iter() {
                    if sub.filter.as_ref().is_some_and(|filter| !filter(&event)) {
                        continue;
                    }
                    if self.deliver(sub, &event, &done).await == Propagation::Stop {
                        break;
                    }
                }
            }
        }
    }

    async fn deliver(
        self: &Arc<Self>,
        sub: &Arc<Subscription>,
        event: &Event,
        done: &Option<Arc<Completion>>,
    ) -> Propagation {
        match call(sub, event, self.config.handler_timeout).await {
            Ok(flow) => flow,
            Err(failure) => {
                self.failed(sub.clone(), event.clone(), failure, done);
                Propagation::Continue
            }
        }
    }

    fn failed(
        self: &Arc<Self>,
        sub: Arc<Subscription>,
        event: Event,
        failure: Failure,
        done: &Option<Arc<Completion>>,
    ) {
        let attempt = event.attempt();
        let max_attempts = sub
            .retries
            .map_or(self.config.retry.max_attempts, |r| r.saturating_add(1));
        if failure.is_retryable() && attempt < max_attempts {
            metrics::counter!("earn_handler_retries_total").increment(1);
            self.in_flight.start();
            let delay = self.config.retry.delay(attempt + 1);
            let shared = self.clone();
            if let Some(done) = done {
                done.add();
            }
            let job = Job {
                event: event.with_attempt(attempt + 1),
                target: Some(sub),
                done: done.clone(),
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                shared.process(job, &mut LastResolved::default()).await;
                shared.in_flight.finish(1);
            });
            return;
        }
        if let Some(done) = done {
            done.gave_up(sub.name.clone(), failure.clone());
            if done.owns_failures {
                tracing::warn!(
                    handler = &*sub.name,
                    event = event.name().as_str(),
                    event_id = %event.id(),
                    attempts = attempt,
                    %failure,
                    "handler {} {failure} after {attempt} attempt(s); the transport will redeliver the event",
                    sub.name,
                );
                return;
            }
        }
        metrics::counter!("earn_dead_letters_total").increment(1);
        tracing::error!(
            handler = &*sub.name,
            event = event.name().as_str(),
            event_id = %event.id(),
            attempts = attempt,
            %failure,
            "event dead-lettered: handler {} {failure} after {attempt} attempt(s)",
            sub.name,
        );
        self.dead_letters.push(DeadLetter {
            id: next_id(),
            event,
            handler: sub.name.to_string(),
            reason: failure,
            attempts: attempt,
            at: std::time::SystemTime::now(),
        });
    }
}
