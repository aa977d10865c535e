//! The workers of `publish`: each takes the next event from the bus's one
//! shared queue, one at a time, so a free worker never waits behind a
//! slow one; failing handlers are retried through the timer, then
//! dead-lettered.

use std::sync::Arc;

use tracing::Instrument;

use super::Shared;
use super::completion::{Completion, FinishOnDrop, Owner};
use super::dead_letter::next_id;
use super::dispatch::call;
use super::subscriptions::{Resolved, Subscription};
use super::timer::TimerHandle;
use crate::dead_letter::DeadLetter;
use crate::event::Event;
use crate::handler::{Failure, Propagation};

/// An event waiting for a worker: all its handlers, or one (a retry or a
/// requeued dead letter).
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) event: Event,
    pub(crate) target: Option<Arc<Subscription>>,
    /// Told when the event is fully handled (every handler succeeded or
    /// gave up), retries included.
    pub(crate) done: Option<Arc<Completion>>,
}

/// One job's event as it was queued (sealed: what a retry or a dead
/// letter keeps) and as its handlers see it.
#[derive(Clone, Copy)]
struct Seen<'a> {
    sealed: &'a Event,
    opened: &'a Event,
}

/// Gives back the in-flight count of an event handed to a batch, however
/// its task ends.
struct Settled<'a>(&'a Shared);

impl Drop for Settled<'_> {
    fn drop(&mut self) {
        self.0.in_flight.finish(1);
    }
}

/// A worker's last resolved handler list: a stream of events of one name
/// skips the registry lock and the lookup while no subscription changes.
#[derive(Default)]
struct LastResolved(Option<(u64, crate::EventName, Resolved)>);

