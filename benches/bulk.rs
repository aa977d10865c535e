//! Bulk writes against the same work written by hand on the same pool,
//! interleaved (see `paired!`):
//!
//! - `insert_many` of 1,000 rows with two no-op hooks, against one
//!   multi-row INSERT (keys read back), and against 1,000 `save_in` calls
//!   in one transaction;
//! - `delete_all` of 1,000 rows with an `after_delete` hook and a `deleted`
//!   event per row, against one `DELETE … RETURNING`; and the same with a
//!   `before_delete` hook, which reads and locks the rows first.
//!
//! SQLite in memory always; PostgreSQL and MySQL / MariaDB when
//! `EARN_POSTGRES_URL` / `EARN_MYSQL_URL` are set.
//!
//! `cargo bench --bench bulk`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

#[macro_use]
mod support;

use earn::prelude::*;
use earn::{Dialect, sqlx};
use support::report;

const ROWS: usize = 1_000;

#[derive(Debug, Clone, Model)]
#[model(table = "bench_bulk_users")]
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

/// Deleted with per-row `after_delete` hooks and events.
#[derive(Debug, Clone, Model, serde::Serialize)]
#[model(table = "bench_bulk_notes", events = "note")]
struct Note {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    email: String,
}

#[hooks]
impl Note {
    #[after_delete]
    fn noop_after(&self) {}
}

/// The same with a `before_delete` hook.
#[derive(Debug, Clone, Model, serde::Serialize)]
#[model(table = "bench_bulk_memos", events = "memo")]
struct Memo {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    email: String,
}

#[hooks]
impl Memo {
    #[before_delete]
    fn noop_before(&self) {}
    #[after_delete]
    fn noop_after(&self) {}
}

/// The table the hand-written statements use.
#[derive(Debug, Clone, Model)]
#[model(table = "bench_bulk_raw")]
struct Raw {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    email: String,
}

fn users() -> Vec<User> {
    (0..ROWS)
        .map(|i| User {
            id: None,
            name: format!("user {i}"),
            email: format!("user{i}@example.com"),
        })
        .collect()
}

/// `INSERT INTO bench_bulk_raw (name, email) VALUES (…), … [RETURNING id]`.
fn raw_insert_sql(dialect: Dialect) -> Arc<str> {
    let mut sql = String::new();
    let q = |s: &str| match dialect {
        Dialect::Postgres => format!("\"{s}\""),
        _ => format!("`{s}`"),
    };
    sql.push_str(&format!(
        "INSERT INTO {} ({}, {}) VALUES ",
        q("bench_bulk_raw"),
        q("name"),
        q("email")
    ));
    for i in 0..ROWS {
        if i > 0 {
            sql.push_str(", ");
        }
        match dialect {
            Dialect::Postgres => sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2)),
            _ => sql.push_str("(?, ?)"),
        }
    }
    if dialect != Dialect::MySql {
        sql.push_str(&format!(" RETURNING {}", q("id")));
    }
    sql.into()
}

macro_rules! raw_insert {
    ($pool:expr, $sql:expr, $dialect:expr) => {{
        let rows = users();
        let mut query = sqlx::query(sqlx::AssertSqlSafe($sql.clone()));
        for row in &rows {
            query = query.bind(row.name.clone()).bind(row.email.clone());
        }
        if $dialect == Dialect::MySql {
            std::hint::black_box(query.execute($pool).await.unwrap());
        } else {
            let keys = query.fetch_all($pool).await.unwrap();
            assert_eq!(keys.len(), ROWS);
            std::hint::black_box(keys);
        }
    }};
}

/// `DELETE FROM bench_bulk_raw RETURNING id, name, email` (MariaDB has it too).
fn raw_delete_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => r#"DELETE FROM "bench_bulk_raw" RETURNING "id", "name", "email""#,
        _ => "DELETE FROM `bench_bulk_raw` RETURNING `id`, `name`, `email`",
    }
}

/// Fills the tables of both sides, then times the hand-written DELETE and
/// the earn one.
macro_rules! delete_pair {
    ($iters:expr, $ratios:expr, $db:expr, $pool:expr, $model:ty, $make:expr) => {{
        let (mut earn, mut raw) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..$iters {
            let mut rows: Vec<$model> = users().into_iter().map($make).collect();
            <$model>::insert_many($db, &mut rows).await.unwrap();
            let mut raws: Vec<Raw> = users()
                .into_iter()
                .map(|u| Raw {
                    id: None,
                    name: u.name,
                    email: u.email,
                })
                .collect();
            Raw::insert_many($db, &mut raws).await.unwrap();

            let started = Instant::now();
            let deleted: Vec<(i64, String, String)> = sqlx::query_as(raw_delete_sql($db.dialect()))
                .fetch_all($pool)
                .await
                .unwrap();
            raw += started.elapsed();
            assert_eq!(deleted.len(), ROWS);

            let started = Instant::now();
            let deleted = <$model>::query().delete_all($db).await.unwrap();
            earn += started.elapsed();
            assert_eq!(deleted, ROWS as u64);
        }
        $ratios
            .lock()
            .unwrap()
            .push(earn.as_secs_f64() / raw.as_secs_f64());
        earn
    }};
}

