//! `OutboxRelay`: claims rows nobody is handling and hands them to a sink.

use std::sync::Arc;
use std::time::Duration;

use earn_core::{Backoff, Error, Event, EventSink};
use tokio::sync::Semaphore;

use super::sql::{Claim, run_in, sql};
use super::wake::Wake;
use super::{Deleter, dead, hand_over, lease_ms, now_ms, outbox_error};
use crate::connection::{Pool, with_backend};
use crate::db::Db;

const DEFAULT_BATCH: usize = 500;
const DEFAULT_MAX_IN_FLIGHT: usize = 4 * DEFAULT_BATCH;
/// The longest wait after database errors in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A claimed row.
struct Claimed {
    id: String,
    event: String,
    /// Claims so far, this one included.
    attempts: i32,
    created_at: i64,
}

impl Claimed {
    /// Reads `id, event, attempts, created_at`; `bump` is added to the
    /// attempts read (1 where they were read before the lease was taken).
    fn from_rows<R>(rows: &[R], bump: i32) -> Result<Vec<Claimed>, sqlx::Error>
    where
        R: sqlx::Row,
        usize: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        rows.iter()
            .map(|row| {
                Ok(Claimed {
                    id: row.try_get(0)?,
                    event: row.try_get(1)?,
                    attempts: row.try_get::<i32, _>(2)?.saturating_add(bump),
                    created_at: row.try_get(3)?,
                })
            })
            .collect()
    }
}

