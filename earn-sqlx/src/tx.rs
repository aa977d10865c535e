//! Transactions and savepoints that hold outcome hooks until the end.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use earn_core::{Error, Event, EventBus, HookPhase, Operation};
use sqlx::Database;
use sqlx::pool::PoolConnection;
use sqlx_core::transaction::TransactionManager;

use crate::backend::Dialect;
use crate::db::Db;
use crate::hook;
use crate::model::Entity;
use crate::outbox::{self, Outbox, OutboxDispatch};

/// A pooled connection of one of the enabled backends.
pub(crate) enum Conn {
    #[cfg(feature = "sqlite")]
    Sqlite(PoolConnection<sqlx::Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    MySql(PoolConnection<sqlx::MySql>),
}

impl Conn {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Conn::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Conn::MySql(_) => Dialect::MySql,
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete `&mut DB::Connection` and
/// `$DB` to the backend type.
macro_rules! dispatch {
    ($conn:expr, |$c:ident, $DB:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "sqlite")]
            $crate::tx::Conn::Sqlite(pooled) => {
                #[allow(dead_code)]
                type $DB = sqlx::Sqlite;
                let $c: &mut sqlx::SqliteConnection = &mut *pooled;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::tx::Conn::Postgres(pooled) => {
                #[allow(dead_code)]
                type $DB = sqlx::Postgres;
                let $c: &mut sqlx::PgConnection = &mut *pooled;
                $body
            }
            #[cfg(feature = "mysql")]
            $crate::tx::Conn::MySql(pooled) => {
                #[allow(dead_code)]
                type $DB = sqlx::MySql;
                let $c: &mut sqlx::MySqlConnection = &mut *pooled;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What waits for the end of the transaction: the outcome hooks of a
/// write, or an event.
trait Pending: Send {
    fn finish(self: Box<Self>, committed: bool, bus: Option<&EventBus>) -> BoxFuture;
    /// Whether this is an event (dropped when the write that raised it fails).
    fn is_event(&self) -> bool {
        false
    }
}

/// An event raised in the transaction: published after the commit,
/// dropped by a rollback. With an outbox, `outbox` is the database whose
/// row is deleted once the event is handled.
struct PendingEvent {
    event: Event,
    outbox: Option<Db>,
}

impl Pending for PendingEvent {
    fn finish(self: Box<Self>, committed: bool, bus: Option<&EventBus>) -> BoxFuture {
        if !committed {
            return Box::pin(async {});
        }
        let bus = bus.unwrap_or_else(|| EventBus::global()).clone();
        Box::pin(async move {
            let PendingEvent { event, outbox } = *self;
            if let Some(db) = outbox {
                return outbox::publish(&db, &bus, event).await;
            }
            let name = event.name().to_string();
            if let Err(error) = bus.publish(event).await {
                metrics::counter!("earn_events_undelivered_total").increment(1);
                tracing::error!(event = name, %error, "an event of a committed transaction could not be published");
            }
        })
    }

    fn is_event(&self) -> bool {
        true
    }
}

struct ModelOutcome<M> {
    model: M,
    operation: Operation,
    /// `false` for a write that failed: only `after_rollback` applies.
    written: bool,
}

impl<M: Entity> Pending for ModelOutcome<M> {
    fn finish(self: Box<Self>, committed: bool, _bus: Option<&EventBus>) -> BoxFuture {
        let phase = if committed {
            HookPhase::AfterCommit
        } else {
            HookPhase::AfterRollback
        };
        if committed && !self.written {
            return Box::pin(async {});
        }
        Box::pin(hook::run_outcome(phase, self.model, self.operation))
    }
}

/// An earn transaction: a pooled connection inside `BEGIN`, with the
/// `after_commit` / `after_rollback` hooks of the writes made in it.
///
/// Get one with [`Db::begin`](crate::Db::begin). Writes made with
/// `save_in(&mut tx)` / `delete_in(&mut tx)` run their in-transaction hooks
/// at once; their `after_commit` hooks run only when [`commit`](Tx::commit)
/// succeeds, and their `after_rollback` hooks when the transaction rolls
/// back: by [`rollback`](Tx::rollback), or by dropping the `Tx`.
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
/// {
///     let mut sp = tx.begin().await?;          // SAVEPOINT
///     let mut bob = User { id: None, name: "Bob".into() };
///     bob.save_in(&mut sp).await?;
///     sp.rollback().await?;                    // Bob's row and hooks are gone
/// }
/// tx.commit().await?;                          // Ada's after_commit hooks run here
/// # Ok(()) }
/// ```
pub struct Tx {
    pub(crate) conn: Conn,
    queue: Vec<Box<dyn Pending>>,
    /// Queue length when each open savepoint began.
    marks: Vec<usize>,
    /// Set when a write failed after changing the database: the savepoint
    /// depth it happened at and the error message.
    poison: Option<(usize, String)>,
    open: bool,
    bus: Option<EventBus>,
    /// The database, when its outbox is on.
    outbox: Option<(Db, Outbox)>,
    /// Events raised but not yet written to the outbox table.
    unsaved: Vec<Event>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("dialect", &self.dialect())
            .field("savepoints", &self.marks.len())
            .field("queued_outcomes", &self.queue.len())
            .finish()
    }
}

fn tx_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Connection {
        operation,
        source: Box::new(source),
    }
}

impl Tx {
    pub(crate) async fn begin_on(mut conn: Conn, db: &Db) -> Result<Self, Error> {
        dispatch!(&mut conn, |c, DB| {
            <DB as Database>::TransactionManager::begin(c, None).await
        })
        .map_err(tx_error("begin"))?;
        Ok(Tx {
            conn,
            queue: Vec::new(),
            marks: Vec::new(),
            poison: None,
            open: true,
            bus: db.bus_handle(),
            outbox: db.outbox().map(|outbox| (db.clone(), outbox)),
            unsaved: Vec::new(),
        })
    }

