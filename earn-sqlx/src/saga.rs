//! Sagas (process managers): a workflow across services, keyed by the
//! correlation id its events share, whose state is a row in the database
//! changed in the transaction that handles each event, with the events it
//! sends, the compensations it would run and its timeout.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn_core::__private::uuid;
use earn_core::{Error, Event, EventBus, EventData, HandlerError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::{Conn, with_backend};
use crate::db::Db;
use crate::outbox::now_ms;
use crate::tx::Tx;

/// The sagas' table.
pub const SAGA_TABLE: &str = "earn_sagas";

/// A workflow driven by events: the seeds' order saga takes a payment,
/// reserves stock, and refunds the payment if the stock is not there.
///
/// One instance runs per correlation id: an event named in
/// [`STARTS`](Saga::STARTS) with a correlation id no saga of this kind has
/// yet starts one from `Default`; events named in
/// [`HANDLES`](Saga::HANDLES) move the one of their correlation id (an
/// event of no running saga is ignored). Events it sends with
/// [`SagaContext::send`] carry its correlation id, so their answers come
/// back to it.
///
/// ```
/// use std::time::Duration;
/// use earn::saga::{Saga, SagaContext};
/// use earn::{Event, HandlerError};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct OrderSaga {
///     order: i64,
/// }
///
/// impl Saga for OrderSaga {
///     const NAME: &'static str = "order";
///     const STARTS: &'static [&'static str] = &["order.created"];
///     const HANDLES: &'static [&'static str] = &["payment.completed", "payment.failed"];
///
///     async fn handle(&mut self, event: &Event, saga: &mut SagaContext<'_>) -> Result<(), HandlerError> {
///         match event.name().as_str() {
///             "order.created" => {
///                 self.order = event.payload_json()["order"].as_i64().unwrap_or(0);
///                 saga.send(Event::new("payment.request", &serde_json::json!({"order": self.order}))?);
///                 saga.timeout_after(Duration::from_secs(60));
///             }
///             "payment.completed" => saga.complete(),
///             _ => saga.fail("the payment failed"),
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Saga: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind of saga: the key of its rows, with the correlation id.
    const NAME: &'static str;
    /// Patterns of the events that start a saga.
    const STARTS: &'static [&'static str];
    /// Patterns of the events a running saga handles.
    const HANDLES: &'static [&'static str];

    /// Moves the saga on `event`, in the transaction that stores its new
    /// state ([`SagaContext::tx`] for writes of your own). An error rolls
    /// everything back: nothing is stored or sent, and the bus retries.
    fn handle(
        &mut self,
        event: &Event,
        saga: &mut SagaContext<'_>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Runs when the deadline set with [`SagaContext::timeout_after`]
    /// passes before the saga finished: by default it fails, running its
    /// compensations.
    fn on_timeout(
        &mut self,
        saga: &mut SagaContext<'_>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        saga.fail("timed out");
        std::future::ready(Ok(()))
    }
}

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStatus {
    /// Waiting for its next event.
    Running,
    /// Finished with [`SagaContext::complete`].
    Completed,
    /// Finished with [`SagaContext::fail`] (or a timeout): its
    /// compensations were sent.
    Failed,
}

impl SagaStatus {
    fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Completed => "completed",
            SagaStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> SagaStatus {
        match text {
            "completed" => SagaStatus::Completed,
            "failed" => SagaStatus::Failed,
            _ => SagaStatus::Running,
        }
    }
}

/// What one step of a saga does besides changing its state: the
/// transaction, the events it sends, its compensations and its timeout.
pub struct SagaContext<'t> {
    tx: &'t mut Tx,
    id: uuid::Uuid,
    cause: Option<Event>,
    sent: Vec<Event>,
    compensations: Vec<EventData>,
    deadline: Option<i64>,
    status: SagaStatus,
    reason: Option<String>,
}

