//! Deletes the rows of handled events in batches, off the delivery path.

use std::sync::{Arc, OnceLock};

use earn_core::Error;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::outbox_error;
use super::sql::{Delete, run_in, sql};
use crate::connection::Pool;

/// Handled rows deleted per statement, at most.
const BATCH: usize = 1_000;

/// Deletes the rows of handled events in batches, from a task of its own
/// started by the first id: whatever was handled while one batch was
/// being deleted goes in the next statement. Shared by clones.
#[derive(Debug, Clone)]
pub(crate) struct Deleter {
    pool: Pool,
    sender: Arc<OnceLock<UnboundedSender<String>>>,
}

impl Deleter {
    pub(crate) fn new(pool: Pool) -> Deleter {
        Deleter {
            pool,
            sender: Arc::default(),
        }
    }

    /// Queues the row `id` for deletion.
    pub(crate) fn delete(&self, id: String) {
        let sender = self.sender.get_or_init(|| {
            let (sender, mut receiver) = unbounded_channel::<String>();
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(BATCH);
                while receiver.recv_many(&mut ids, BATCH).await > 0 {
                    if let Err(error) = delete_many(&pool, &ids).await {
                        // The rows stay: a relay redelivers them after their lease.
                        tracing::warn!(rows = ids.len(), %error, "handled outbox rows could not be deleted; they will be delivered again after their lease");
                    }
                    ids.clear();
                }
            });
            sender
        });
        // Only fails once the task is gone (the runtime is shutting down):
        // the row stays for a relay.
        let _ = sender.send(id);
    }
}

/// Deletes the rows of handled events, in as few statements as it can.
async fn delete_many(pool: &Pool, ids: &[String]) -> Result<(), Error> {
    let statements = sql(pool.dialect());
    let mut conn = pool.acquire().await?;
    let deleted = match (statements.delete, &mut conn) {
        #[cfg(feature = "postgres")]
        (Delete::Array(statement), crate::connection::Conn::Postgres(c)) => sqlx::query(statement)
            .bind(ids)
            .execute(&mut **c)
            .await
            .map(|_| 0),
        (Delete::InList(head), conn) => run_in(conn, head, None, ids).await,
        #[allow(unreachable_patterns)]
        (Delete::Array(_), _) => Err(sqlx::Error::Protocol(
            "only PostgreSQL deletes by array".into(),
        )),
    };
    deleted.map(|_| ()).map_err(outbox_error("delete"))
}
