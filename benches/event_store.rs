//! The event store.
//!
//! - `store_append_<db>`: appending one event in a transaction of its own
//!   (`EventStore::append`) against the same row inserted by hand with
//!   sqlx into a table of the same shape and indexes (`BEGIN; INSERT;
//!   COMMIT`), interleaved (see `paired!`): to a new stream
//!   (`Expected::NoStream`), and after the last event of an existing one
//!   (`Expected::Exact`). Both sides serialize the event.
//! - `store_read_all_postgres`: `read_all` of 200,000 stored events.
//! - `store_catch_up_<db>`: a catch-up subscription with a projection that
//!   does nothing, from position 0 over 1,000,000 stored events until it
//!   reports it is live; printed once per run with its rate (not a
//!   criterion measurement: one pass takes seconds).
//!
//! PostgreSQL works in schema `earn_bench` and MySQL in database
//! `earn_bench`, so tests running elsewhere cannot touch the tables.
//!
//! `cargo bench --bench event_store --features postgres,mysql`
//! (`EARN_POSTGRES_URL`, `EARN_MYSQL_URL` for those databases;
//! `EARN_BENCH_CATCH_UP=100000` for a shorter catch-up)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[macro_use]
mod support;
#[path = "../tests/support/store.rs"]
mod store_support;

use earn::prelude::*;
use earn::sqlx;
use earn::store::{EventStore, Expected, Projection, Recorded};
use futures_util::TryStreamExt;
use support::report;

fn event() -> Event {
    Event::new(
        "order.line_added",
        &serde_json::json!({ "sku": "book-42", "price": 1250, "quantity": 2 }),
    )
    .unwrap()
}

/// The hand-written table: the columns and indexes of `earn_events`.
fn hand_table(dialect: earn::Dialect) -> &'static str {
    match dialect {
        earn::Dialect::Sqlite => {
            "DROP TABLE IF EXISTS bench_hand_events; CREATE TABLE bench_hand_events (\
             position INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, version BIGINT NOT NULL, \
             id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, schema_version INTEGER NOT NULL, \
             event TEXT NOT NULL, created_at BIGINT NOT NULL, UNIQUE (stream, version))"
        }
        earn::Dialect::Postgres => {
            "DROP TABLE IF EXISTS bench_hand_events; CREATE TABLE bench_hand_events (\
             position BIGSERIAL PRIMARY KEY, stream VARCHAR(255) NOT NULL, version BIGINT NOT NULL, \
             id TEXT NOT NULL UNIQUE, name VARCHAR(255) NOT NULL, schema_version INTEGER NOT NULL, \
             event TEXT NOT NULL, created_at BIGINT NOT NULL, UNIQUE (stream, version))"
        }
        earn::Dialect::MySql => {
            "DROP TABLE IF EXISTS bench_hand_events; CREATE TABLE bench_hand_events (\
             position BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, stream VARCHAR(255) NOT NULL, \
             version BIGINT NOT NULL, id VARCHAR(36) NOT NULL, name VARCHAR(255) NOT NULL, \
             schema_version INT NOT NULL, event LONGTEXT NOT NULL, created_at BIGINT NOT NULL, \
             UNIQUE KEY (id), UNIQUE KEY (stream, version))"
        }
    }
}

/// An empty store, and the hand-written table.
async fn fresh_store(db: &Db) -> EventStore {
    let store = store_support::fresh_store(db).await;
    db.execute_unprepared(hand_table(db.dialect()))
        .await
        .unwrap();
    store
}

/// The hand-written insert of one event in a transaction of its own.
macro_rules! hand_insert {
    ($pool:expr, $sql:expr, $stream:expr, $version:expr) => {{
        let e = event();
        let json = serde_json::to_string(&e).unwrap();
        let mut tx = $pool.begin().await.unwrap();
        sqlx::query($sql)
            .bind($stream)
            .bind($version)
            .bind(e.id().to_string())
            .bind(e.name().as_str())
            .bind(1_i32)
            .bind(json)
            .bind(e.data().timestamp_ms as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }};
}

macro_rules! bench_append {
    ($name:expr, $c:expr, $rt:expr, $db:expr, $pool:expr, $sql:expr) => {{
        let (name, c, rt, db, pool, sql): (&str, &mut Criterion, &tokio::runtime::Runtime, &Db, _, &'static str) =
            ($name, $c, $rt, $db, $pool, $sql);
        let store = rt.block_on(fresh_store(db));
        let streams = AtomicU64::new(0);
        let mut group = c.benchmark_group(format!("store_append_{name}"));
        let ratios = std::sync::Mutex::new(Vec::new());
        group.bench_function("earn/new_stream", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (ratios, store, streams) = (&ratios, &store, &streams);
                async move {
                    paired!(iters, ratios,
                        earn: {
                            let n = streams.fetch_add(1, Ordering::Relaxed);
                            store.append(&format!("new-{n}"), Expected::NoStream, vec![event()]).await.unwrap();
                        },
                        raw: {
                            let n = streams.load(Ordering::Relaxed);
                            hand_insert!(pool, sql, format!("new-{n}"), 1_i64);
                        })
                }
            })
        });
        report(&format!("{name}/append_new_stream"), &ratios);
        // Ten streams appended to in turn, each at its next version.
        let versions = std::sync::Mutex::new([0u64; 10]);
        let turn = AtomicU64::new(0);
        group.bench_function("earn/existing_stream", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (ratios, store, versions, turn) = (&ratios, &store, &versions, &turn);
                async move {
                    paired!(iters, ratios,
                        earn: {
                            let k = (turn.fetch_add(1, Ordering::Relaxed) % 10) as usize;
                            let version = versions.lock().unwrap()[k];
                            let expected = if version == 0 { Expected::NoStream } else { Expected::Exact(version) };
                            let at = store.append(&format!("hot-{k}"), expected, vec![event()]).await.unwrap();
                            versions.lock().unwrap()[k] = at.version;
                        },
                        raw: {
                            let k = (turn.load(Ordering::Relaxed) % 10) as usize;
                            let version = versions.lock().unwrap()[k] as i64;
                            hand_insert!(pool, sql, format!("hot-{k}"), version + 1);
                        })
                }
            })
        });
        report(&format!("{name}/append_existing_stream"), &ratios);
        group.finish();
    }};
}

