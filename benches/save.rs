//! `save` of a model with two no-op hooks against the same INSERT written by
//! hand with sqlx on the same pool: one transaction per save, and 100 saves
//! in one transaction. The two sides run interleaved (see `paired!`). SQLite in memory always; PostgreSQL when
//! `EARN_POSTGRES_URL` is set.
//!
//! `cargo bench --bench save` (`EARN_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test` for PostgreSQL)

use criterion::{Criterion, criterion_group, criterion_main};

#[macro_use]
mod support;

use earn::prelude::*;
use earn::sqlx;
use support::report;

/// The benchmarked model: an auto key, two columns, two no-op hooks.
#[derive(Debug, Clone, Model)]
#[model(table = "bench_users")]
struct User {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    email: String,
}

#[hooks]
impl User {
    #[before_save]
    fn noop_before(&mut self) {}
    #[after_save]
    fn noop_after(&self) {}
}

/// The same table for the hand-written statements, so both grow alike.
#[derive(Debug, Clone, Model)]
#[model(table = "bench_users_raw")]
struct RawUser {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    email: String,
}

fn user() -> User {
    User {
        id: None,
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
    }
}

const BATCH: usize = 100;

macro_rules! raw_insert {
    ($sql:expr, $conn:expr) => {{
        let u = user();
        let id: i64 = sqlx::query_scalar($sql)
            .bind(&u.name)
            .bind(&u.email)
            .fetch_one($conn)
            .await
            .unwrap();
        std::hint::black_box(id);
    }};
}

/// Written as a macro: the sqlx executor bounds of a generic function over
/// the backend would hide the plain code being compared.
macro_rules! bench_backend {
    ($name:expr, $group:expr, $rt:expr, $db:expr, $pool:expr, $sql:expr) => {{
        let (name, group, rt, db, pool, sql) = ($name, $group, $rt, $db, $pool, $sql);
        // Every measurement starts on empty tables, so neither side pays
        // for rows the other left.
        let reset = || {
            rt.block_on(async {
                db.drop_table::<User>().await.unwrap();
                db.create_table::<User>().await.unwrap();
                db.drop_table::<RawUser>().await.unwrap();
                db.create_table::<RawUser>().await.unwrap();
            })
        };
        let raw_one = || async {
            let mut tx = pool.begin().await.unwrap();
            raw_insert!(sql, &mut *tx);
            tx.commit().await.unwrap();
        };
        let earn_one = || async {
            let mut u = user();
            u.save(db).await.unwrap();
            std::hint::black_box(u.id);
        };
        let raw_batch = || async {
            let mut tx = pool.begin().await.unwrap();
            for _ in 0..BATCH {
                raw_insert!(sql, &mut *tx);
            }
            tx.commit().await.unwrap();
        };
        let earn_batch = || async {
            let mut tx = db.begin().await.unwrap();
            for _ in 0..BATCH {
                let mut u = user();
                u.save_in(&mut tx).await.unwrap();
                std::hint::black_box(u.id);
            }
            tx.commit().await.unwrap();
        };
        let ratios = std::sync::Mutex::new(Vec::new());
        reset();
        group.bench_function("earn/tx_per_save", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let ratios = &ratios;
                async move {
                    paired!(iters, ratios, earn: earn_one().await, raw: raw_one().await)
                }
            })
        });
        report(&format!("{name}/tx_per_save"), &ratios);
        reset();
        group.bench_function("earn/100_saves_one_tx", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let ratios = &ratios;
                async move {
                    paired!(iters, ratios, earn: earn_batch().await, raw: raw_batch().await)
                }
            })
        });
        report(&format!("{name}/100_saves_one_tx"), &ratios);
    }};
}

fn save(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let db = rt.block_on(Db::connect("sqlite::memory:")).unwrap();
    let pool = db.as_sqlite().unwrap().clone();
    let mut group = c.benchmark_group("save_sqlite_memory");
    bench_backend!(
        "sqlite",
        &mut group,
        &rt,
        &db,
        &pool,
        r#"INSERT INTO "bench_users_raw" ("name", "email") VALUES (?, ?) RETURNING "id""#
    );
    group.finish();

    match std::env::var("EARN_POSTGRES_URL") {
        Ok(url) => {
            let db = rt.block_on(Db::connect(&url)).unwrap();
            let pool = db.as_postgres().unwrap().clone();
            let mut group = c.benchmark_group("save_postgres");
            bench_backend!(
                "postgres",
                &mut group,
                &rt,
                &db,
                &pool,
                r#"INSERT INTO "bench_users_raw" ("name", "email") VALUES ($1, $2) RETURNING "id""#
            );
            group.finish();
        }
        Err(_) => eprintln!("save_postgres skipped: EARN_POSTGRES_URL is not set"),
    }
}

criterion_group!(benches, save);
criterion_main!(benches);
