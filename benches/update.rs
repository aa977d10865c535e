//! `save` of a changed model: one column out of ten changed, on a model
//! with a no-op hook (so earn reads the row first, as every model with
//! hooks, events or a version does). Compared in the same run with the
//! same work written by hand with sqlx: the row read `FOR UPDATE`, then an
//! UPDATE of all ten columns (what earn sent before it wrote only the
//! changed columns), or of the one column, interleaved with earn's save
//! (see `paired!`), which prints the paired ratios. SQLite in memory
//! always; PostgreSQL when `EARN_POSTGRES_URL` is set.
//!
//! `cargo bench --bench update`

use criterion::{Criterion, criterion_group, criterion_main};

#[macro_use]
mod support;

use earn::prelude::*;
use earn::sqlx;
use support::report;

#[derive(Debug, Clone, Model)]
#[model(table = "bench_wide")]
struct Wide {
    #[model(primary_key, auto)]
    id: Option<i64>,
    c1: i64,
    c2: i64,
    c3: i64,
    c4: i64,
    c5: i64,
    c6: String,
    c7: String,
    c8: String,
    c9: String,
    c10: String,
}

#[hooks]
impl Wide {
    #[before_save]
    fn noop(&mut self) {}
}

fn wide() -> Wide {
    Wide {
        id: None,
        c1: 1,
        c2: 2,
        c3: 3,
        c4: 4,
        c5: 5,
        c6: "six".into(),
        c7: "seven".into(),
        c8: "eight".into(),
        c9: "nine".into(),
        c10: "ten".into(),
    }
}

/// The hand-written statements, per dialect: read, update of all ten,
/// update of one.
struct Raw {
    select: &'static str,
    update_all: &'static str,
    update_one: &'static str,
}

macro_rules! bench_backend {
    ($name:expr, $group:expr, $rt:expr, $db:expr, $pool:expr, $raw:expr) => {{
        let (name, group, rt, db, pool, raw): (&str, _, &tokio::runtime::Runtime, &Db, _, Raw) =
            ($name, $group, $rt, $db, $pool, $raw);
        let row = rt.block_on(async {
            db.drop_table::<Wide>().await.unwrap();
            db.create_table::<Wide>().await.unwrap();
            let mut row = wide();
            row.save(db).await.unwrap();
            row
        });
        let id = row.id.unwrap();
        let next = std::sync::atomic::AtomicI64::new(1_000);
        let next = &next;
        let earn_save = || {
            let mut changed = row.clone();
            changed.c1 = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { changed.save(db).await.unwrap() }
        };
        let raw_update = |all: bool| {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(raw.select).bind(id).fetch_one(&mut *tx).await.unwrap();
                if all {
                    let w = wide();
                    sqlx::query(raw.update_all)
                        .bind(n)
                        .bind(w.c2)
                        .bind(w.c3)
                        .bind(w.c4)
                        .bind(w.c5)
                        .bind(&w.c6)
                        .bind(&w.c7)
                        .bind(&w.c8)
                        .bind(&w.c9)
                        .bind(&w.c10)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                } else {
                    sqlx::query(raw.update_one)
                        .bind(n)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        };
        let ratios = std::sync::Mutex::new(Vec::new());
        for (label, all) in [("vs_select_then_update_all_ten", true), ("vs_select_then_update_one", false)] {
            group.bench_function(format!("earn/save_one_of_ten_changed/{label}"), |b| {
                b.to_async(rt).iter_custom(|iters| {
                    let ratios = &ratios;
                    async move { paired!(iters, ratios, earn: earn_save().await, raw: raw_update(all).await) }
                })
            });
            report(&format!("{name}/save_one_of_ten_changed/{label}"), &ratios);
        }
    }};
}

fn update(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(Db::connect("sqlite::memory:")).unwrap();
    let pool = db.as_sqlite().unwrap().clone();
    let mut group = c.benchmark_group("update_sqlite_memory");
    bench_backend!(
        "sqlite",
        &mut group,
        &rt,
        &db,
        &pool,
        Raw {
            select: "SELECT id, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10 FROM bench_wide WHERE id = ?",
            update_all: "UPDATE bench_wide SET c1 = ?, c2 = ?, c3 = ?, c4 = ?, c5 = ?, c6 = ?, \
                         c7 = ?, c8 = ?, c9 = ?, c10 = ? WHERE id = ?",
            update_one: "UPDATE bench_wide SET c1 = ? WHERE id = ?",
        }
    );
    group.finish();

    match std::env::var("EARN_POSTGRES_URL") {
        Ok(url) => {
            let db = rt.block_on(Db::connect(&url)).unwrap();
            let pool = db.as_postgres().unwrap().clone();
            let mut group = c.benchmark_group("update_postgres");
            bench_backend!(
                "postgres",
                &mut group,
                &rt,
                &db,
                &pool,
                Raw {
                    select: "SELECT id, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10 FROM bench_wide \
                             WHERE id = $1 FOR UPDATE",
                    update_all: "UPDATE bench_wide SET c1 = $1, c2 = $2, c3 = $3, c4 = $4, \
                                 c5 = $5, c6 = $6, c7 = $7, c8 = $8, c9 = $9, c10 = $10 WHERE id = $11",
                    update_one: "UPDATE bench_wide SET c1 = $1 WHERE id = $2",
                }
            );
            group.finish();
        }
        Err(_) => eprintln!("update_postgres skipped: EARN_POSTGRES_URL is not set"),
    }
}

criterion_group!(benches, update);
criterion_main!(benches);
