//! `OutboxRelay`: claims rows nobody is handling and hands them to a sink.

use std::sync::Arc;
use std::time::Duration;

use earn_core::{Error, Event, EventSink};
use sqlx::Row as _;

use super::sql::sql;
use super::wake::Wake;
use super::{hand_over, lease_ms, now_ms, outbox_error};
use crate::backend::Dialect;
use crate::db::Db;
use crate::tx::dispatch;

/// Delivers outbox rows nobody is handling: left by a crash between commit
/// and delivery, or written with [`OutboxDispatch::Relay`]. Several relays
/// may run at once, in any number of processes: rows are claimed with a
/// lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL), never read
/// with a serial cursor, so a transaction that commits late is still seen.
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
    db: Db,
    sink: Arc<dyn EventSink>,
    batch: i64,
    lease: Duration,
    poll: Duration,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("db", &self.db)
            .field("batch", &self.batch)
            .field("lease", &self.lease)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    /// A relay of `db`'s outbox to `sink`: an [`EventBus`] (handlers in
    /// this process) or a broker such as Redis Streams.
    pub fn new(db: Db, sink: impl EventSink) -> OutboxRelay {
        OutboxRelay {
            db,
            sink: Arc::new(sink),
            batch: 100,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }

    /// Rows claimed at once (default 100).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// How long a claim lasts before another relay may retry the row
    /// (default 30 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The wait between polls when the outbox is empty (default 500 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Claims one batch of deliverable rows and publishes them; returns how
    /// many. Each row is deleted once its event is handled.
    pub async fn run_once(&self) -> Result<usize, Error> {
        let now = now_ms();
        let until = now.saturating_add(lease_ms(self.lease));
        let claimed = self.claim(now, until).await?;
        let count = claimed.len();
        for (id, json) in claimed {
            match serde_json::from_str::<Event>(&json) {
                Ok(event) => hand_over(&self.db, &*self.sink, event).await,
                Err(error) => {
                    // Not an event: kept (and retried after each lease) for an operator.
                    tracing::error!(outbox_id = id, %error, "an outbox row does not hold a valid event");
                }
            }
        }
        Ok(count)
    }

    async fn claim(&self, now: i64, until: i64) -> Result<Vec<(String, String)>, Error> {
        let statements = sql(self.db.dialect());
        let batch = self.batch;
        if self.db.dialect() == Dialect::Sqlite {
            let mut conn = self.db.acquire().await?;
            return dispatch!(&mut conn, |c, DB| {
                async {
                    let rows = sqlx::query::<DB>(statements.claim)
                        .bind(until)
                        .bind(now)
                        .bind(batch)
                        .fetch_all(&mut *c)
                        .await?;
                    rows.iter()
                        .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?)))
                        .collect::<Result<Vec<_>, sqlx::Error>>()
                }
                .await
            })
            .map_err(outbox_error("claim"));
        }
        let mut tx = self.db.begin().await?;
        let rows = dispatch!(&mut tx.conn, |c, DB| {
            async {
                let rows = sqlx::query::<DB>(statements.lock)
                    .bind(now)
                    .bind(batch)
                    .fetch_all(&mut *c)
                    .await?;
                let rows = rows
                    .iter()
                    .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                for (id, _) in &rows {
                    sqlx::query::<DB>(statements.extend)
                        .bind(until)
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                }
                Ok::<_, sqlx::Error>(rows)
            }
            .await
        })
        .map_err(outbox_error("claim"))?;
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
        let wake = Wake::start(&self.db);
        let mut backoff = self.poll;
        loop {
            let (wait, wakeable) = match self.run_once().await {
                Ok(0) => {
                    backoff = self.poll;
                    (self.poll, true)
                }
                Ok(_) => {
                    backoff = self.poll;
                    (Duration::ZERO, false)
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox relay: claim failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    (backoff, false)
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
