//! Catch-up subscriptions: a named reader of the global order that starts
//! from its stored checkpoint, reads history, then follows new appends,
//! saving its checkpoint in the same transaction as its projection's
//! writes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earn_core::{Backoff, Error};

use super::projection::applying;
use super::sql::sql;
use super::{EventStore, Progress, Projection, Recorded, store_error, to_i64, to_u64};
use crate::connection::with_backend;
use crate::outbox::now_ms;
use crate::tx::Tx;

/// A subscription's stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The subscription's name.
    pub name: String,
    /// The position of the last event it applied.
    pub position: u64,
    /// When it last moved, in milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// Settings of a subscription: see [`EventStore::subscription`].
#[must_use]
#[derive(Debug, Clone)]
pub struct SubscriptionBuilder {
    store: EventStore,
    name: String,
    batch: usize,
    poll: Duration,
    retry: Backoff,
}

/// A running subscription (a task of its own). Dropping it stops the
/// task; [`shutdown`](Subscription::shutdown) waits for the batch being
/// applied to finish.
#[derive(Debug)]
pub struct Subscription {
    name: String,
    progress: Arc<Mutex<Progress>>,
    live: tokio::sync::watch::Receiver<bool>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EventStore {
    /// A catch-up subscription named `name`: started with
    /// [`start`](SubscriptionBuilder::start), it applies every stored
    /// event after its checkpoint to a [`Projection`], in the global
    /// order, then follows new appends, with no gap and no event twice.
    ///
    /// Each batch of events is applied in one transaction that also saves
    /// the checkpoint, so the projection's writes and its checkpoint
    /// commit together: after a crash it resumes where its last commit
    /// left it (effectively once for what it writes in the transaction).
    /// Several subscriptions run side by side, each with its own name;
    /// two processes running the same name take turns on its checkpoint
    /// row and never apply an event twice.
    ///
    /// A projection that fails on an event is retried on that event (on
    /// its own, after the events before it are committed) with backoff,
    /// and [`progress`](Subscription::progress) reports the error: an
    /// event is never skipped.
    ///
    /// ```no_run
    /// # use earn::store::{EventStore, Projection, Recorded};
    /// # struct OrderTotals;
    /// # impl Projection for OrderTotals {
    /// #     async fn apply(&self, _: &mut earn::Tx, _: &Recorded) -> Result<(), earn::HandlerError> { Ok(()) }
    /// # }
    /// # async fn run(store: EventStore) -> Result<(), earn::Error> {
    /// let totals = store.subscription("order-totals").start(OrderTotals).await?;
    /// totals.caught_up(std::time::Duration::from_secs(60)).await?;
    /// println!("{:?}", totals.progress());
    /// totals.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn subscription(&self, name: &str) -> SubscriptionBuilder {
        SubscriptionBuilder {
            store: self.clone(),
            name: name.to_owned(),
            batch: 500,
            poll: Duration::from_millis(100),
            retry: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
        }
    }

    /// Replays every stored event into `projection` from position 0:
    /// [`reset`](Projection::reset) it and set checkpoint `name` to 0 in
    /// one transaction, then apply the events batch by batch (each batch
    /// committed with the checkpoint, visible to others in
    /// [`checkpoints`](EventStore::checkpoints)) until it has caught up.
    /// Returns where it ended and its rate.
    ///
    /// Stop the subscription of the same name first, and for an inline
    /// projection stop appends while it runs: otherwise both write the
    /// read model.
    pub async fn rebuild<P: Projection>(
        &self,
        name: &str,
        projection: &P,
    ) -> Result<Progress, Error> {
        let mut tx = self.inner.db.begin().await?;
        init_checkpoint(&mut tx, name).await?;
        lock_checkpoint(&mut tx, name).await?;
        projection
            .reset(&mut tx)
            .await
            .map_err(|error| applying(format!("projection `{name}` (reset)"), 0, error))?;
        save_checkpoint(&mut tx, name, 0).await?;
        tx.commit().await?;
        let mut runner = Runner::new(self.clone(), name.to_owned(), 1_000, 0);
        loop {
            let step = runner.step(projection).await?;
            if step == Step::CaughtUp {
                return Ok(runner.progress(true));
            }
            tracing::info!(
                projection = name,
                position = runner.position,
                applied = runner.applied,
                "rebuilding"
            );
        }
    }