impl std::fmt::Debug for SagaContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaContext")
            .field("id", &self.id)
            .field("sent", &self.sent.len())
            .field("compensations", &self.compensations.len())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl SagaContext<'_> {
    /// The saga's id: the correlation id of its events.
    pub fn id(&self) -> uuid::Uuid {
        self.id
    }

    /// The transaction the step runs in, for writes of your own: they
    /// commit with the saga's state, or not at all.
    pub fn tx(&mut self) -> &mut Tx {
        self.tx
    }

    /// Sends `event` once the step commits (through the database's
    /// outbox when it has one), in the saga's correlation.
    pub fn send(&mut self, event: Event) {
        let event = self.in_saga(event);
        self.sent.push(event);
    }

    /// Records `event` as the compensation of the step just done (a
    /// refund for a payment): if the saga fails later, its compensations
    /// are sent, the latest first.
    pub fn compensate_with(&mut self, event: Event) {
        self.compensations.push(event.data().clone());
    }

    /// Fails the saga if it has not finished `after` from now (the
    /// deadline is stored; [`Sagas::start_timeouts`] watches it). A later
    /// call moves the deadline.
    pub fn timeout_after(&mut self, after: Duration) {
        let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        self.deadline = Some(now_ms().saturating_add(after));
    }

    /// The saga succeeded: it handles no more events.
    pub fn complete(&mut self) {
        self.status = SagaStatus::Completed;
        self.deadline = None;
        self.compensations.clear();
    }

    /// The saga failed: its compensations are sent, the latest first, and
    /// it handles no more events.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.status = SagaStatus::Failed;
        self.reason = Some(reason.into());
        self.deadline = None;
        while let Some(data) = self.compensations.pop() {
            let event = self.in_saga(Event::from_data(data));
            self.sent.push(event);
        }
    }

    /// `event` in this saga's correlation (caused by the event handled).
    fn in_saga(&self, event: Event) -> Event {
        match &self.cause {
            Some(cause) => event.caused_by(cause),
            None => {
                let mut data = event.data().clone();
                data.correlation_id = self.id;
                Event::from_data(data)
            }
        }
    }
}

/// A saga's stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaRecord<S> {
    /// The saga's id (its correlation id).
    pub id: uuid::Uuid,
    /// Where it is.
    pub status: SagaStatus,
    /// Its state.
    pub state: S,
    /// Why it failed.
    pub reason: Option<String>,
    /// How many steps it took.
    pub version: u64,
    /// When it times out, in milliseconds since the Unix epoch.
    pub deadline: Option<i64>,
}

/// Fires the due timeouts of one kind of saga; returns how many fired.
type FireFn = Arc<
    dyn Fn(Db) -> std::pin::Pin<Box<dyn Future<Output = Result<usize, Error>> + Send>>
        + Send
        + Sync,
>;

/// The sagas of one database: installs their table, subscribes them to a
/// bus and fires their timeouts. Cheap to clone.
///
/// ```no_run
/// # use earn::saga::{Saga, SagaContext};
/// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct OrderSaga;
/// # impl Saga for OrderSaga {
/// #     const NAME: &'static str = "order";
/// #     const STARTS: &'static [&'static str] = &["order.created"];
/// #     const HANDLES: &'static [&'static str] = &["payment.*"];
/// #     async fn handle(&mut self, _: &earn::Event, _: &mut SagaContext<'_>) -> Result<(), earn::HandlerError> { Ok(()) }
/// # }
/// # async fn run(db: earn::Db, bus: earn::EventBus) -> Result<(), earn::Error> {
/// use std::time::Duration;
/// use earn::saga::Sagas;
///
/// let sagas = Sagas::new(&db);
/// sagas.install().await?; // earn_sagas and the inbox
/// sagas.register::<OrderSaga>(&bus)?;
/// let _timeouts = sagas.start_timeouts(Duration::from_secs(1));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sagas {
    db: Db,
    kinds: Arc<Mutex<HashMap<&'static str, FireFn>>>,
}

impl std::fmt::Debug for Sagas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<&str> = self.lock().keys().copied().collect();
        f.debug_struct("Sagas").field("kinds", &kinds).finish()
    }
}

const MIGRATION: [&str; 3] = [
    include_str!("../migrations/saga_sqlite.sql"),
    include_str!("../migrations/saga_postgres.sql"),
    include_str!("../migrations/saga_mysql.sql"),
];

