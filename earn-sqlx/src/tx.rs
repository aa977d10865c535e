//! `Tx` and `Savepoint`: a connection inside `BEGIN`, holding what waits
//! for the end of the transaction.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use earn_core::{Error, Event, Operation};

use crate::backend::Dialect;
use crate::connection::{Conn, Server, connection_error};
use crate::deferred::{Deferred, Finished};
use crate::hook::{ModelOutcome, Step, wants_changes};
use crate::model::Entity;
use crate::publish::Publisher;

/// An earn transaction: a pooled connection inside `BEGIN`, with what
/// waits for its end: the `after_commit` / `after_rollback` hooks of the
/// writes made in it and the events raised in it.
///
/// Get one with [`Db::begin`](crate::Db::begin). Writes made with
/// `save_in(&mut tx)` / `delete_in(&mut tx)` run their in-transaction hooks
/// at once. When [`commit`](Tx::commit) succeeds, the `after_commit` hooks
/// of every write run, then its events are published, in the order they
/// were raised. When the transaction rolls back, by
/// [`rollback`](Tx::rollback) or by dropping the `Tx`, the `after_rollback`
/// hooks run and no event is published.
///
/// [`begin`](Tx::begin) opens a savepoint.
///
/// ```no_run
/// # use earn::prelude::*;
/// # #[derive(Debug, Clone, Model)] #[model(table = "users")]
/// # struct User { #[model(primary_key, auto)] id: Option<i64>, name: String }
/// # async fn run(db: &Db) -> Result<(), earn::Error> {
/// let mut tx = db.begin().await?;
/// let mut ada = User { id: None, name: "Ada".into() };
/// ada.save_in(&mut tx).await?;
/// tx.raise(Event::new("signup.started", &"Ada")?)?;
/// {
///     let mut sp = tx.begin().await?;          // SAVEPOINT
///     let mut bob = User { id: None, name: "Bob".into() };
///     bob.save_in(&mut sp).await?;
///     sp.raise(Event::new("signup.started", &"Bob")?)?;
///     sp.rollback().await?;                    // Bob's row, hooks and event are gone
/// }
/// tx.commit().await?;                          // Ada's after_commit hooks, then Ada's event
/// # Ok(()) }
/// ```
///
/// # Cancellation
///
/// Dropping a future of a `Tx` method half way, or the `Tx` itself, rolls
/// the transaction back as a drop does: sqlx runs the `ROLLBACK` before
/// the connection is used again, and the `after_rollback` hooks run in a
/// task of their own. A write (`save_in`, `delete_in`, …) dropped half way
/// leaves the transaction unable to commit, as a failed write does
/// ([`commit`](Tx::commit) rolls back and returns
/// [`Error::TransactionAborted`]); a savepoint around it recovers. A
/// dropped [`commit`](Tx::commit) may have committed: then its hooks and
/// events are lost with the future; await it.
pub struct Tx {
    pub(crate) conn: Conn,
    deferred: Deferred,
    /// Set when a write failed after changing the database: the savepoint
    /// depth it happened at and the error message.
    poison: Option<(usize, String)>,
    /// Writes begun and not finished: one left when the transaction ends
    /// was cancelled half way (its future dropped), and its transaction
    /// must not commit.
    unfinished: usize,
    /// `unfinished` when each open savepoint began: rolling one back
    /// forgives the writes cancelled inside it.
    unfinished_at: Vec<usize>,
    open: bool,
    publisher: Arc<dyn Publisher>,
    pub(crate) server: Arc<Server>,
    /// The store model events are appended to, if any.
    pub(crate) streams: Option<crate::store::EventStore>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("dialect", &self.dialect())
            .field("savepoints", &self.deferred.depth())
            .field("can_commit", &self.poison.is_none())
            .finish_non_exhaustive()
    }
}

