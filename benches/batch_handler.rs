//! A batch handler against the same work done per event: 1,000 events
//! published on the bus, each storing one row in SQLite (a file, WAL,
//! as an application would have it):
//!
//! - `batch_handler/per_event`: a handler per event, one `INSERT` (its
//!   own transaction) per event;
//! - `batch_handler/batch_of_100`: `subscribe_batch` with 100 events per
//!   call, one transaction of one multi-row `INSERT` per call.
//!
//! Throughput is events per second until every event is handled
//! (`wait_idle`); the ratio is printed (target: at least 3×).
//!
//! `cargo bench --bench batch_handler`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use earn::{BatchError, Event, EventBus, HandlerError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{QueryBuilder, SqlitePool};

const EVENTS: usize = 1_000;

async fn pool() -> SqlitePool {
    let path = std::env::temp_dir().join(format!("earn-bench-batch-{}.db", uuid::Uuid::new_v4()));
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE readings (id TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

fn events() -> Vec<Event> {
    (0..EVENTS)
        .map(|i| Event::new("metric.cpu", &i).unwrap())
        .collect()
}

fn per_event_bus(pool: SqlitePool) -> EventBus {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    bus.subscribe("metric.*", 0, move |event: Event| {
        let pool = pool.clone();
        async move {
            let value: i64 = event.payload()?;
            sqlx::query("INSERT INTO readings (id, value) VALUES (?, ?)")
                .bind(event.id().to_string())
                .bind(value)
                .execute(&pool)
                .await?;
            Ok::<_, HandlerError>(())
        }
    })
    .unwrap();
    bus
}

fn batch_bus(pool: SqlitePool) -> EventBus {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    bus.subscribe_batch(
        "metric.*",
        0,
        100,
        Duration::from_millis(5),
        move |events: Vec<Event>| {
            let pool = pool.clone();
            async move {
                let mut insert = QueryBuilder::new("INSERT INTO readings (id, value) ");
                insert.push_values(&events, |mut row, event| {
                    row.push_bind(event.id().to_string())
                        .push_bind(event.payload::<i64>().unwrap_or(0));
                });
                let mut tx = pool.begin().await.map_err(HandlerError::from)?;
                insert
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(HandlerError::from)?;
                tx.commit().await.map_err(HandlerError::from)?;
                Ok::<_, BatchError>(())
            }
        },
    )
    .unwrap();
    bus
}

async fn handle_all(bus: &EventBus) {
    bus.publish_all(events()).await.unwrap();
    bus.wait_idle().await;
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (per_event, batched) =
        runtime.block_on(async { (per_event_bus(pool().await), batch_bus(pool().await)) });
    let mut group = c.benchmark_group("batch_handler");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    group.bench_function("per_event", |b| {
        b.to_async(&runtime).iter(|| handle_all(&per_event))
    });
    group.bench_function("batch_of_100", |b| {
        b.to_async(&runtime).iter(|| handle_all(&batched))
    });
    group.finish();

    // Interleaved: the ratio in one run, with its spread.
    let mut ratios = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        runtime.block_on(handle_all(&per_event));
        let one = started.elapsed();
        let started = Instant::now();
        runtime.block_on(handle_all(&batched));
        ratios.push(one.as_secs_f64() / started.elapsed().as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "batch of 100 vs per event, throughput ratio: median {:.1}x [min {:.1}x, max {:.1}x] over {} rounds",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        ratios.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