macro_rules! bench_backend {
    ($name:expr, $c:expr, $rt:expr, $db:expr, $pool:expr) => {{
        let (name, rt, db, pool) = ($name, $rt, $db, $pool);
        let db: &Db = db;
        let dialect = db.dialect();
        let insert_sql = raw_insert_sql(dialect);
        let reset = || {
            rt.block_on(async {
                db.drop_table::<User>().await.unwrap();
                db.create_table::<User>().await.unwrap();
                db.drop_table::<Note>().await.unwrap();
                db.create_table::<Note>().await.unwrap();
                db.drop_table::<Memo>().await.unwrap();
                db.create_table::<Memo>().await.unwrap();
                db.drop_table::<Raw>().await.unwrap();
                db.create_table::<Raw>().await.unwrap();
            })
        };
        let mut group = $c.benchmark_group(format!("bulk_{name}"));
        group.sample_size(20);

        let ratios = std::sync::Mutex::new(Vec::new());
        reset();
        group.bench_function("earn/insert_many_1000", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (ratios, insert_sql) = (&ratios, &insert_sql);
                async move {
                    paired!(iters, ratios,
                        earn: {
                            let mut rows = users();
                            User::insert_many(db, &mut rows).await.unwrap();
                            std::hint::black_box(rows);
                        },
                        raw: raw_insert!(pool, insert_sql, dialect))
                }
            })
        });
        report(&format!("{name}/insert_many_1000 vs one multi-row INSERT"), &ratios);

        reset();
        group.bench_function("earn/insert_many_vs_1000_saves", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let ratios = &ratios;
                async move {
                    paired!(iters, ratios,
                        earn: {
                            let mut rows = users();
                            User::insert_many(db, &mut rows).await.unwrap();
                            std::hint::black_box(rows);
                        },
                        raw: {
                            let mut tx = db.begin().await.unwrap();
                            for mut user in users() {
                                user.save_in(&mut tx).await.unwrap();
                                std::hint::black_box(user.id);
                            }
                            tx.commit().await.unwrap();
                        })
                }
            })
        });
        report(&format!("{name}/insert_many_1000 vs 1000 saves in one tx (earn = insert_many)"), &ratios);

        reset();
        group.bench_function("earn/delete_all_1000_after_hooks_events", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let ratios = &ratios;
                async move {
                    delete_pair!(iters, ratios, db, pool, Note, |u: User| Note { id: None, name: u.name, email: u.email })
                }
            })
        });
        report(&format!("{name}/delete_all_1000 (after_delete + event) vs DELETE RETURNING"), &ratios);

        reset();
        group.bench_function("earn/delete_all_1000_before_hooks_events", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let ratios = &ratios;
                async move {
                    delete_pair!(iters, ratios, db, pool, Memo, |u: User| Memo { id: None, name: u.name, email: u.email })
                }
            })
        });
        report(&format!("{name}/delete_all_1000 (before_delete + after_delete + event) vs DELETE RETURNING"), &ratios);
        group.finish();
    }};
}

fn bulk(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Events go to a bus of their own with no handler: the cost measured is
    // earn's, not a handler's.
    let bus = rt
        .block_on(async { EventBus::builder().without_registered_handlers().build() })
        .unwrap();
    let db = rt
        .block_on(Db::connect("sqlite::memory:"))
        .unwrap()
        .with_bus(bus.clone());
    let pool = db.as_sqlite().unwrap().clone();
    bench_backend!("sqlite", c, &rt, &db, &pool);
    match std::env::var("EARN_POSTGRES_URL") {
        Ok(url) => {
            let db = rt
                .block_on(Db::connect(&url))
                .unwrap()
                .with_bus(bus.clone());
            let pool = db.as_postgres().unwrap().clone();
            bench_backend!("postgres", c, &rt, &db, &pool);
        }
        Err(_) => eprintln!("bulk_postgres skipped: EARN_POSTGRES_URL is not set"),
    }
    match std::env::var("EARN_MYSQL_URL") {
        Ok(url) => {
            let db = rt
                .block_on(Db::connect(&url))
                .unwrap()
                .with_bus(bus.clone());
            let pool = db.as_mysql().unwrap().clone();
            bench_backend!("mysql", c, &rt, &db, &pool);
        }
        Err(_) => eprintln!("bulk_mysql skipped: EARN_MYSQL_URL is not set"),
    }
}

criterion_group!(benches, bulk);
criterion_main!(benches);