impl Tx {
    pub(crate) async fn begin_on(
        mut conn: Conn,
        publisher: Arc<dyn Publisher>,
        server: Arc<Server>,
        streams: Option<crate::store::EventStore>,
    ) -> Result<Tx, Error> {
        conn.begin().await.map_err(connection_error("begin"))?;
        Ok(Tx {
            conn,
            deferred: Deferred::default(),
            poison: None,
            unfinished: 0,
            unfinished_at: Vec::new(),
            open: true,
            publisher,
            server,
            streams,
        })
    }

    /// The dialect of the connection.
    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Opens a savepoint. Writes made and events raised in it can be undone
    /// on their own with [`Savepoint::rollback`], which also drops their
    /// `after_commit` hooks and events and runs their `after_rollback`
    /// hooks; [`Savepoint::commit`] hands them to the enclosing
    /// transaction. Dropping the savepoint rolls it back (its
    /// `after_rollback` hooks then run when the transaction ends).
    pub async fn begin(&mut self) -> Result<Savepoint<'_>, Error> {
        // What this level raised so far is written at this level, so the
        // savepoint's rollback cannot take it along.
        self.stage().await?;
        self.conn
            .begin()
            .await
            .map_err(connection_error("savepoint"))?;
        self.deferred.open_savepoint();
        self.unfinished_at.push(self.unfinished);
        Ok(Savepoint {
            tx: self,
            open: true,
        })
    }

    /// Commits. Then runs the `after_commit` hooks of every write made in
    /// the transaction (each one even if another fails; failures are
    /// reported through `tracing`, not returned), then publishes its
    /// events in the order they were raised.
    ///
    /// If a write in the transaction failed after changing the database,
    /// the transaction is rolled back instead and
    /// [`Error::TransactionAborted`] returned.
    pub async fn commit(mut self) -> Result<(), Error> {
        if self.unfinished > 0 {
            self.poison(&Error::TransactionAborted {
                reason: "a write in it was cancelled half way (its future was dropped)".into(),
            });
        }
        if let Some((_, reason)) = self.poison.take() {
            self.rollback_inner().await?;
            return Err(Error::TransactionAborted { reason });
        }
        if let Err(error) = self.stage().await {
            self.rollback_inner().await?;
            return Err(error);
        }
        let committed = self.conn.commit().await;
        self.open = false;
        match committed {
            Ok(()) => {
                self.finish(true).await;
                Ok(())
            }
            Err(error) => {
                // A failed COMMIT leaves nothing committed.
                self.finish(false).await;
                Err(connection_error("commit")(error))
            }
        }
    }

    /// Rolls back, then runs the `after_rollback` hooks of its writes.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.rollback_inner().await
    }

    async fn rollback_inner(&mut self) -> Result<(), Error> {
        let result = self.conn.rollback().await;
        self.open = false;
        self.finish(false).await;
        result.map_err(connection_error("rollback"))
    }

    /// Runs the outcome hooks, then publishes the events if committed.
    async fn finish(&mut self, committed: bool) {
        if self.deferred.is_empty() {
            return;
        }
        let mut finished = self.deferred.finish(committed);
        finished.run_outcomes().await;
        if !finished.events.is_empty() {
            self.publisher.publish(finished.events).await;
        }
    }

    /// Raises `event` in this transaction: it is published once the
    /// transaction commits, after its `after_commit` hooks, and dropped if
    /// the transaction (or the savepoint it was raised in) rolls back.
    /// With an outbox ([`Db::with_outbox`](crate::Db::with_outbox)) it is
    /// also written as an outbox row inside the transaction, so a crash
    /// after the commit cannot lose it.
    ///
    /// An event larger than the outbox sink accepts is refused here with
    /// [`Error::PayloadTooLarge`], before anything is committed.
    ///
    /// With the `otel` feature the event takes the current span's W3C trace
    /// context here (`earn::trace_context::inject`), so its outbox row
    /// carries it and the handlers, wherever they run, join the trace.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = earn::EventBus::builder().without_registered_handlers().build()?;
    /// let db = earn::Db::connect("sqlite::memory:").await?.with_bus(bus.clone());
    /// let seen = bus.wait_for("invoice.sent", std::time::Duration::from_secs(5));
    /// let mut tx = db.begin().await?;
    /// tx.raise(earn::Event::new("invoice.sent", &42)?)?;
    /// tx.commit().await?;
    /// assert_eq!(seen.await?.payload::<i32>()?, 42);
    /// # Ok(()) }
    /// ```
    pub fn raise(&mut self, event: Event) -> Result<(), Error> {
        // The event leaves the span that raised it here (feature `otel`):
        // its outbox row carries the trace context.
        #[cfg(feature = "otel")]
        let event = earn_core::trace_context::inject(event);
        let raised = self.publisher.accept(event)?;
        self.deferred.push_event(raised);
        Ok(())
    }

    /// Writes the events raised at the current level as outbox rows, when
    /// the publisher is the outbox. A failure leaves the transaction
    /// unable to commit (a failed statement aborts it on PostgreSQL).
    async fn stage(&mut self) -> Result<(), Error> {
        if !self.publisher.stages() || !self.deferred.has_unstaged() {
            return Ok(());
        }
        let events = self.deferred.unstaged().collect();
        let staged = self.publisher.stage(&mut self.conn, events).await;
        match staged {
            Ok(()) => {
                self.deferred.mark_staged();
                Ok(())
            }
            Err(error) => {
                self.poison(&error);
                Err(error)
            }
        }
    }

    /// Where a write starts in the deferred work, to drop its events if it
    /// fails.
    pub(crate) fn mark(&self) -> usize {
        self.deferred.mark()
    }

    /// Drops the events raised since `mark` by a write that failed.
    pub(crate) fn drop_events_since(&mut self, mark: usize) {
        if self.deferred.drop_events_since(mark) {
            // Only a hook using the transaction can stage (by opening a
            // savepoint), which poisons the transaction already; never
            // commit a row of a dropped event regardless.
            self.poison(&Error::TransactionAborted {
                reason: "an event of a failed write was already written to the outbox".into(),
            });
        }
    }

    /// Queues the outcome hooks of a write (`written: false` for one that
    /// failed: only `after_rollback` applies).
    pub(crate) fn queue_outcome<M: Entity>(
        &mut self,
        model: M,
        operation: Operation,
        written: bool,
    ) {
        self.deferred.push_outcome(
            Box::new(ModelOutcome {
                model,
                operation,
                step: None,
            }),
            written,
        );
    }

    /// Queues the outcome hooks of a committed-to-be write, keeping the row
    /// as it was before it (`previous`) and the fields it changed when an
    /// `after_commit` hook takes the transaction's changes.
    pub(crate) fn queue_written<M: Entity>(
        &mut self,
        model: M,
        operation: Operation,
        previous: Option<&M>,
        changed: &[&'static str],
    ) {
        let step = wants_changes::<M>().then(|| Step {
            previous: previous.cloned(),
            changed: changed.to_vec(),
        });
        self.deferred.push_outcome(
            Box::new(ModelOutcome {
                model,
                operation,
                step,
            }),
            true,
        );
    }

    /// A write begins: see `unfinished`.
    pub(crate) fn write_begins(&mut self) {
        self.unfinished += 1;
    }

    /// The write begun last ran to its end, successful or not.
    pub(crate) fn write_ends(&mut self) {
        self.unfinished = self.unfinished.saturating_sub(1);
    }

    /// Marks the transaction as unable to commit.
    pub(crate) fn poison(&mut self, error: &Error) {
        if self.poison.is_none() {
            self.poison = Some((self.deferred.depth(), error.to_string()));
        }
    }

    /// Refuses further writes once a write failed after changing the database.
    pub(crate) fn ensure_usable(&self) -> Result<(), Error> {
        match &self.poison {
            Some((_, reason)) => Err(Error::TransactionAborted {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The connection, if it is SQLite: for a hook's own SQL.
    #[cfg(feature = "sqlite")]
    pub fn as_sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &mut self.conn {
            Conn::Sqlite(c) => Some(&mut *c),
            _ => None,
        }
    }

    /// The connection, if it is PostgreSQL: for a hook's own SQL.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &mut self.conn {
            Conn::Postgres(c) => Some(&mut *c),
            _ => None,
        }
    }

    /// The connection, if it is MySQL / MariaDB: for a hook's own SQL.
    #[cfg(feature = "mysql")]
    pub fn as_mysql(&mut self) -> Option<&mut sqlx::MySqlConnection> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &mut self.conn {
            Conn::MySql(c) => Some(&mut *c),
            _ => None,
        }
    }

    /// Runs SQL that takes no parameters (DDL, `SET`, …) in the transaction.
    /// For statements with values, use the connection of
    /// `as_sqlite` / `as_postgres` / `as_mysql` with bound parameters.
    pub async fn execute_unprepared(&mut self, sql: &str) -> Result<(), Error> {
        self.conn.execute_unprepared(sql).await
    }
}