/// Reads a saga, locking its row for the transaction where the database
/// can (SQLite has one writer at a time: the transaction holds it).
const LOAD: [&str; 3] = [
    "SELECT status, state, compensations, deadline, reason, version FROM earn_sagas WHERE saga = ? AND id = ?",
    "SELECT status, state, compensations, deadline, reason, version FROM earn_sagas WHERE saga = $1 AND id = $2 FOR UPDATE",
    "SELECT status, state, compensations, deadline, reason, version FROM earn_sagas WHERE saga = ? AND id = ? FOR UPDATE",
];

const INSERT: [&str; 3] = [
    "INSERT INTO earn_sagas (status, state, compensations, deadline, reason, version, updated_at, saga, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO earn_sagas (status, state, compensations, deadline, reason, version, updated_at, saga, id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    "INSERT INTO earn_sagas (status, state, compensations, deadline, reason, version, updated_at, saga, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
];

const UPDATE: [&str; 3] = [
    "UPDATE earn_sagas SET status = ?, state = ?, compensations = ?, deadline = ?, reason = ?, version = ?, updated_at = ? WHERE saga = ? AND id = ?",
    "UPDATE earn_sagas SET status = $1, state = $2, compensations = $3, deadline = $4, reason = $5, version = $6, updated_at = $7 WHERE saga = $8 AND id = $9",
    "UPDATE earn_sagas SET status = ?, state = ?, compensations = ?, deadline = ?, reason = ?, version = ?, updated_at = ? WHERE saga = ? AND id = ?",
];

const DUE: [&str; 3] = [
    "SELECT id FROM earn_sagas WHERE saga = ? AND status = 'running' AND deadline <= ? ORDER BY deadline LIMIT 100",
    "SELECT id FROM earn_sagas WHERE saga = $1 AND status = 'running' AND deadline <= $2 ORDER BY deadline LIMIT 100",
    "SELECT id FROM earn_sagas WHERE saga = ? AND status = 'running' AND deadline <= ? ORDER BY deadline LIMIT 100",
];

fn saga_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    crate::connection::table_error(
        SAGA_TABLE,
        operation,
        "the sagas are not installed: run `Sagas::install`, or apply the migration its documentation gives",
    )
}

fn json_error(operation: &'static str, error: serde_json::Error) -> Error {
    Error::Database {
        table: SAGA_TABLE.into(),
        operation,
        source: Box::new(error),
    }
}

/// A saga's row as stored.
struct Row {
    status: SagaStatus,
    state: String,
    compensations: String,
    deadline: Option<i64>,
    reason: Option<String>,
    version: i64,
}

type RawRow = (String, String, String, Option<i64>, Option<String>, i64);

async fn load(conn: &mut Conn, saga: &str, id: &str) -> Result<Option<Row>, Error> {
    let statement = LOAD[conn.dialect() as usize];
    let row: Option<RawRow> = with_backend!(conn, |c, DB| {
        sqlx::query_as::<DB, RawRow>(statement)
            .bind(saga)
            .bind(id)
            .fetch_optional(&mut *c)
            .await
    })
    .map_err(saga_error("select"))?;
    Ok(row.map(
        |(status, state, compensations, deadline, reason, version)| Row {
            status: SagaStatus::parse(&status),
            state,
            compensations,
            deadline,
            reason,
            version,
        },
    ))
}

async fn store(conn: &mut Conn, saga: &str, id: &str, row: &Row, new: bool) -> Result<(), Error> {
    let dialect = conn.dialect();
    let statement = if new { INSERT } else { UPDATE }[dialect as usize];
    with_backend!(conn, |c, DB| {
        sqlx::query::<DB>(statement)
            .bind(row.status.as_str())
            .bind(row.state.as_str())
            .bind(row.compensations.as_str())
            .bind(row.deadline)
            .bind(row.reason.as_deref())
            .bind(row.version)
            .bind(now_ms())
            .bind(saga)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|_| ())
    })
    .map_err(saga_error(if new { "insert" } else { "update" }))
}

/// How a step was entered: by an event (that may start the saga), or by
/// its timeout.
enum Step<'e> {
    Event { event: &'e Event, starts: bool },
    Timeout,
}