    /// Every subscription's checkpoint, by name.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, Error> {
        let mut conn = self.inner.db.acquire().await?;
        let statement = sql(conn.dialect()).checkpoints;
        let rows: Vec<(String, i64, i64)> = with_backend!(&mut conn, |c, DB| {
            sqlx::query_as::<DB, (String, i64, i64)>(statement)
                .fetch_all(&mut *c)
                .await
        })
        .map_err(store_error("earn_checkpoints", "select"))?;
        Ok(rows
            .into_iter()
            .map(|(name, position, updated_at)| Checkpoint {
                name,
                position: to_u64(position),
                updated_at,
            })
            .collect())
    }

    /// Forgets subscription `name`'s checkpoint: started again, it begins
    /// at position 0; [`prune`](EventStore::prune) no longer waits for it.
    pub async fn delete_checkpoint(&self, name: &str) -> Result<bool, Error> {
        let mut conn = self.inner.db.acquire().await?;
        let statement = sql(conn.dialect()).checkpoint_delete;
        let deleted = with_backend!(&mut conn, |c, DB| {
            sqlx::query::<DB>(statement)
                .bind(name)
                .execute(&mut *c)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(store_error("earn_checkpoints", "delete"))?;
        Ok(deleted > 0)
    }
}

impl SubscriptionBuilder {
    /// Events applied per transaction (500 by default).
    pub fn batch(mut self, events: usize) -> Self {
        self.batch = events.max(1);
        self
    }

    /// How often it looks for events appended by other processes once
    /// live (100 ms by default); appends made through this process's
    /// store wake it at once.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// The waits between retries of a failing event.
    pub fn retry(mut self, backoff: Backoff) -> Self {
        self.retry = backoff;
        self
    }

    /// Starts applying events to `projection` in a task of its own.
    /// Fails if its checkpoint cannot be created or read.
    pub async fn start<P: Projection>(self, projection: P) -> Result<Subscription, Error> {
        let mut tx = self.store.inner.db.begin().await?;
        init_checkpoint(&mut tx, &self.name).await?;
        let position = lock_checkpoint(&mut tx, &self.name).await?;
        tx.commit().await?;
        let runner = Runner::new(self.store.clone(), self.name.clone(), self.batch, position);
        let progress = Arc::new(Mutex::new(runner.progress(false)));
        let (live_tx, live) = tokio::sync::watch::channel(false);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(
            runner,
            projection,
            self.poll,
            self.retry,
            progress.clone(),
            live_tx,
            stopped,
        ));
        Ok(Subscription {
            name: self.name,
            progress,
            live,
            stop,
            task: Some(task),
        })
    }
}