/// Runs `after_rollback` hooks from a destructor, where nothing can be
/// awaited.
fn spawn_outcomes(mut finished: Finished) {
    if finished.outcomes.is_empty() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move { finished.run_outcomes().await });
        }
        Err(_) => tracing::error!(
            hooks = finished.outcomes.len(),
            "a transaction was dropped outside a tokio runtime: its after_rollback hooks cannot run"
        ),
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            // sqlx queues the ROLLBACK and runs it before the connection is
            // used again or returned to the pool.
            self.conn.start_rollback();
            spawn_outcomes(self.deferred.finish(false));
        }
    }
}

/// A savepoint inside a [`Tx`]; use it wherever a `&mut Tx` is expected.
/// Dropping it without [`commit`](Savepoint::commit) rolls it back.
pub struct Savepoint<'t> {
    tx: &'t mut Tx,
    open: bool,
}

impl std::fmt::Debug for Savepoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Savepoint").field("tx", &self.tx).finish()
    }
}

impl Savepoint<'_> {
    /// Releases the savepoint: its writes, their outcome hooks and its
    /// events now belong to the enclosing transaction.
    pub async fn commit(mut self) -> Result<(), Error> {
        self.open = false;
        let staged = self.tx.stage().await;
        let released = self.tx.conn.commit().await;
        self.tx.deferred.release_savepoint();
        let depth = self.tx.deferred.depth();
        if let Some((at, _)) = &mut self.tx.poison {
            // A failed write inside now taints the enclosing level.
            *at = (*at).min(depth);
        }
        self.tx.unfinished_at.pop();
        staged?;
        released.map_err(connection_error("release savepoint"))
    }

    /// Rolls back to the savepoint: its writes are undone, their
    /// `after_commit` hooks and its events dropped, and their
    /// `after_rollback` hooks run. A failed write inside it no longer stops
    /// the transaction from committing.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.open = false;
        let result = self.tx.conn.rollback().await;
        let mut undone = self.tx.deferred.roll_back_savepoint();
        self.forgive();
        undone.run_outcomes().await;
        result.map_err(connection_error("rollback to savepoint"))
    }

    /// A failed or cancelled write inside the savepoint was undone with it.
    fn forgive(&mut self) {
        let depth = self.tx.deferred.depth();
        if self.tx.poison.as_ref().is_some_and(|(at, _)| *at > depth) {
            self.tx.poison = None;
        }
        if let Some(at_begin) = self.tx.unfinished_at.pop() {
            self.tx.unfinished = at_begin;
        }
    }
}

impl Deref for Savepoint<'_> {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        self.tx
    }
}

impl DerefMut for Savepoint<'_> {
    fn deref_mut(&mut self) -> &mut Tx {
        self.tx
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.open {
            self.tx.conn.start_rollback();
            self.tx.deferred.drop_savepoint();
            self.forgive();
        }
    }
}