/// Loads the saga `id` of kind `S`, runs one step on it in `tx`, and
/// stores the outcome there. `Ok(false)`: nothing to do (no such saga,
/// or it finished).
async fn step<S: Saga>(tx: &mut Tx, id: uuid::Uuid, step: Step<'_>) -> Result<bool, HandlerError> {
    let key = id.to_string();
    let row = load(&mut tx.conn, S::NAME, &key).await?;
    let (mut state, compensations, deadline, version, new) = match (row, &step) {
        (Some(row), _) if row.status != SagaStatus::Running => return Ok(false),
        (Some(row), Step::Timeout) if row.deadline.is_none_or(|due| due > now_ms()) => {
            return Ok(false);
        }
        (Some(row), _) => {
            let state: S =
                serde_json::from_str(&row.state).map_err(|e| json_error("read a saga", e))?;
            let compensations: Vec<EventData> = serde_json::from_str(&row.compensations)
                .map_err(|e| json_error("read a saga", e))?;
            (state, compensations, row.deadline, row.version, false)
        }
        (None, Step::Event { starts: true, .. }) => (S::default(), Vec::new(), None, 0, true),
        (None, _) => return Ok(false),
    };
    let mut context = SagaContext {
        tx,
        id,
        cause: match &step {
            Step::Event { event, .. } => Some((*event).clone()),
            Step::Timeout => None,
        },
        sent: Vec::new(),
        compensations,
        deadline,
        status: SagaStatus::Running,
        reason: None,
    };
    let outcome = match &step {
        Step::Event { event, .. } => state.handle(event, &mut context).await,
        Step::Timeout => {
            // A timeout fires once: the step sets a new one if it wants.
            context.deadline = None;
            state.on_timeout(&mut context).await
        }
    };
    outcome?;
    let SagaContext {
        sent,
        compensations,
        deadline,
        status,
        reason,
        ..
    } = context;
    let row = Row {
        status,
        state: serde_json::to_string(&state).map_err(|e| json_error("write a saga", e))?,
        compensations: serde_json::to_string(&compensations)
            .map_err(|e| json_error("write a saga", e))?,
        deadline,
        reason,
        version: version + 1,
    };
    store(&mut tx.conn, S::NAME, &key, &row, new).await?;
    for event in sent {
        tx.raise(event)?;
    }
    Ok(true)
}

