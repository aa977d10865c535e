//! A typed query by an indexed column returning one row, against the same
//! query written by hand with `sqlx::query_as` on the same pool. The two
//! sides run interleaved (see `paired!`). SQLite in memory always;
//! PostgreSQL and MySQL when `EARN_POSTGRES_URL` / `EARN_MYSQL_URL` are set.
//!
//! `cargo bench --bench queries`

use criterion::{Criterion, criterion_group, criterion_main};

#[macro_use]
mod support;

use earn::prelude::*;
use earn::{Dialect, sqlx};
use support::report;

/// The queried model: an `after_load` hook would run on every row; this
/// one has none, as the hand-written side has none.
#[derive(Debug, Clone, Model)]
#[model(table = "bench_query_users")]
struct User {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    email: String,
}

const ROWS: usize = 10_000;

async fn setup(db: &Db) {
    db.drop_table::<User>().await.unwrap();
    db.create_table::<User>().await.unwrap();
    let index = match db.dialect() {
        Dialect::MySql => "CREATE INDEX bench_query_users_email ON bench_query_users (email(64))",
        _ => "CREATE INDEX bench_query_users_email ON bench_query_users (email)",
    };
    db.execute_unprepared(index).await.unwrap();
    let mut users: Vec<User> = (0..ROWS)
        .map(|i| User {
            id: None,
            name: format!("user {i}"),
            email: format!("user{i}@example.com"),
        })
        .collect();
    User::insert_many(db, &mut users).await.unwrap();
}

macro_rules! bench_backend {
    ($name:expr, $c:expr, $rt:expr, $db:expr, $pool:expr, $sql:expr) => {{
        let (name, rt, db, pool, sql) = ($name, $rt, $db, $pool, $sql);
        rt.block_on(setup(db));
        let mut n = 0_usize;
        let mut email = move || {
            n = (n + 7919) % ROWS;
            format!("user{n}@example.com")
        };
        let ratios = std::sync::Mutex::new(Vec::new());
        let mut group = $c.benchmark_group(format!("query_{name}"));
        group.bench_function("earn/by_indexed_column", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let ratios = &ratios;
                let emails: Vec<String> = (0..iters).map(|_| email()).collect();
                async move {
                    let mut emails = emails.iter();
                    let mut raw_emails = emails.clone();
                    paired!(iters, ratios,
                        earn: {
                            let email = emails.next().unwrap();
                            let found = User::query().filter(User::EMAIL.eq(email)).all(db).await.unwrap();
                            assert_eq!(found.len(), 1);
                            std::hint::black_box(found);
                        },
                        raw: {
                            let email = raw_emails.next().unwrap();
                            let found: Vec<(i64, String, String)> = sqlx::query_as(sql)
                                .bind(email)
                                .fetch_all(pool)
                                .await
                                .unwrap();
                            assert_eq!(found.len(), 1);
                            std::hint::black_box(found);
                        })
                }
            })
        });
        report(&format!("{name}/query_by_indexed_column"), &ratios);
        group.finish();
    }};
}

fn queries(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(Db::connect("sqlite::memory:")).unwrap();
    let pool = db.as_sqlite().unwrap().clone();
    bench_backend!(
        "sqlite",
        c,
        &rt,
        &db,
        &pool,
        "SELECT `id`, `name`, `email` FROM `bench_query_users` WHERE `email` = ?"
    );
    match std::env::var("EARN_POSTGRES_URL") {
        Ok(url) => {
            let db = rt.block_on(Db::connect(&url)).unwrap();
            let pool = db.as_postgres().unwrap().clone();
            bench_backend!(
                "postgres",
                c,
                &rt,
                &db,
                &pool,
                r#"SELECT "id", "name", "email" FROM "bench_query_users" WHERE "email" = $1"#
            );
        }
        Err(_) => eprintln!("query_postgres skipped: EARN_POSTGRES_URL is not set"),
    }
    match std::env::var("EARN_MYSQL_URL") {
        Ok(url) => {
            let db = rt.block_on(Db::connect(&url)).unwrap();
            let pool = db.as_mysql().unwrap().clone();
            bench_backend!(
                "mysql",
                c,
                &rt,
                &db,
                &pool,
                "SELECT `id`, `name`, `email` FROM `bench_query_users` WHERE `email` = ?"
            );
        }
        Err(_) => eprintln!("query_mysql skipped: EARN_MYSQL_URL is not set"),
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);