    /// The dialect of the connection.
    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Opens a savepoint. Writes made in it can be undone on their own with
    /// [`Savepoint::rollback`], which also drops their `after_commit` hooks
    /// and runs their `after_rollback` hooks; [`Savepoint::commit`] hands
    /// them to the enclosing transaction. Dropping the savepoint rolls it back.
    pub async fn begin(&mut self) -> Result<Savepoint<'_>, Error> {
        dispatch!(&mut self.conn, |c, DB| {
            <DB as Database>::TransactionManager::begin(c, None).await
        })
        .map_err(tx_error("savepoint"))?;
        self.marks.push(self.queue.len());
        Ok(Savepoint {
            tx: self,
            open: true,
        })
    }

    /// Commits, then runs the `after_commit` hooks of every write made in
    /// the transaction (each one even if another fails; failures are
    /// reported through `tracing`, not returned).
    ///
    /// If a write in the transaction failed after changing the database,
    /// the transaction is rolled back instead and
    /// [`Error::TransactionAborted`] returned.
    pub async fn commit(mut self) -> Result<(), Error> {
        if let Some((_, reason)) = self.poison.take() {
            self.rollback_inner().await?;
            return Err(Error::TransactionAborted { reason });
        }
        if let Err(error) = self.flush_outbox().await {
            self.rollback_inner().await?;
            return Err(error);
        }
        let committed = dispatch!(&mut self.conn, |c, DB| {
            <DB as Database>::TransactionManager::commit(c).await
        });
        self.open = false;
        match committed {
            Ok(()) => {
                self.finish_queue(true).await;
                Ok(())
            }
            Err(error) => {
                // A failed COMMIT leaves nothing committed.
                self.finish_queue(false).await;
                Err(tx_error("commit")(error))
            }
        }
    }

    /// Rolls back, then runs the `after_rollback` hooks of its writes.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.rollback_inner().await
    }

    async fn rollback_inner(&mut self) -> Result<(), Error> {
        let result = dispatch!(&mut self.conn, |c, DB| {
            <DB as Database>::TransactionManager::rollback(c).await
        });
        self.open = false;
        self.finish_queue(false).await;
        result.map_err(tx_error("rollback"))
    }

    /// Raises `event` in this transaction: it is published once the
    /// transaction commits and dropped if it rolls back. With an outbox
    /// ([`Db::with_outbox`]) it is also written as an outbox row inside the
    /// transaction, so a crash after the commit cannot lose it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = earn::EventBus::builder().without_registered_handlers().build()?;
    /// let db = earn::Db::connect("sqlite::memory:").await?.with_bus(bus.clone());
    /// let seen = bus.wait_for("invoice.sent", std::time::Duration::from_secs(5));
    /// let mut tx = db.begin().await?;
    /// tx.emit(earn::Event::new("invoice.sent", &42)?);
    /// tx.commit().await?;
    /// assert_eq!(seen.await?.payload::<i32>()?, 42);
    /// # Ok(()) }
    /// ```
    pub fn emit(&mut self, event: Event) {
        self.queue_event(event);
    }

    /// Queues an event, published after the outermost commit. With an
    /// outbox it is also staged for [`flush_outbox`](Tx::flush_outbox).
    pub(crate) fn queue_event(&mut self, event: Event) {
        let Some((db, outbox)) = &self.outbox else {
            self.queue.push(Box::new(PendingEvent {
                event,
                outbox: None,
            }));
            return;
        };
        if outbox.dispatch == OutboxDispatch::Inline {
            self.queue.push(Box::new(PendingEvent {
                event: event.clone(),
                outbox: Some(db.clone()),
            }));
        }
        self.unsaved.push(event);
    }

