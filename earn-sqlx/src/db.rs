//! `Db`: a pool of one of the three backends, chosen by URL.

use std::str::FromStr;
use std::sync::Arc;

use earn_core::{Error, EventBus, RedactedUrl};

use crate::backend::Dialect;
use crate::connection::{Conn, Pool, Server, with_backend};
use crate::model::{Model, Row};
use crate::outbox::{Destination, Outbox, ToOutbox};
use crate::publish::{Publisher, ToBus};
use crate::tx::Tx;

/// A database: a connection pool of SQLite, PostgreSQL or MySQL / MariaDB.
/// Cheap to clone; clones share the pool.
///
/// ```no_run
/// # async fn run() -> Result<(), earn::Error> {
/// let db = earn::Db::connect("sqlite::memory:").await?;
/// let pg = earn::Db::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// Where model events go after commit; `None`: the global default bus.
    bus: Option<EventBus>,
    /// Events go through the transactional outbox.
    outbox: Option<Outbox>,
    /// Where committed outbox events are handed; `None`: the bus.
    sink: Option<Arc<dyn earn_core::EventSink>>,
    /// What transactions hand their events to, built from the three above.
    publisher: Arc<dyn Publisher>,
    /// What is known of the server, shared by clones.
    server: Arc<Server>,
    /// The store model events are also appended to.
    streams: Option<crate::store::EventStore>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.pool)
            .field("bus", &self.bus)
            .field("outbox", &self.outbox)
            .field("outbox_sink", &self.sink.is_some())
            .field("model_streams", &self.streams.is_some())
            .finish()
    }
}

fn url_error(url: &str, reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::Url {
        url: RedactedUrl::new(url).to_string(),
        reason: reason.into(),
    }
}

/// Opens and closes one connection, so an unreachable server is reported at
/// once with its cause: the pool would retry a refused connection for its
/// whole acquire timeout and then only say that it timed out.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn probe<O: sqlx::ConnectOptions>(options: &O) -> Result<(), Error>
where
    O::Connection: Sized,
{
    use sqlx::Connection;
    let connection = options.connect().await.map_err(connect_error)?;
    connection.close().await.map_err(connect_error)
}

fn connect_error(source: sqlx::Error) -> Error {
    Error::Connection {
        operation: "connect",
        source: Box::new(source),
    }
}

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "mysql")))]
fn feature_missing(url: &str, feature: &str) -> Error {
    url_error(
        url,
        format!(
            "this build of earn has no {feature} support; enable the `{feature}` feature of earn"
        ),
    )
}