/// Delivers outbox rows nobody is handling: left by a crash between commit
/// and delivery, or written with [`OutboxMode::Relay`](crate::OutboxMode::Relay). Several relays
/// may run at once, in any number of processes: rows are claimed with a
/// lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL), never read
/// with a serial cursor, so a transaction that commits late is still seen.
///
/// A row whose `event` is not a valid event, or that was claimed more than
/// [`max_attempts`](OutboxRelay::max_attempts) times, moves to
/// `earn_outbox_dead` with the reason, in one transaction with its delete
/// from `earn_outbox`; see [`Db::outbox_dead_letters`].
///
/// Rows are claimed a [`batch`](OutboxRelay::batch) at a time, rows never
/// claimed first (oldest first), then rows whose lease ran out (earliest
/// first), and handed to the sink without waiting for earlier batches to
/// be handled, up to [`max_in_flight`](OutboxRelay::max_in_flight) rows.
/// Rows of handled events are deleted in batches, off the delivery path,
/// and only once the sink has accepted their event.
///
/// ```no_run
/// # async fn run(db: earn::Db, bus: earn::EventBus) -> Result<(), earn::Error> {
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let relay = earn::OutboxRelay::new(db, bus);
/// tokio::spawn(async move { relay.run_until(stopped).await });
/// // … at shutdown:
/// let _ = stop.send(());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OutboxRelay {
    pool: Pool,
    sink: Arc<dyn EventSink>,
    batch: usize,
    lease: Duration,
    poll: Duration,
    max_attempts: i32,
    max_in_flight: usize,
    /// One permit per row that may be claimed and not yet accepted by the
    /// sink; a row's permit goes back when the sink accepts its event or
    /// drops it refused.
    in_flight: Arc<Semaphore>,
    /// Deletes the rows of handled events in batches.
    handled: Deleter,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("dialect", &self.pool.dialect())
            .field("batch", &self.batch)
            .field("lease", &self.lease)
            .field("poll", &self.poll)
            .field("max_attempts", &self.max_attempts)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    /// A relay of `db`'s outbox to `sink`: an [`EventBus`](earn_core::EventBus)
    /// (handlers in this process) or a broker such as Redis Streams.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db, bus: earn::EventBus) {
    /// let relay = earn::OutboxRelay::new(db, bus);
    /// # }
    /// ```
    pub fn new(db: Db, sink: impl EventSink) -> OutboxRelay {
        let pool = db.pool().clone();
        OutboxRelay {
            handled: Deleter::new(pool.clone()),
            pool,
            sink: Arc::new(sink),
            batch: DEFAULT_BATCH,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            max_attempts: 10,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            in_flight: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
        }
    }

    /// Rows claimed at once (default 500).
    ///
    /// ```no_run
    /// # fn run(relay: earn::OutboxRelay) -> earn::OutboxRelay {
    /// relay.batch(100)
    /// # }
    /// ```
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// At most this many rows claimed and not yet accepted by the sink
    /// (default 2,000, four batches): claiming stops while the sink is
    /// behind. Keep it below what the sink handles within one
    /// [`lease`](OutboxRelay::lease), or rows will be claimed again (and
    /// delivered twice) while they wait.
    ///
    /// ```no_run
    /// # fn run(relay: earn::OutboxRelay) -> earn::OutboxRelay {
    /// relay.max_in_flight(10_000)
    /// # }
    /// ```
    pub fn max_in_flight(mut self, rows: usize) -> Self {
        self.max_in_flight = rows.clamp(1, Semaphore::MAX_PERMITS);
        self.in_flight = Arc::new(Semaphore::new(self.max_in_flight));
        self
    }

    /// How long a claim lasts before another relay may retry the row
    /// (default 30 s).
    ///
    /// ```no_run
    /// # fn run(relay: earn::OutboxRelay) -> earn::OutboxRelay {
    /// relay.lease(std::time::Duration::from_secs(60))
    /// # }
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The wait between polls when the outbox is empty (default 500 ms).
    /// On PostgreSQL a running relay also wakes at each commit, so this
    /// only bounds the delay when a notification is lost.
    ///
    /// ```no_run
    /// # fn run(relay: earn::OutboxRelay) -> earn::OutboxRelay {
    /// relay.poll_interval(std::time::Duration::from_secs(5))
    /// # }
    /// ```
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// How many claims a row gets (default 10): claimed once more, it moves
    /// to `earn_outbox_dead` instead of being delivered again. A row is
    /// claimed again when its lease ran out before its event was fully
    /// handled: the process died, the sink refused it, or its handlers
    /// took longer than the lease.
    ///
    /// ```no_run
    /// # fn run(relay: earn::OutboxRelay) -> earn::OutboxRelay {
    /// relay.max_attempts(3)
    /// # }
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        self
    }

    /// Claims one batch of deliverable rows and hands their events to the
    /// sink; returns how many rows it claimed (dead-lettered ones
    /// included). Each row is deleted once the sink accepted its event.
    ///
    /// ```no_run
    /// # async fn run(relay: earn::OutboxRelay) -> Result<(), earn::Error> {
    /// while relay.run_once().await? > 0 {}
    /// # Ok(()) }
    /// ```
    pub async fn run_once(&self) -> Result<usize, Error> {
        let now = now_ms();
        let until = now.saturating_add(lease_ms(self.lease));
        let wanted = self.batch.min(self.max_in_flight);
        let Ok(mut permits) = self
            .in_flight
            .clone()
            .acquire_many_owned(u32::try_from(wanted).unwrap_or(u32::MAX))
            .await
        else {
            return Ok(0); // never closed
        };
        let claimed = self.claim(now, until, wanted).await?;
        let count = claimed.len();
        for row in claimed {
            let event = match serde_json::from_str::<Event>(&row.event) {
                Ok(event) => event,
                Err(error) => {
                    let reason = format!("the row does not hold a valid event: {error}");
                    self.bury(&row, until, &reason).await;
                    continue;
                }
            };
            if row.attempts > self.max_attempts {
                let reason = format!(
                    "claimed {} times without being fully handled, more than max_attempts ({}): \
                     the process died, the sink refused it, or its handlers outlasted the lease",
                    row.attempts, self.max_attempts
                );
                self.bury(&row, until, &reason).await;
                continue;
            }
            let handled = self.handled.clone();
            let id = row.id;
            let permit = permits.split(1);
            let accepted = move || {
                drop(permit);
                handled.delete(id);
            };
            hand_over(&*self.sink, event, Box::new(accepted)).await;
        }
        Ok(count)
    }

    /// Moves a poison row to the dead letters; on failure it stays, and
    /// comes back after its lease.
    async fn bury(&self, row: &Claimed, until: i64, reason: &str) {
        match dead::bury(&self.pool, &row.id, until, reason).await {
            Ok(true) => {
                metrics::counter!("earn_outbox_dead_letters_total").increment(1);
                tracing::error!(
                    outbox_id = row.id,
                    reason,
                    "outbox row moved to earn_outbox_dead"
                );
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(outbox_id = row.id, reason, %error, "a poison outbox row could not be dead-lettered");
            }
        }
    }

    /// Claims up to `limit` rows whose lease ran out (an index range on
    /// `claimed_until`: the cost does not grow with the backlog), leasing
    /// them until `until`; returns them oldest first.
    async fn claim(&self, now: i64, until: i64, limit: usize) -> Result<Vec<Claimed>, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = match sql(self.pool.dialect()).claim {
            Claim::LockThenLease { lock, extend_in } => {
                self.lock_and_lease(lock, extend_in, now, until, limit)
                    .await?
            }
            Claim::Returning(claim) => {
                let mut conn = self.pool.acquire().await?;
                with_backend!(&mut conn, |c, DB| {
                    async {
                        let rows = sqlx::query::<DB>(claim)
                            .bind(until)
                            .bind(now)
                            .bind(limit)
                            .fetch_all(&mut *c)
                            .await?;
                        Claimed::from_rows(&rows, 0)
                    }
                    .await
                })
                .map_err(outbox_error("claim"))?
            }
        };
        // `RETURNING` keeps no order.
        rows.sort_unstable_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(rows)
    }

    /// MySQL, which has no `UPDATE … RETURNING`: locks claimable rows
    /// (skipping locked ones) and leases them with one `UPDATE`, in one
    /// transaction.
    async fn lock_and_lease(
        &self,
        lock: &'static str,
        extend_in: &'static str,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, Error> {
        let mut tx = self.pool.begin_without_gap_locks().await?;
        let rows = with_backend!(&mut tx.conn, |c, DB| {
            async {
                let rows = sqlx::query::<DB>(lock)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *c)
                    .await?;
                Claimed::from_rows(&rows, 1)
            }
            .await
        })
        .map_err(outbox_error("claim"))?;
        if !rows.is_empty() {
            let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
            run_in(&mut tx.conn, extend_in, Some(until), &ids)
                .await
                .map_err(outbox_error("claim"))?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// Runs until `stop` completes: claims and publishes, then waits for
    /// more. On PostgreSQL it listens on channel `earn_outbox` (on a
    /// connection of its own) and wakes as soon as a transaction commits
    /// rows for it; everywhere, and whenever that connection is lost, it
    /// also polls every [`poll_interval`](OutboxRelay::poll_interval).
    /// Database errors back off up to 30 s.
    pub async fn run_until<F: std::future::Future>(&self, stop: F) {
        let mut stop = std::pin::pin!(stop);
        let wake = Wake::start(&self.pool);
        let mut failures = Backoff::new(self.poll, MAX_BACKOFF).start();
        loop {
            let (wait, wakeable) = match self.run_once().await {
                Ok(0) => {
                    failures.reset();
                    (self.poll, true)
                }
                Ok(_) => {
                    failures.reset();
                    (Duration::ZERO, false)
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox relay: claim failed; retrying");
                    (failures.next_delay(), false)
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified(), if wakeable => {}
            }
        }
    }
}