impl LastResolved {
    fn resolve(&mut self, shared: &Shared, name: &crate::EventName) -> Resolved {
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

/// Handled events not yet subtracted from the bus's in-flight count:
/// subtracted together when the queue runs empty (or every `FLUSH`
/// events), so the workers do not write the shared counter once per
/// event. Dropped with the worker's task, it subtracts what it holds.
struct Taken<'a> {
    shared: &'a Shared,
    count: usize,
}

/// The most handled events a worker holds back from the in-flight count.
const FLUSH: usize = 64;

impl Taken<'_> {
    fn flush(&mut self) {
        if self.count > 0 {
            self.shared
                .in_flight
                .finish(std::mem::take(&mut self.count));
        }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The last worker to stop (its runtime shut down) dead-letters what is
/// still queued: nothing else would ever run it.
struct LastOut<'a> {
    shared: &'a Shared,
    queue: &'a async_channel::Receiver<Job>,
}

impl Drop for LastOut<'_> {
    fn drop(&mut self) {
        if self.queue.receiver_count() == 1 {
            self.queue.close();
            while let Ok(job) = self.queue.try_recv() {
                self.shared.abandon(
                    job,
                    "the event bus's workers stopped (their runtime shut down) before the event \
                     was handled",
                );
            }
        }
    }
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: async_channel::Receiver<Job>,
    timer: TimerHandle,
) {
    let _last_out = LastOut {
        shared: &shared,
        queue: &queue,
    };
    let mut taken = Taken {
        shared: &shared,
        count: 0,
    };
    let mut last = LastResolved::default();
    loop {
        let job = match queue.try_recv() {
            Ok(job) => job,
            Err(async_channel::TryRecvError::Empty) => {
                taken.flush();
                metrics::gauge!("earn_queue_depth").set(0.0);
                match queue.recv().await {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
            Err(async_channel::TryRecvError::Closed) => break,
        };
        // Counted before it runs, subtracted at the next flush (after it
        // ran): a worker dropped mid-handler gives its count back too.
        taken.count += 1;
        shared.process(job, &mut last, &timer).await;
        if taken.count >= FLUSH {
            metrics::gauge!("earn_queue_depth").set(queue.len() as f64);
            taken.flush();
        }
    }
}

impl Shared {
    /// Runs a job's handlers; schedules retries and dead letters failures.
    async fn process(self: &Arc<Self>, job: Job, last: &mut LastResolved, timer: &TimerHandle) {
        let span = super::dispatch::deliver_span(&job.event);
        if span.is_disabled() {
            self.process_job(job, last, timer).await;
        } else {
            self.process_job(job, last, timer).instrument(span).await;
        }
    }

    async fn process_job(self: &Arc<Self>, job: Job, last: &mut LastResolved, timer: &TimerHandle) {
        let Job {
            event,
            target,
            done,
        } = job;
        // Finishes this delivery however the handlers went (retries hold
        // their own count).
        let _finish = FinishOnDrop(done.clone());
        // Handlers see the opened event; retries and dead letters keep the
        // sealed one.
        let opened = match self.config.envelope.opened(&event, true) {
            Ok(opened) => opened,
            Err(error) => {
                let subs = match target {
                    Some(sub) => vec![sub],
                    None => last.resolve(self, event.name()).subs.clone(),
                };
                for sub in subs {
                    if let Some(done) = &done
                        && done.skip.contains(&sub.name)
                    {
                        done.finished(&sub.name);
                        continue;
                    }
                    let failure = super::dispatch::unopened(&sub, &error, &self.stats);
                    self.gave_up(sub, event.clone(), failure, &done);
                }
                return;
            }
        };
        let seen = Seen {
            sealed: &event,
            opened: &opened,
        };
        match target {
            Some(sub) => {
                self.run_one(&sub, seen, &done, timer).await;
            }
            None => {
                let handlers = last.resolve(self, event.name());
                let mut subs = handlers.subs.iter();
                while let Some(sub) = subs.next() {
                    if let Some(done) = &done
                        && done.skip.contains(&sub.name)
                    {
                        done.finished(&sub.name);
                        continue;
                    }
                    if sub.filter.as_ref().is_some_and(|filter| !filter(&opened)) {
                        continue;
                    }
                    if self.run_one(sub, seen, &done, timer).await == Propagation::Stop {
                        // Those below are finished with it too: a redelivery
                        // must not run them.
                        if let Some(done) = &done {
                            subs.for_each(|sub| done.finished(&sub.name));
                        }
                        break;
                    }
                }
            }
        }
    }

    async fn run_one(
        self: &Arc<Self>,
        sub: &Arc<Subscription>,
        event: Seen<'_>,
        done: &Option<Arc<Completion>>,
        timer: &TimerHandle,
    ) -> Propagation {
        if sub.batched {
            self.hand_to_batch(sub, event, done, timer);
            return Propagation::Continue;
        }
        match call(sub, event.opened, self.config.handler_timeout, &self.stats).await {
            Ok(flow) => {
                if let Some(done) = done {
                    done.finished(&sub.name);
                }
                flow
            }
            Err(failure) => {
                self.failed(sub.clone(), event.sealed.clone(), failure, done, timer);
                Propagation::Continue
            }
        }
    }

    /// Hands the event to a batch handler without waiting for the batch:
    /// the event counts as in flight, and its delivery as unfinished,
    /// until its outcome in the batch is settled like any handler's.
    fn hand_to_batch(
        self: &Arc<Self>,
        sub: &Arc<Subscription>,
        event: Seen<'_>,
        done: &Option<Arc<Completion>>,
        timer: &TimerHandle,
    ) {
        self.in_flight.start();
        if let Some(done) = done {
            done.add();
        }
        // Joins the batch now, in the order the worker took the events.
        let step = super::dispatch::start(sub, event.opened);
        let (shared, sub, sealed, opened, done, timer) = (
            self.clone(),
            sub.clone(),
            event.sealed.clone(),
            event.opened.clone(),
            done.clone(),
            timer.clone(),
        );
        tokio::spawn(async move {
            let _finish = FinishOnDrop(done.clone());
            let _flight = Settled(&shared);
            let timeout = shared.config.handler_timeout;
            let settled = super::dispatch::settle(step, &sub, &opened, timeout, &shared.stats);
            match settled.await {
                Ok(_) => {
                    if let Some(done) = &done {
                        done.finished(&sub.name);
                    }
                }
                Err(failure) => shared.failed(sub, sealed, failure, &done, &timer),
            }
        });
    }

    fn failed(
        self: &Arc<Self>,
        sub: Arc<Subscription>,
        event: Event,
        failure: Failure,
        done: &Option<Arc<Completion>>,
        timer: &TimerHandle,
    ) {
        // A transport redelivers: its delivery limit is the one budget.
        let retries_here = done.as_ref().is_none_or(|done| done.owner == Owner::Bus);
        let attempt = event.attempt();
        let max_attempts = sub
            .retries
            .map_or(self.config.retry.max_attempts, |r| r.saturating_add(1));
        if retries_here && failure.is_retryable() && attempt < max_attempts {
            metrics::counter!("earn_handler_retries_total").increment(1);
            self.in_flight.start();
            if let Some(done) = done {
                done.add();
            }
            let due = tokio::time::Instant::now() + self.config.retry.delay(attempt + 1);
            let job = Job {
                event: event.with_attempt(attempt + 1),
                target: Some(sub),
                done: done.clone(),
            };
            if let Err(job) = timer.schedule(job, due) {
                self.abandon(
                    job,
                    "the event bus's runtime shut down before the retry was due",
                );
            }
            return;
        }
        self.gave_up(sub, event, failure, done);
    }

    /// A handler gave up on `event`: the transport is told, or it is
    /// dead-lettered.
    fn gave_up(
        &self,
        sub: Arc<Subscription>,
        event: Event,
        failure: Failure,
        done: &Option<Arc<Completion>>,
    ) {
        let attempt = event.attempt();
        if let Some(done) = done {
            done.gave_up(sub.name.clone(), failure.clone());
            if done.owner == Owner::Transport {
                tracing::warn!(
                    handler = &*sub.name,
                    event = event.name().as_str(),
                    event_id = %event.id(),
                    attempt,
                    %failure,
                    "handler {} {failure} on delivery {attempt}; the transport decides whether to redeliver",
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
        let name = event.name().to_string();
        self.dead_letters.push(
            DeadLetter::new(
                super::dead_letter::SOURCE,
                next_id(),
                name,
                failure.to_string(),
                attempt,
                std::time::SystemTime::now(),
            )
            .with_event(event)
            .with_handler(sub.name.to_string()),
        );
    }

    /// A job accepted by the bus that it can no longer run (see `reason`):
    /// each of its handlers gives up on it, and its count is released.
    pub(crate) fn abandon(&self, job: Job, reason: &str) {
        let Job {
            event,
            target,
            done,
        } = job;
        let _finish = FinishOnDrop(done.clone());
        let failure = Failure::Error {
            message: reason.to_owned(),
            permanent: true,
        };
        let subs: Vec<Arc<Subscription>> = match target {
            Some(sub) => vec![sub],
            None => self.resolve(event.name().as_str()).subs.clone(),
        };
        if subs.is_empty() {
            tracing::warn!(event = event.name().as_str(), event_id = %event.id(), "{reason}; no handler matched the event");
        }
        for sub in subs {
            if let Some(done) = &done
                && done.skip.contains(&sub.name)
            {
                done.finished(&sub.name);
                continue;
            }
            self.gave_up(sub, event.clone(), failure.clone(), &done);
        }
        self.in_flight.finish(1);
    }
}