impl Sagas {
    /// The sagas of `db`. Give `db` an outbox ([`Db::with_outbox`]) so
    /// what a step sends is stored with its state, and delivered even if
    /// the process dies right after the commit.
    pub fn new(db: &Db) -> Sagas {
        Sagas {
            db: db.clone(),
            kinds: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, FireFn>> {
        self.kinds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates `earn_sagas` and the idempotency inbox (a redelivered event
    /// moves a saga once) if they do not exist.
    ///
    /// PostgreSQL:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/saga_postgres.sql")]
    /// ```
    ///
    /// MySQL / MariaDB:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/saga_mysql.sql")]
    /// ```
    ///
    /// SQLite:
    ///
    /// ```sql
    #[doc = include_str!("../migrations/saga_sqlite.sql")]
    /// ```
    pub async fn install(&self) -> Result<(), Error> {
        self.db
            .execute_unprepared(MIGRATION[self.db.dialect() as usize])
            .await?;
        self.db.install_inbox().await
    }

    /// Subscribes the sagas of kind `S` to `bus`: each event of
    /// [`Saga::STARTS`] and [`Saga::HANDLES`] runs one step, in a
    /// transaction that records the event in the inbox (a redelivery is a
    /// no-op), locks the saga's row, stores its new state and raises what
    /// it sends. A step that fails rolls back and is retried by the bus.
    /// Also lets [`start_timeouts`](Self::start_timeouts) fire its
    /// timeouts.
    pub fn register<S: Saga>(&self, bus: &EventBus) -> Result<(), Error> {
        let patterns = S::STARTS
            .iter()
            .map(|p| (*p, true))
            .chain(S::HANDLES.iter().map(|p| (*p, false)));
        for (pattern, starts) in patterns {
            let db = self.db.clone();
            bus.subscribe(pattern, 0, move |event: Event| {
                let db = db.clone();
                async move { on_event::<S>(&db, &event, starts).await }
            })?;
        }
        let fire: FireFn = Arc::new(|db: Db| Box::pin(async move { fire_due::<S>(&db).await }));
        self.lock().insert(S::NAME, fire);
        Ok(())
    }

    /// Fires the due timeouts of every registered kind of saga now;
    /// returns how many fired.
    pub async fn fire_timeouts(&self) -> Result<usize, Error> {
        let kinds: Vec<FireFn> = self.lock().values().cloned().collect();
        let mut fired = 0;
        for fire in kinds {
            fired += fire(self.db.clone()).await?;
        }
        Ok(fired)
    }

    /// Fires due timeouts every `interval`, in a task of its own, until
    /// the handle is dropped. Several processes may run it: each timeout
    /// fires once (its row is locked, and its deadline cleared, in the
    /// step's transaction).
    pub fn start_timeouts(&self, interval: Duration) -> TimeoutTask {
        let sagas = self.clone();
        TimeoutTask(tokio::spawn(async move {
            loop {
                if let Err(error) = sagas.fire_timeouts().await {
                    tracing::warn!(%error, "saga timeouts could not be fired; trying again");
                }
                tokio::time::sleep(interval).await;
            }
        }))
    }

    /// The saga of kind `S` with id `id` (the correlation id of its
    /// events), if there is one.
    pub async fn get<S: Saga>(&self, id: uuid::Uuid) -> Result<Option<SagaRecord<S>>, Error> {
        let mut conn = self.db.acquire().await?;
        // A read outside a transaction: `FOR UPDATE` locks nothing here.
        let row = load(&mut conn, S::NAME, &id.to_string()).await?;
        row.map(|row| {
            Ok(SagaRecord {
                id,
                status: row.status,
                state: serde_json::from_str(&row.state)
                    .map_err(|e| json_error("read a saga", e))?,
                reason: row.reason,
                version: u64::try_from(row.version).unwrap_or(0),
                deadline: row.deadline,
            })
        })
        .transpose()
    }
}

/// The task of [`Sagas::start_timeouts`]; dropping it stops the task.
#[derive(Debug)]
pub struct TimeoutTask(tokio::task::JoinHandle<()>);

impl Drop for TimeoutTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One event for the sagas of kind `S`. Its inbox row commits even when
/// no saga took the step (none of its correlation id, or one finished):
/// the event is not looked at again.
async fn on_event<S: Saga>(db: &Db, event: &Event, starts: bool) -> Result<(), HandlerError> {
    let handler = format!("saga:{}", S::NAME);
    let Some(mut tx) = db.begin_once(&handler, event).await? else {
        return Ok(()); // a redelivery: this step was taken
    };
    step::<S>(
        &mut tx,
        event.correlation_id(),
        Step::Event { event, starts },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Fires the due timeouts of the sagas of kind `S`.
async fn fire_due<S: Saga>(db: &Db) -> Result<usize, Error> {
    let ids: Vec<String> = {
        let mut conn = db.acquire().await?;
        let statement = DUE[conn.dialect() as usize];
        with_backend!(&mut conn, |c, DB| {
            sqlx::query_scalar::<DB, String>(statement)
                .bind(S::NAME)
                .bind(now_ms())
                .fetch_all(&mut *c)
                .await
        })
        .map_err(saga_error("select"))?
    };
    let mut fired = 0;
    for id in ids {
        let Ok(id) = id.parse::<uuid::Uuid>() else {
            continue;
        };
        let mut tx = db.begin().await?;
        // `step` locks the row and checks again that it is due: another
        // process may have fired it, or an event moved the saga, since the
        // list was read.
        let stepped = step::<S>(&mut tx, id, Step::Timeout)
            .await
            .map_err(|error| Error::Transport {
                transport: "saga",
                operation: format!("timeout of saga `{}` {id}", S::NAME).into(),
                source: error.to_string().into(),
            })?;
        if stepped {
            tx.commit().await?;
            fired += 1;
        }
    }
    Ok(fired)
}
