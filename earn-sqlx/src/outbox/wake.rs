//! Wakes a relay when a transaction commits outbox rows: PostgreSQL's
//! LISTEN / NOTIFY. Polling stays the fallback, so a lost notification
//! only costs a poll interval.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::connection::Pool;

/// A listener running beside a relay, stopped when dropped.
pub(super) struct Wake {
    notify: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Wake {
    /// Starts listening if `db` is PostgreSQL; elsewhere nothing ever wakes
    /// the relay early.
    pub(super) fn start(pool: &Pool) -> Wake {
        let notify = Arc::new(Notify::new());
        #[cfg(feature = "postgres")]
        #[allow(irrefutable_let_patterns)]
        if let Pool::Postgres(pool) = pool {
            let options = (*pool.connect_options()).clone();
            let task = tokio::spawn(postgres::listen(options, notify.clone()));
            return Wake {
                notify,
                task: Some(task),
            };
        }
        let _ = pool;
        Wake { notify, task: None }
    }

    /// Resolves when a commit was notified since the last call (or the
    /// listener reconnected and may have missed one); never elsewhere.
    pub(super) async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;
    use std::time::Duration;

    use earn_core::Backoff;
    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    use tokio::sync::Notify;

    /// The channel committers notify (the `notify` statement of `sql.rs`).
    const CHANNEL: &str = "earn_outbox";

    /// Visible in `pg_stat_activity`, so an operator can tell the
    /// listening connections apart.
    const APPLICATION_NAME: &str = "earn_outbox_relay";

    /// The waits before listening again after errors in a row.
    const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));

    /// Listens on its own connection (not one of the application's pool,
    /// which it would hold forever) and wakes the relay on each
    /// notification. `PgListener` reconnects a lost connection and
    /// re-listens; notifications sent meanwhile are lost, so a reconnection
    /// wakes the relay too. Any other error starts over on a new listener.
    pub(super) async fn listen(options: PgConnectOptions, notify: Arc<Notify>) {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options.application_name(APPLICATION_NAME));
        let mut failures = BACKOFF.start();
        loop {
            let mut listener = match subscribe(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "outbox relay: cannot LISTEN; polling meanwhile");
                    tokio::time::sleep(failures.next_delay()).await;
                    continue;
                }
            };
            failures.reset();
            // Commits made before the LISTEN took effect were not heard.
            notify.notify_one();
            let error = loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => notify.notify_one(),
                    Ok(None) => {
                        tracing::warn!(
                            "outbox relay: the LISTEN connection was lost and re-established"
                        );
                        notify.notify_one();
                    }
                    Err(error) => break error,
                }
            };
            tracing::warn!(%error, "outbox relay: LISTEN failed; polling until it is back");
            drop(listener);
            tokio::time::sleep(failures.next_delay()).await;
        }
    }

    async fn subscribe(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}