    /// Writes staged events as outbox rows in this transaction.
    pub(crate) async fn flush_outbox(&mut self) -> Result<(), Error> {
        let Some((_, settings)) = &self.outbox else {
            return Ok(());
        };
        if self.unsaved.is_empty() {
            return Ok(());
        }
        // The committer claims its own rows for one lease; relay-only rows
        // are claimable at once.
        let claimed_until = match settings.dispatch {
            OutboxDispatch::Inline => outbox::now_ms()
                .saturating_add(i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX)),
            OutboxDispatch::Relay => 0,
        };
        let dialect = self.dialect();
        let events = std::mem::take(&mut self.unsaved);
        outbox::insert(&mut self.conn, dialect, &events, claimed_until).await
    }

    /// Where a write starts in the queues, to drop its events if it fails.
    pub(crate) fn event_mark(&self) -> (usize, usize) {
        (self.queue.len(), self.unsaved.len())
    }

    /// Drops the events raised since `mark` (by a write that failed).
    pub(crate) fn drop_events_since(&mut self, mark: (usize, usize)) {
        let mut index = 0;
        self.queue.retain(|pending| {
            let keep = index < mark.0 || !pending.is_event();
            index += 1;
            keep
        });
        self.unsaved.truncate(mark.1);
    }

    /// Runs (or drops) what waited for the end of the transaction.
    async fn finish_queue(&mut self, committed: bool) {
        let queue = std::mem::take(&mut self.queue);
        let bus = self.bus.clone();
        run_outcomes(queue, committed, bus.as_ref()).await;
    }

    /// Queues the outcome hooks of a write.
    pub(crate) fn queue_outcome<M: Entity>(
        &mut self,
        model: M,
        operation: Operation,
        written: bool,
    ) {
        self.queue.push(Box::new(ModelOutcome {
            model,
            operation,
            written,
        }));
    }

    /// Marks the transaction as unable to commit.
    pub(crate) fn poison(&mut self, error: &Error) {
        if self.poison.is_none() {
            self.poison = Some((self.marks.len(), error.to_string()));
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
        dispatch!(&mut self.conn, |c, DB| {
            <DB as crate::Backend>::run_ddl(c, sql.to_owned()).await
        })
        .map_err(tx_error("execute"))
    }

    fn start_rollback_on_drop(&mut self) {
        dispatch!(&mut self.conn, |c, DB| {
            <DB as Database>::TransactionManager::start_rollback(c)
        });
    }
}

/// Runs outcome hooks and publishes events, in queue order.
async fn run_outcomes(queue: Vec<Box<dyn Pending>>, committed: bool, bus: Option<&EventBus>) {
    for pending in queue {
        pending.finish(committed, bus).await;
    }
}

/// Runs outcome hooks from a destructor, where nothing can be awaited.
fn spawn_outcomes(queue: Vec<Box<dyn Pending>>) {
    if queue.is_empty() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(run_outcomes(queue, false, None));
        }
        Err(_) => tracing::error!(
            hooks = queue.len(),
            "a transaction was dropped outside a tokio runtime: its after_rollback hooks cannot run"
        ),
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            // sqlx queues the ROLLBACK and runs it before the connection is
            // used again or returned to the pool.
            self.start_rollback_on_drop();
            spawn_outcomes(std::mem::take(&mut self.queue));
        }
    }
}

/// A savepoint inside a [`Tx`]; use it wherever a `&mut Tx` is expected.
/// Dropping it without [`commit`](Savepoint::commit) rolls it back.
pub struct Savepoint<'t> {
    tx: &'t mut Tx,
    open: bool,
}

impl Savepoint<'_> {
    /// Releases the savepoint: its writes and their outcome hooks now belong
    /// to the enclosing transaction.
    pub async fn commit(mut self) -> Result<(), Error> {
        self.open = false;
        let released = dispatch!(&mut self.tx.conn, |c, DB| {
            <DB as Database>::TransactionManager::commit(c).await
        });
        self.tx.marks.pop();
        let depth = self.tx.marks.len();
        if let Some((at, _)) = &mut self.tx.poison {
            // A failed write inside now taints the enclosing level.
            *at = (*at).min(depth);
        }
        released.map_err(tx_error("release savepoint"))
    }

    /// Rolls back to the savepoint: its writes are undone, their
    /// `after_commit` hooks dropped and their `after_rollback` hooks run. A
    /// failed write inside it no longer stops the transaction from committing.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.open = false;
        let result = dispatch!(&mut self.tx.conn, |c, DB| {
            <DB as Database>::TransactionManager::rollback(c).await
        });
        let undone = self.unwind();
        let bus = self.tx.bus.clone();
        run_outcomes(undone, false, bus.as_ref()).await;
        result.map_err(tx_error("rollback to savepoint"))
    }

    /// Pops the savepoint's mark and takes its queued outcomes.
    fn unwind(&mut self) -> Vec<Box<dyn Pending>> {
        let mark = self.tx.marks.pop().unwrap_or(0);
        if self
            .tx
            .poison
            .as_ref()
            .is_some_and(|(depth, _)| *depth > self.tx.marks.len())
        {
            self.tx.poison = None;
        }
        self.tx.queue.split_off(mark.min(self.tx.queue.len()))
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
            self.tx.start_rollback_on_drop();
            let undone = self.unwind();
            spawn_outcomes(undone);
        }
    }
}
