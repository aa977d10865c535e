//! The outbox relay on PostgreSQL, commit → handled: `EVENTS` events are
//! committed with [`OutboxMode::Relay`] (so only the relay delivers),
//! then a relay is started and the clock runs until a bus handler has seen
//! them all (`relay/handled`), or until their rows are gone too
//! (`relay/drained`). Committing is not timed. Throughput is in events/s.
//!
//! `outbox_commit` prices what the relay's wake-up adds to a committing
//! transaction: one outbox row inserted and committed with raw sqlx, alone,
//! with `pg_notify` as a statement of its own, and with it folded into the
//! insert as earn does.
//!
//! The tables live in a schema of their own, `earn_bench`, so tests of
//! other checkouts using the same database cannot touch them; the outbox
//! table is vacuumed before each fill, as autovacuum would between bursts
//! (on a server with autovacuum off, dead rows of earlier runs would
//! otherwise make every claim slower).
//!
//! `EARN_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench outbox --features postgres`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod support;
use earn::prelude::*;
use earn::sqlx;
use earn::{Outbox, OutboxMode, OutboxRelay};

/// Each save raises one `bench.created` event.
#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "bench_outbox_orders", events = "bench")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    item: String,
}

/// Events per measured delivery.
const EVENTS: usize = 5_000;
/// Saves per committing transaction while filling the outbox.
const PER_TX: usize = 500;

/// Counts what the handler saw and wakes the bench at `EVENTS`.
#[derive(Default)]
struct Seen {
    count: AtomicUsize,
    all: tokio::sync::Notify,
}

async fn fill(db: &Db) {
    for _ in 0..EVENTS / PER_TX {
        let mut tx = db.begin().await.unwrap();
        for _ in 0..PER_TX {
            let mut order = Order {
                id: None,
                item: "book".into(),
            };
            order.save_in(&mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    assert_eq!(db.outbox_backlog().await.unwrap(), EVENTS as u64);
}

async fn drained(db: &Db) {
    while db.outbox_backlog().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Fills the outbox, then times a fresh relay from its start until
/// `handled` (and, if `drain`, until the outbox is empty again).
async fn deliver(db: &Db, bus: &EventBus, seen: &Seen, drain: bool) -> Duration {
    db.execute_unprepared("VACUUM earn_outbox").await.unwrap();
    fill(db).await;
    seen.count.store(0, Ordering::SeqCst);
    let all = seen.all.notified();
    let relay = OutboxRelay::new(db.clone(), bus.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let running = tokio::spawn(async move { relay.run_until(stopped).await });
    all.await;
    if drain {
        drained(db).await;
    }
    let elapsed = start.elapsed();
    stop.send(()).unwrap();
    running.await.unwrap();
    bus.wait_idle().await;
    drained(db).await;
    elapsed
}

fn relay(c: &mut Criterion, rt: &tokio::runtime::Runtime, url: &str) {
    let seen = Arc::new(Seen::default());
    let (db, bus) = rt.block_on(async {
        let bus = EventBus::builder()
            .without_registered_handlers()
            .build()
            .unwrap();
        let counter = seen.clone();
        bus.subscribe_sync("bench.created", 0, move |_event: &Event| {
            if counter.count.fetch_add(1, Ordering::SeqCst) + 1 == EVENTS {
                counter.all.notify_one();
            }
        })
        .unwrap();
        let db = Db::from(support::postgres_bench_pool(url).await)
            .with_bus(bus.clone())
            .with_outbox(Outbox {
                mode: OutboxMode::Relay,
                ..Outbox::default()
            });
        db.drop_table::<Order>().await.unwrap();
        db.create_table::<Order>().await.unwrap();
        db.install_outbox().await.unwrap();
        db.execute_unprepared("DELETE FROM earn_outbox")
            .await
            .unwrap();
        (db, bus)
    });

    let mut group = c.benchmark_group("outbox_relay_postgres");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for (name, drain) in [("handled", false), ("drained", true)] {
        group.bench_function(name, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (db, bus, seen) = (db.clone(), bus.clone(), seen.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += deliver(&db, &bus, &seen, drain).await;
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

const PROBE_INSERT: &str = "INSERT INTO bench_outbox_probe (id, name, event, created_at, claimed_until) VALUES ($1, $2, $3, $4, 0)";
const PROBE_NOTIFY: &str = "SELECT pg_notify('earn_outbox_bench', '')";
const PROBE_INSERT_NOTIFY: &str = "INSERT INTO bench_outbox_probe (id, name, event, created_at, claimed_until) \
     SELECT $1, $2, $3, $4, 0 FROM (SELECT pg_notify('earn_outbox_bench', '')) AS wake";

fn commit(c: &mut Criterion, rt: &tokio::runtime::Runtime, url: &str) {
    let pool = rt.block_on(async {
        let pool = support::postgres_bench_pool(url).await;
        sqlx::raw_sql(
            "DROP TABLE IF EXISTS bench_outbox_probe; \
             CREATE TABLE bench_outbox_probe (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, \
             event TEXT NOT NULL, created_at BIGINT NOT NULL, claimed_until BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool
    });
    let next = AtomicUsize::new(0);
    let mut group = c.benchmark_group("outbox_commit_postgres");
    for (name, statements) in [
        ("insert", &[PROBE_INSERT][..]),
        ("insert_then_notify", &[PROBE_INSERT, PROBE_NOTIFY][..]),
        ("insert_notify_folded", &[PROBE_INSERT_NOTIFY][..]),
    ] {
        group.bench_function(name, |b| {
            b.to_async(rt).iter(|| async {
                let id = next.fetch_add(1, Ordering::Relaxed).to_string();
                let mut tx = pool.begin().await.unwrap();
                for statement in statements {
                    if statement.starts_with("SELECT") {
                        sqlx::query(*statement).execute(&mut *tx).await.unwrap();
                    } else {
                        sqlx::query(*statement)
                            .bind(&id)
                            .bind("bench.created")
                            .bind(r#"{"item":"book"}"#)
                            .bind(0_i64)
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                    }
                }
                tx.commit().await.unwrap();
            })
        });
    }
    group.finish();
    rt.block_on(async {
        sqlx::raw_sql("DROP TABLE bench_outbox_probe")
            .execute(&pool)
            .await
            .unwrap();
    });
}

fn outbox(c: &mut Criterion) {
    let Ok(url) = std::env::var("EARN_POSTGRES_URL") else {
        eprintln!("outbox benches skipped: EARN_POSTGRES_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    relay(c, &rt, &url);
    commit(c, &rt, &url);
}

criterion_group!(benches, outbox);
criterion_main!(benches);