/// Appends `n` events, 1,000 per append, to streams of 1,000.
async fn fill(store: &EventStore, n: u64) {
    for chunk in 0..n.div_ceil(1_000) {
        let events = (0..1_000.min(n - chunk * 1_000)).map(|_| event()).collect();
        store
            .append(&format!("fill-{chunk}"), Expected::NoStream, events)
            .await
            .unwrap();
    }
}

fn read_all(c: &mut Criterion, rt: &tokio::runtime::Runtime, db: &Db) {
    const EVENTS: u64 = 200_000;
    let store = rt.block_on(async {
        let store = fresh_store(db).await;
        fill(&store, EVENTS).await;
        store
    });
    let mut group = c.benchmark_group("store_read_all_postgres");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("read_all_200k", |b| {
        b.to_async(rt).iter(|| async {
            let read: Vec<Recorded> = store.read_all(0, usize::MAX).try_collect().await.unwrap();
            assert_eq!(read.len() as u64, EVENTS);
        })
    });
    group.finish();
}

/// A projection that does nothing: the subscription's own cost.
struct Nothing;

impl Projection for Nothing {
    async fn apply(&self, _tx: &mut Tx, _event: &Recorded) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn catch_up(rt: &tokio::runtime::Runtime, name: &str, db: &Db) {
    let events: u64 = std::env::var("EARN_BENCH_CATCH_UP")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    rt.block_on(async {
        let store = fresh_store(db).await;
        let filled = Instant::now();
        fill(&store, events).await;
        println!(
            "store_catch_up_{name}: {events} events stored in {:.1} s",
            filled.elapsed().as_secs_f64()
        );
        let mut rates = Vec::new();
        for run in 0..3 {
            let started = Instant::now();
            let subscription = store
                .subscription(&format!("bench-{run}"))
                .batch(2_000)
                .start(Nothing)
                .await
                .unwrap();
            let progress = subscription.caught_up(Duration::from_secs(3_600)).await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(progress.applied, events);
            subscription.shutdown().await;
            rates.push(events as f64 / elapsed.as_secs_f64());
            println!(
                "store_catch_up_{name} run {run}: live after {events} events in {:.2} s = {:.0} events/s (progress reports {:.0}/s)",
                elapsed.as_secs_f64(),
                events as f64 / elapsed.as_secs_f64(),
                progress.rate
            );
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "store_catch_up_{name}: median {:.0} events/s (min {:.0}, max {:.0})",
            rates[1], rates[0], rates[2]
        );
    });
}

/// The store in schema `earn_bench`.
async fn postgres(url: &str) -> Db {
    Db::from(support::postgres_bench_pool(url).await)
}

/// A pool on database `earn_bench` of the server.
async fn mysql(url: &str) -> Db {
    let admin = sqlx::MySqlPool::connect(url).await.unwrap();
    sqlx::raw_sql("CREATE DATABASE IF NOT EXISTS earn_bench")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
    Db::from(
        sqlx::MySqlPool::connect_with(options.database("earn_bench"))
            .await
            .unwrap(),
    )
}

const HAND_INSERT: [&str; 3] = [
    "INSERT INTO bench_hand_events (stream, version, id, name, schema_version, event, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO bench_hand_events (stream, version, id, name, schema_version, event, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    "INSERT INTO bench_hand_events (stream, version, id, name, schema_version, event, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
];

fn event_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("EARN_BENCH_ONLY").unwrap_or_default();
    let wants = |what: &str| only.is_empty() || only.split(',').any(|w| w == what);

    let sqlite = rt.block_on(Db::connect("sqlite::memory:")).unwrap();
    if wants("append") {
        let pool = sqlite.as_sqlite().unwrap().clone();
        bench_append!("sqlite", c, &rt, &sqlite, &pool, HAND_INSERT[0]);
    }
    if let Some(url) = std::env::var("EARN_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let db = rt.block_on(postgres(&url));
        if wants("append") {
            let pool = db.as_postgres().unwrap().clone();
            bench_append!("postgres", c, &rt, &db, &pool, HAND_INSERT[1]);
        }
        if wants("read_all") {
            read_all(c, &rt, &db);
        }
        if wants("catch_up") {
            catch_up(&rt, "postgres", &db);
        }
    } else {
        eprintln!("PostgreSQL skipped: EARN_POSTGRES_URL is not set");
    }
    if let Some(url) = std::env::var("EARN_MYSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let db = rt.block_on(mysql(&url));
        if wants("append") {
            let pool = db.as_mysql().unwrap().clone();
            bench_append!("mysql", c, &rt, &db, &pool, HAND_INSERT[2]);
        }
    } else {
        eprintln!("MySQL skipped: EARN_MYSQL_URL is not set");
    }
    if wants("catch_up_sqlite") {
        catch_up(&rt, "sqlite", &sqlite);
    }
}

criterion_group!(benches, event_store);
criterion_main!(benches);
