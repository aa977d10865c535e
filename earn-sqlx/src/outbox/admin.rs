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

    /// How many outbox rows the relays gave up on (what
    /// [`outbox_dead_letters`](Db::outbox_dead_letters) lists).
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// if db.outbox_dead_letter_count().await? > 0 {
    ///     eprintln!("some events could not be delivered: see db.outbox_dead_letters(..)");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn outbox_dead_letter_count(&self) -> Result<u64, Error> {
        super::dead_count(self.pool()).await
    }

    /// The outbox rows a relay gave up on (see
    /// [`OutboxRelay::max_attempts`](crate::OutboxRelay::max_attempts)),
    /// oldest first, at most `limit`.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// for letter in db.outbox_dead_letters(100).await? {
    ///     println!("{} {} after {} claims: {}", letter.id, letter.name, letter.attempts, letter.reason);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn outbox_dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::OutboxDeadLetter>, Error> {
        super::dead_letters(self.pool(), limit).await
    }

    /// Moves the dead letter `id` back into the outbox, claimable at once
    /// with its attempts reset, in one transaction (on PostgreSQL running
    /// relays wake for it). [`Error::NoDeadLetter`] if there is none with
    /// that id.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// // After fixing what made the handlers fail:
    /// for letter in db.outbox_dead_letters(100).await? {
    ///     if letter.event.is_some() {
    ///         db.requeue_outbox_dead_letter(&letter.id).await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn requeue_outbox_dead_letter(&self, id: &str) -> Result<(), Error> {
        super::requeue_dead_letter(self.pool(), id).await
    }

    /// Deletes every outbox dead letter; returns how many there were.
    ///
    /// ```no_run
    /// # async fn run(db: earn::Db) -> Result<(), earn::Error> {
    /// let purged = db.purge_outbox_dead_letters().await?;
    /// println!("purged {purged} dead letters");
    /// # Ok(()) }
    /// ```
    pub async fn purge_outbox_dead_letters(&self) -> Result<u64, Error> {
        super::purge_dead_letters(self.pool()).await
    }
}
