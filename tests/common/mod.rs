//! One helper runs a test body on every database: SQLite always, PostgreSQL
//! and MariaDB / MySQL when `EARN_POSTGRES_URL` / `EARN_MYSQL_URL` are set.
//! With `EARN_REQUIRE_SERVICES=1` a missing variable fails the test instead
//! of skipping that backend, and an unreachable server always fails it.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

use earn::Db;

/// Tests in one binary share tables and the hook log: run them one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records that something ran (hooks call this).
pub fn log(entry: impl Into<String>) {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(entry.into());
}

/// Takes the log so far, leaving it empty.
pub fn take_log() -> Vec<String> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The log so far, left in place.
pub fn take_log_peek() -> Vec<String> {
    LOG.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn required() -> bool {
    std::env::var("EARN_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The databases to run on: (name, URL).
pub fn backends() -> Vec<(&'static str, String)> {
    let mut found = vec![("sqlite", "sqlite::memory:".to_owned())];
    for (name, var) in [
        ("postgres", "EARN_POSTGRES_URL"),
        ("mysql", "EARN_MYSQL_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => found.push((name, url)),
            _ if required() => panic!(
                "{var} is not set and EARN_REQUIRE_SERVICES=1: {name} tests cannot be skipped"
            ),
            _ => eprintln!("skipped on {name}: {var} is not set"),
        }
    }
    found
}

/// Connects to a backend; an unreachable server fails the test.
pub async fn connect(name: &str, url: &str) -> Db {
    match Db::connect(url).await {
        Ok(db) => db,
        Err(error) => panic!("cannot reach {name} at {url}: {error}"),
    }
}

/// Runs `body` on every backend, one after the other, with the hook log
/// cleared before each. Panics name the backend.
pub async fn each_backend<F, Fut>(body: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let _serial = SERIAL.lock().await;
    for (name, url) in backends() {
        let db = connect(name, &url).await;
        take_log();
        eprintln!("--- on {name}");
        body(db).await;
    }
}

/// Drops and re-creates a model's table.
pub async fn fresh<M: earn::Model>(db: &Db) {
    db.drop_table::<M>().await.expect("drop table");
    db.create_table::<M>().await.expect("create table");
}

/// How many rows the table holds, read without hooks.
pub async fn count<M: earn::Model>(db: &Db) -> usize {
    M::all(db).await.expect("select all").len()
}

/// Holds the lock that runs a binary's tests one at a time.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A URL for a new SQLite database file in the temp directory, shared by
/// every connection of a pool (unlike `sqlite::memory:`).
pub fn sqlite_file(prefix: &str) -> String {
    let path = std::env::temp_dir().join(format!("earn-{prefix}-{}.db", uuid::Uuid::new_v4()));
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The Redis URL from `EARN_REDIS_URL`; `None` (the caller skips) when it
/// is unset, unless `EARN_REQUIRE_SERVICES=1`, which fails instead.
pub fn redis_url() -> Option<String> {
    match std::env::var("EARN_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if required() => {
            panic!(
                "EARN_REDIS_URL is not set and EARN_REQUIRE_SERVICES=1: Redis tests cannot be skipped"
            )
        }
        _ => {
            eprintln!("skipped on redis: EARN_REDIS_URL is not set");
            None
        }
    }
}

pub fn nats_url() -> Option<String> {
    match std::env::var("EARN_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if required() => {
            panic!(
                "EARN_NATS_URL is not set and EARN_REQUIRE_SERVICES=1: NATS tests cannot be skipped"
            )
        }
        _ => {
            eprintln!("skipped on nats: EARN_NATS_URL is not set");
            None
        }
    }
}

/// Deletes the JetStream streams of the earn stream `name`
/// (`NatsStreams::delete_streams`).
pub async fn delete_nats_streams(url: &str, name: &str) {
    let settings = earn::nats::NatsSettings::new(name, "cleanup");
    let streams = earn::nats::NatsStreams::connect(url, settings)
        .await
        .unwrap();
    streams.delete_streams().await.unwrap();
}

/// What a `tracing` subscriber wrote, for tests of what is reported.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The text written since the last call.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }
}

/// Captures every event at DEBUG and above, on every thread (SQLite's
/// driver runs statements on a thread of its own), sqlx's statements
/// included. One subscriber for the test binary: call it inside
/// [`each_backend`], whose bodies run one at a time.
pub fn capture() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("one subscriber per test binary");
        captured
    });
    captured.text();
    captured.clone()
}

/// Installs the outbox, empties it and its dead letters, then writes
/// `rows` (id, event name, the stored `event` column) as the relay writes
/// dead letters: given up after 3 claims, the first `age` ago, each
/// `apart` later than the one before.
pub async fn seed_outbox_dead_letters(
    db: &Db,
    rows: &[(&str, &str, String)],
    age: std::time::Duration,
    apart: std::time::Duration,
) {
    db.install_outbox().await.expect("install the outbox");
    db.execute_unprepared("DELETE FROM earn_outbox")
        .await
        .expect("empty the outbox");
    db.execute_unprepared("DELETE FROM earn_outbox_dead")
        .await
        .expect("empty its dead letters");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let base = now - age.as_millis() as i64;
    let quote = |text: &str| text.replace('\'', "''");
    for (i, (id, name, stored)) in rows.iter().enumerate() {
        db.execute_unprepared(&format!(
            "INSERT INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
             VALUES ('{}', '{}', '{}', 'gave up after 3 claims', 3, {})",
            quote(id),
            quote(name),
            quote(stored),
            base + i as i64 * apart.as_millis() as i64
        ))
        .await
        .expect("write a dead letter");
    }
}

/// The stored form of a valid event: `name` with `payload`.
pub fn stored_event(name: &str, payload: impl serde::Serialize) -> String {
    serde_json::to_string(&earn::Event::new(name, &payload).expect("a valid event"))
        .expect("serializable")
}

/// [`each_backend`] with SQLite in a file of its own (several connections
/// and a WAL, as in production) instead of `sqlite::memory:` (one
/// connection): for bodies that need transactions side by side.
pub async fn each_backend_on_files<F, Fut>(prefix: &str, body: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let _serial = SERIAL.lock().await;
    for (name, url) in backends() {
        let url = if name == "sqlite" {
            sqlite_file(prefix)
        } else {
            url
        };
        let db = connect(name, &url).await;
        take_log();
        eprintln!("--- on {name}");
        body(db).await;
    }
}

/// The `event` column of every outbox row, as stored.
pub async fn outbox_rows(db: &Db) -> Vec<String> {
    column(db, "SELECT event FROM earn_outbox").await
}

/// The first column of what `sql` selects, on any database.
pub async fn column<T>(db: &Db, sql: &'static str) -> Vec<T>
where
    T: Send + Unpin,
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    T: for<'r> sqlx::Decode<'r, sqlx::MySql> + sqlx::Type<sqlx::MySql>,
{
    match db.dialect() {
        earn::Dialect::Sqlite => sqlx::query_scalar::<_, T>(sql)
            .fetch_all(db.as_sqlite().unwrap())
            .await
            .unwrap(),
        earn::Dialect::Postgres => sqlx::query_scalar::<_, T>(sql)
            .fetch_all(db.as_postgres().unwrap())
            .await
            .unwrap(),
        earn::Dialect::MySql => sqlx::query_scalar::<_, T>(sql)
            .fetch_all(db.as_mysql().unwrap())
            .await
            .unwrap(),
    }
}
