//! Retention: a store used as a log keeps events for a while only.

use std::time::Duration;

use earn_core::Error;

use super::sql::sql;
use super::{EventStore, store_error, to_i64};
use crate::connection::with_backend;
use crate::outbox::now_ms;

impl EventStore {
    /// Deletes the events older than the store's
    /// [`retention`](super::EventStoreBuilder::retention) that every
    /// subscription with a checkpoint has applied; returns how many.
    /// Without a retention it deletes nothing.
    ///
    /// Streams keep their versions: an append after a prune continues at
    /// the next version, and [`read_stream`](EventStore::read_stream)
    /// starts at the oldest event kept. Call it from a periodic task.
    pub async fn prune(&self) -> Result<u64, Error> {
        let Some(age) = self.inner.retention else {
            return Ok(0);
        };
        self.prune_older_than(age).await
    }

    async fn prune_older_than(&self, age: Duration) -> Result<u64, Error> {
        let read_by_all = match self.checkpoints().await?.iter().map(|c| c.position).min() {
            Some(position) => position,
            None => self.head().await?,
        };
        let cutoff = now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let mut conn = self.inner.db.acquire().await?;
        let statement = sql(conn.dialect()).prune;
        let deleted = with_backend!(&mut conn, |c, DB| {
            sqlx::query::<DB>(statement)
                .bind(to_i64(read_by_all))
                .bind(cutoff)
                .execute(&mut *c)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(store_error(super::EVENTS_TABLE, "delete"))?;
        if deleted > 0 {
            tracing::info!(deleted, up_to = read_by_all, "event store pruned");
        }
        Ok(deleted)
    }
}