impl Db {
    /// Connects to the database named by `url`, choosing the backend from
    /// its scheme: `sqlite:` (`sqlite::memory:` for an in-memory database,
    /// `sqlite://path.db`, created if missing), `postgres:` / `postgresql:`,
    /// `mysql:` / `mariadb:`.
    ///
    /// An unknown scheme, a backend whose feature is off, or an unreachable
    /// server is an [`Error`], never a panic.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Self::connect_sqlite(url).await,
            "postgres" | "postgresql" => Self::connect_postgres(url).await,
            "mysql" | "mariadb" => Self::connect_mysql(url).await,
            _ => Err(url_error(
                url,
                "unknown scheme; expected `sqlite:`, `postgres:` or `mysql:`",
            )),
        }
    }

    #[cfg(feature = "sqlite")]
    async fn connect_sqlite(url: &str) -> Result<Db, Error> {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| url_error(url, e.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database lives as long as its connection: keep
            // exactly one, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new()
        };
        // A file shared by several connections (a relay beside the request
        // handlers, several processes): WAL lets readers run beside the one
        // writer, and writers wait for each other instead of failing with
        // "database is locked".
        let options = if in_memory {
            options
        } else {
            options
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(10))
        };
        let pool = pool.connect_with(options).await.map_err(connect_error)?;
        Ok(Db::from(pool))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn connect_sqlite(url: &str) -> Result<Db, Error> {
        Err(feature_missing(url, "sqlite"))
    }

    #[cfg(feature = "postgres")]
    async fn connect_postgres(url: &str) -> Result<Db, Error> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| url_error(url, e.to_string()))?;
        probe(&options).await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Db::from(pool))
    }

    #[cfg(not(feature = "postgres"))]
    async fn connect_postgres(url: &str) -> Result<Db, Error> {
        Err(feature_missing(url, "postgres"))
    }

    #[cfg(feature = "mysql")]
    async fn connect_mysql(url: &str) -> Result<Db, Error> {
        let url_for_sqlx = url.replacen("mariadb:", "mysql:", 1);
        let options = sqlx::mysql::MySqlConnectOptions::from_str(&url_for_sqlx)
            .map_err(|e| url_error(url, e.to_string()))?;
        probe(&options).await?;
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        let db = Db::from(pool);
        // MySQL or MariaDB: learnt now rather than in the first write.
        db.server
            .deletes_returning(&mut db.acquire().await?)
            .await?;
        Ok(db)
    }

    #[cfg(not(feature = "mysql"))]
    async fn connect_mysql(url: &str) -> Result<Db, Error> {
        Err(feature_missing(url, "mysql"))
    }

    /// Delivers this database's model events (and `ctx.emit` events) to
    /// `bus` instead of the process-wide [`EventBus::global`].
    pub fn with_bus(mut self, bus: EventBus) -> Db {
        self.bus = Some(bus);
        self.rebuild_publisher()
    }

    /// Writes the events of every transaction (model events, `ctx.emit`)
    /// into the outbox table in that transaction, so a crash after the
    /// commit cannot lose them. Create the table with
    /// [`install_outbox`](Db::install_outbox) (or the same DDL in a
    /// migration) and run an [`OutboxRelay`](crate::OutboxRelay).
    pub fn with_outbox(mut self, outbox: Outbox) -> Db {
        self.outbox = Some(outbox);
        self.rebuild_publisher()
    }

    /// Hands committed outbox events to `sink` (a broker such as Redis
    /// Streams) instead of this database's bus. A row is deleted once the
    /// sink has accepted its event; until then a relay may resend it.
    ///
    /// An event larger than the sink's
    /// [`max_payload`](earn_core::EventSink::max_payload) is refused with
    /// [`Error::PayloadTooLarge`] when it is raised, before the commit.
    ///
    /// ```no_run
    /// # async fn run(redis: earn::EventBus) -> Result<(), earn::Error> {
    /// // Any `EventSink`: an `EventBus`, or `earn::redis::RedisStreams`.
    /// let db = earn::Db::connect("sqlite::memory:").await?
    ///     .with_outbox(earn::Outbox::default())
    ///     .with_outbox_sink(redis);
    /// # Ok(()) }
    /// ```
    pub fn with_outbox_sink(mut self, sink: impl earn_core::EventSink) -> Db {
        self.sink = Some(Arc::new(sink));
        self.rebuild_publisher()
    }

    /// Also appends every model event (of models declared with
    /// `#[model(events = "order")]`) to `store`, in the write's own
    /// transaction: `order.created` / `.updated` / `.deleted` /
    /// `.restored` of the row with key 7 go to stream `order-7`.
    ///
    /// A create appends with [`Expected::NoStream`](earn_core::Expected):
    /// a stream already there for a new row's key (a key used again) is
    /// [`Error::WrongExpectedVersion`] and the write rolls back. Later
    /// writes append after whatever the stream holds; they are ordered by
    /// the lock the write holds on the row. Inline projections of `store`
    /// run in the same transaction. The events are still published as
    /// before (bus or outbox).
    ///
    /// ```
    /// use earn::prelude::*;
    /// use earn::store::EventStore;
    ///
    /// #[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
    /// #[model(table = "accounts", events = "account")]
    /// struct Account {
    ///     #[model(primary_key, auto)]
    ///     id: Option<i64>,
    ///     owner: String,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), earn::Error> {
    /// let db = Db::connect("sqlite::memory:").await?;
    /// let store = EventStore::new(&db);
    /// store.install().await?;
    /// let db = db.with_model_streams(&store);
    /// db.create_table::<Account>().await?;
    ///
    /// let mut account = Account { id: None, owner: "Ada".into() };
    /// account.save(&db).await?;
    /// account.owner = "Ada L.".into();
    /// account.save(&db).await?;
    ///
    /// use futures_util::TryStreamExt;
    /// let names: Vec<String> = store
    ///     .read_stream("account-1", 1)
    ///     .map_ok(|e| e.event.name().to_string())
    ///     .try_collect()
    ///     .await?;
    /// assert_eq!(names, ["account.created", "account.updated"]);
    /// # Ok(()) }
    /// ```
    pub fn with_model_streams(mut self, store: &crate::store::EventStore) -> Db {
        self.streams = Some(store.clone());
        self
    }

    fn rebuild_publisher(mut self) -> Db {
        self.publisher = publisher(&self.pool, self.bus.clone(), self.outbox, self.sink.clone());
        self
    }

    /// The outbox settings, if the outbox is on.
    pub fn outbox(&self) -> Option<Outbox> {
        self.outbox
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The bus model events go to.
    pub fn bus(&self) -> &EventBus {
        self.bus.as_ref().unwrap_or_else(|| EventBus::global())
    }

    /// The dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.pool.dialect()
    }

    pub(crate) async fn acquire(&self) -> Result<Conn, Error> {
        self.pool.acquire().await
    }

    /// Begins a transaction. See [`Tx`].
    pub async fn begin(&self) -> Result<Tx, Error> {
        Tx::begin_on(
            self.acquire().await?,
            self.publisher.clone(),
            self.server.clone(),
            self.streams.clone(),
        )
        .await
    }

    /// Creates the model's table if it does not exist, with column types
    /// chosen for the backend. Meant for quick starts and tests; production
    /// schemas belong in migrations.
    pub async fn create_table<M: Model>(&self) -> Result<(), Error> {
        let mut conn = self.acquire().await?;
        with_backend!(&mut conn, |c, DB| {
            let sql = crate::schema::create_table_sql(
                M::INFO,
                <DB as crate::Backend>::DIALECT,
                &<M as Row<DB>>::column_types(),
            );
            <DB as crate::Backend>::run_ddl(c, sql).await
        })
        .map_err(|source| Error::Database {
            table: M::INFO.table.into(),
            operation: "create table",
            source: Box::new(source),
        })
    }

    /// Checks that the model's table has every column the model needs, of
    /// the type and nullability `create_table` would give it; every
    /// difference is listed in one [`Error::SchemaDrift`]. Columns of the
    /// table the model does not use are not checked. Call it at start-up for
    /// the models whose tables migrations manage: an out-of-date table is
    /// then an error that says what to migrate, not wrong data later
    /// (SQLite reads what a column holds, whatever the model expects).
    ///
    /// ```
    /// # use earn::prelude::*;
    /// # #[derive(Debug, Clone, Model)] #[model(table = "notes")]
    /// # struct Note { #[model(primary_key, auto)] id: Option<i64>, text: String }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), earn::Error> {
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY)").await?;
    /// let error = db.check_schema::<Note>().await.unwrap_err();
    /// assert_eq!(error.to_string(), "table `notes` does not match Note: column `text` is missing");
    /// # Ok(()) }
    /// ```
    pub async fn check_schema<M: Model>(&self) -> Result<(), Error> {
        crate::schema::check::<M>(self).await
    }

    /// [`check_schema`](Db::check_schema) of every listed model, for the
    /// start of a program whose tables migrations manage: it refuses to run
    /// on a database its models do not match, and says what to migrate.
    /// One table that drifts is its [`Error::SchemaDrift`]; several are one
    /// [`Error::SchemasDrift`] listing each.
    ///
    /// ```
    /// # use earn::prelude::*;
    /// # #[derive(Debug, Clone, Model)] #[model(table = "authors")]
    /// # struct Author { #[model(primary_key, auto)] id: Option<i64>, name: String }
    /// # #[derive(Debug, Clone, Model)] #[model(table = "books")]
    /// # struct Book { #[model(primary_key, auto)] id: Option<i64>, title: String }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), earn::Error> {
    /// let db = Db::connect("sqlite::memory:").await?;
    /// # db.create_table::<Author>().await?;
    /// # db.create_table::<Book>().await?;
    /// db.check_schemas::<(Author, Book)>().await?; // before serving anything
    /// # Ok(()) }
    /// ```
    pub async fn check_schemas<L: crate::schema::Models>(&self) -> Result<(), Error> {
        let mut drifts = L::drifts(self).await?;
        match drifts.len() {
            0 => Ok(()),
            1 => Err(drifts.remove(0)),
            _ => Err(Error::SchemasDrift { drifts }),
        }
    }

    /// Drops the model's table if it exists.
    pub async fn drop_table<M: Model>(&self) -> Result<(), Error> {
        let mut conn = self.acquire().await?;
        let table = M::INFO.quoted_table[self.dialect() as usize];
        with_backend!(&mut conn, |c, DB| {
            <DB as crate::Backend>::run_ddl(c, format!("DROP TABLE IF EXISTS {table}")).await
        })
        .map_err(|source| Error::Database {
            table: M::INFO.table.into(),
            operation: "drop table",
            source: Box::new(source),
        })
    }

    /// The SQLite pool, if this is a SQLite database.
    #[cfg(feature = "sqlite")]
    pub fn as_sqlite(&self) -> Option<&sqlx::SqlitePool> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            _ => None,
        }
    }

    /// The PostgreSQL pool, if this is a PostgreSQL database.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&sqlx::PgPool> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    /// The MySQL pool, if this is a MySQL / MariaDB database.
    #[cfg(feature = "mysql")]
    pub fn as_mysql(&self) -> Option<&sqlx::MySqlPool> {
        #[allow(irrefutable_let_patterns, unreachable_patterns)]
        match &self.pool {
            Pool::MySql(pool) => Some(pool),
            _ => None,
        }
    }

    /// Runs SQL that takes no parameters (DDL) outside any transaction.
    pub async fn execute_unprepared(&self, sql: &str) -> Result<(), Error> {
        self.acquire().await?.execute_unprepared(sql).await
    }
}

/// What transactions of a database hand their events to.
fn publisher(
    pool: &Pool,
    bus: Option<EventBus>,
    outbox: Option<Outbox>,
    sink: Option<Arc<dyn earn_core::EventSink>>,
) -> Arc<dyn Publisher> {
    match (outbox, sink) {
        (None, _) => ToBus::shared(bus),
        (Some(outbox), Some(sink)) => {
            ToOutbox::shared(outbox, Destination::Sink(sink), pool.clone())
        }
        (Some(outbox), None) => ToOutbox::shared(outbox, Destination::Bus(bus), pool.clone()),
    }
}

impl Db {
    fn from_pool(pool: Pool) -> Db {
        Db {
            publisher: ToBus::shared(None),
            pool,
            bus: None,
            outbox: None,
            sink: None,
            server: Arc::default(),
            streams: None,
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Db {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Db::from_pool(Pool::Sqlite(pool))
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Db {
    fn from(pool: sqlx::PgPool) -> Self {
        Db::from_pool(Pool::Postgres(pool))
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for Db {
    fn from(pool: sqlx::MySqlPool) -> Self {
        Db::from_pool(Pool::MySql(pool))
    }
}
