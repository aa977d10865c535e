//! What operators call on a [`Db`] with an outbox: the migration, the
//! backlog, the dead letters.

use earn_core::Error;

use crate::db::Db;

impl Db {
    /// Creates the outbox tables if they do not exist: `earn_outbox`, the
    /// events waiting for delivery, and `earn_outbox_dead`, the rows an
    /// [`OutboxRelay`](crate::OutboxRelay) gave up on. Handy for a quick
    /// start and tests; in production put the same DDL in a migration.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), earn::Error> {
    /// let db = earn::Db::connect("sqlite::memory:").await?
    ///     .with_outbox(earn::Outbox::default());
    /// db.install_outbox().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The migration, PostgreSQL:
    ///
    /// ```sql
    #[doc = include_str!("../../migrations/outbox_postgres.sql")]
    /// ```
    ///
    /// MySQL / MariaDB (10.6 or later, for `SKIP LOCKED`):
    ///
    /// ```sql
    #[doc = include_str!("../../migrations/outbox_mysql.sql")]
    /// ```
    ///
    /// SQLite:
    ///
    /// ```sql
    #[doc = include_str!("../../migrations/outbox_sqlite.sql")]
    /// ```
    ///
    /// Times are milliseconds since the Unix epoch. `claimed_until` is the
    /// end of the lease of whoever delivers the row (0: claimable now);
    /// `attempts` counts relay claims. Every event inserts, updates and
    /// deletes a row of `earn_outbox`: on PostgreSQL leave autovacuum on
    /// for it, or dead rows make each claim slower.
    pub async fn install_outbox(&self) -> Result<(), Error> {
        super::install(self).await
    }

    /// How many events wait in the outbox (operators: the backlog).
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// println!("{} events wait for delivery", db.outbox_backlog().await?);
    /// # Ok(()) }
    /// ```
    pub async fn outbox_backlog(&self) -> Result<u64, Error> {
        super::backlog(self.pool()).await
    }

    /// How old the oldest event waiting in the outbox is (`None` when it
    /// is empty): with the backlog, whether relays keep up.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// if let Some(age) = db.outbox_oldest_age().await? {
    ///     println!("the oldest event has waited {age:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn outbox_oldest_age(&self) -> Result<Option<std::time::Duration>, Error> {
        super::oldest_age(self.pool()).await
    }

    /// The rows the relays gave up on (see
    /// [`OutboxRelay::max_attempts`](crate::OutboxRelay::max_attempts)), as a
    /// [`DeadLetters`](earn_core::DeadLetters) source: list, count, requeue
    /// (back into the outbox, claimable at once with its attempts reset, in
    /// one transaction; on PostgreSQL running relays wake for it), delete,
    /// purge.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// use earn::{DeadLetterFilter, DeadLetters};
    ///
    /// let dead = db.outbox_dead_letters();
    /// if dead.count(&DeadLetterFilter::default()).await? > 0 {
    ///     eprintln!("some events could not be delivered: run `earn dead-letters list`");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn outbox_dead_letters(&self) -> crate::OutboxDeadLetters {
        crate::OutboxDeadLetters {
            pool: self.pool().clone(),
        }
    }
}