impl Subscription {
    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it stands now.
    pub fn progress(&self) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until it has read everything stored when it started (and
    /// since), at most `timeout`; returns where it stands.
    pub async fn caught_up(&self, timeout: Duration) -> Result<Progress, Error> {
        let mut live = self.live.clone();
        match tokio::time::timeout(timeout, live.wait_for(|&live| live)).await {
            Ok(_) => Ok(self.progress()),
            Err(_) => Err(Error::Transport {
                transport: "event store",
                operation: "wait for a subscription to catch up".into(),
                source: format!(
                    "subscription `{}` did not catch up within {timeout:?}: {:?}",
                    self.name,
                    self.progress()
                )
                .into(),
            }),
        }
    }

    /// Waits until its checkpoint is at least `position`, at most
    /// `timeout`.
    pub async fn reached(&self, position: u64, timeout: Duration) -> Result<Progress, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let progress = self.progress();
            if progress.position >= position {
                return Ok(progress);
            }
            if Instant::now() >= deadline {
                return Err(Error::Transport {
                    transport: "event store",
                    operation: "wait for a subscription".into(),
                    source: format!(
                        "subscription `{}` did not reach position {position} within {timeout:?}: {progress:?}",
                        self.name
                    )
                    .into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops it after the batch being applied (committed or rolled back)
    /// and waits for its task.
    pub async fn shutdown(mut self) -> Progress {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.progress()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A batch was applied and committed.
    Applied,
    /// Nothing more to read now.
    CaughtUp,
    /// Another process moved the checkpoint: it was reloaded.
    Moved,
}

/// Reads and applies batches for one subscription.
struct Runner {
    store: EventStore,
    name: String,
    batch: usize,
    position: u64,
    applied: u64,
    head: u64,
    started: Instant,
    /// Apply one event per transaction: the last batch failed, and the
    /// events before the failing one must still be committed.
    single: bool,
}

impl Runner {
    fn new(store: EventStore, name: String, batch: usize, position: u64) -> Runner {
        Runner {
            store,
            name,
            batch,
            position,
            applied: 0,
            head: position,
            started: Instant::now(),
            single: false,
        }
    }

    fn progress(&self, live: bool) -> Progress {
        let seconds = self.started.elapsed().as_secs_f64();
        Progress {
            name: self.name.clone(),
            position: self.position,
            head: self.head.max(self.position),
            applied: self.applied,
            rate: if seconds > 0.0 {
                self.applied as f64 / seconds
            } else {
                0.0
            },
            live,
            last_error: None,
        }
    }

    /// Reads the next batch and applies it in one transaction with the
    /// checkpoint.
    async fn step<P: Projection>(&mut self, projection: &P) -> Result<Step, Error> {
        let want = if self.single { 1 } else { self.batch };
        let page = self.store.page(self.position, want).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            return Ok(Step::CaughtUp);
        };
        self.head = self.head.max(last);
        let mut tx = self.store.inner.db.begin().await?;
        let stored = lock_checkpoint(&mut tx, &self.name).await?;
        if stored != self.position {
            tx.rollback().await?;
            tracing::debug!(
                subscription = self.name,
                from = self.position,
                to = stored,
                "checkpoint moved by another process"
            );
            self.position = stored;
            return Ok(Step::Moved);
        }
        self.apply(&mut tx, projection, &page).await?;
        save_checkpoint(&mut tx, &self.name, last).await?;
        tx.commit().await?;
        self.position = last;
        self.applied += page.len() as u64;
        self.single = false;
        Ok(if page.len() < want {
            Step::CaughtUp
        } else {
            Step::Applied
        })
    }

    async fn apply<P: Projection>(
        &mut self,
        tx: &mut Tx,
        projection: &P,
        page: &[Recorded],
    ) -> Result<(), Error> {
        for event in page {
            if let Err(error) = projection.apply(tx, event).await {
                self.single = page.len() > 1;
                return Err(applying(
                    format!("subscription `{}`", self.name),
                    event.position,
                    error,
                ));
            }
        }
        Ok(())
    }
}

async fn run<P: Projection>(
    mut runner: Runner,
    projection: P,
    poll: Duration,
    retry: Backoff,
    progress: Arc<Mutex<Progress>>,
    live: tokio::sync::watch::Sender<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut failures = retry.start();
    let publish = |runner: &Runner, is_live: bool, error: Option<String>| {
        let mut now = runner.progress(is_live);
        now.last_error = error;
        *progress.lock().unwrap_or_else(|e| e.into_inner()) = now;
    };
    let mut is_live = false;
    while !*stop.borrow() {
        // Registered before reading, so an append that commits during the
        // read still wakes the wait below.
        let store = runner.store.clone();
        let appended = store.inner.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let wait = match runner.step(&projection).await {
            Ok(Step::Applied | Step::Moved) => {
                failures.reset();
                publish(&runner, is_live, None);
                continue;
            }
            Ok(Step::CaughtUp) => {
                failures.reset();
                is_live = true;
                publish(&runner, true, None);
                let _ = live.send(true);
                poll
            }
            Err(error) => {
                let delay = failures.next_delay();
                tracing::warn!(subscription = runner.name, position = runner.position, %error, retry_in = ?delay, "a subscription failed; it retries the event");
                publish(&runner, is_live, Some(error.to_string()));
                delay
            }
        };
        tokio::select! {
            _ = &mut appended => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn init_checkpoint(tx: &mut Tx, name: &str) -> Result<(), Error> {
    let statement = sql(tx.dialect()).checkpoint_init;
    with_backend!(&mut tx.conn, |c, DB| {
        sqlx::query::<DB>(statement)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *c)
            .await
            .map(|_| ())
    })
    .map_err(store_error("earn_checkpoints", "insert"))
}

/// The checkpoint, its row locked for the transaction (PostgreSQL,
/// MySQL; SQLite has one writer at a time).
async fn lock_checkpoint(tx: &mut Tx, name: &str) -> Result<u64, Error> {
    let statement = sql(tx.dialect()).checkpoint_lock;
    let position: Option<i64> = with_backend!(&mut tx.conn, |c, DB| {
        sqlx::query_scalar::<DB, i64>(statement)
            .bind(name)
            .fetch_optional(&mut *c)
            .await
    })
    .map_err(store_error("earn_checkpoints", "select"))?;
    Ok(position.map_or(0, to_u64))
}

async fn save_checkpoint(tx: &mut Tx, name: &str, position: u64) -> Result<(), Error> {
    let statement = sql(tx.dialect()).checkpoint_save;
    with_backend!(&mut tx.conn, |c, DB| {
        sqlx::query::<DB>(statement)
            .bind(to_i64(position))
            .bind(now_ms())
            .bind(name)
            .execute(&mut *c)
            .await
            .map(|_| ())
    })
    .map_err(store_error("earn_checkpoints", "update"))
}
