//! Operators' reads over 100,000 dead letters in one source: the status
//! (a count per source, the outbox backlog and its oldest row), the first
//! page of dead letters with its total, and the web console's dead-letter
//! page rendered whole (the HTML of the router, through `oneshot`). On the outbox of `EARN_POSTGRES_URL` (SQLite in
//! a file otherwise) and, with `EARN_REDIS_URL`, a Redis stream.
//!
//! `cargo bench --bench dead_letters`

use criterion::{Criterion, criterion_group, criterion_main};
use earn::admin::Admin;
use earn::{DeadLetterFilter, DeadLetters, PageRequest};

const LETTERS: u64 = 100_000;

async fn seed_outbox(db: &earn::Db) {
    db.install_outbox().await.unwrap();
    db.execute_unprepared("DELETE FROM earn_outbox_dead")
        .await
        .unwrap();
    // One statement: a recursive count on SQLite and MySQL, a series on
    // PostgreSQL.
    let rows = match db.dialect() {
        earn::Dialect::Postgres => format!(
            "INSERT INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
             SELECT 'bench-' || n, CASE WHEN n % 10 = 0 THEN 'payment.failed' ELSE 'order.created' END, \
             '{{}}', 'gave up', 3, 1700000000000 + n FROM generate_series(1, {LETTERS}) AS n"
        ),
        _ => format!(
            "INSERT INTO earn_outbox_dead (id, name, event, reason, attempts, failed_at) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {LETTERS}) \
             SELECT CONCAT('bench-', i), CASE WHEN i % 10 = 0 THEN 'payment.failed' ELSE 'order.created' END, \
             '{{}}', 'gave up', 3, 1700000000000 + i FROM n"
        ),
    };
    let rows = if db.dialect() == earn::Dialect::Sqlite {
        rows.replace("CONCAT('bench-', i)", "'bench-' || i")
    } else {
        rows
    };
    db.execute_unprepared(&rows).await.unwrap();
}

fn dead_letters(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = std::env::var("EARN_POSTGRES_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("earn-bench-dead-letters.db");
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let db = rt.block_on(earn::Db::connect(&url)).unwrap();
    rt.block_on(seed_outbox(&db));
    let admin = Admin::new().database(db.clone());
    let outbox = db.outbox_dead_letters();
    let all = DeadLetterFilter::default();
    let payments = DeadLetterFilter::default().event("payment.**");

    let mut group = c.benchmark_group(format!("dead_letters_{:?}", db.dialect()));
    group.sample_size(20);
    group.bench_function("status_100k", |b| {
        b.to_async(&rt)
            .iter(|| async { admin.status().await.unwrap() });
    });
    group.bench_function("first_page_and_total_100k", |b| {
        b.to_async(&rt).iter(|| async {
            let page = outbox.list(&all, PageRequest::page(1, 50)).await.unwrap();
            let total = outbox.count(&all).await.unwrap();
            (page, total)
        });
    });
    group.bench_function("filtered_page_and_total_100k", |b| {
        b.to_async(&rt).iter(|| async {
            let page = outbox
                .list(&payments, PageRequest::page(1, 50))
                .await
                .unwrap();
            let total = outbox.count(&payments).await.unwrap();
            (page, total)
        });
    });
    group.bench_function("page_1000_of_100k", |b| {
        b.to_async(&rt).iter(|| async {
            outbox
                .list(&all, PageRequest::page(1000, 50))
                .await
                .unwrap()
        });
    });
    // The console's page: list, total and HTML.
    let console = rt.block_on(async {
        earn::console::router(admin.clone(), earn::console::ConsoleOptions::default())
    });
    group.bench_function("console_dead_letter_page_100k", |b| {
        b.to_async(&rt).iter(|| async {
            use tower::ServiceExt as _;
            let request = axum::http::Request::get("/dead-letters?source=outbox")
                .body(axum::body::Body::empty())
                .unwrap();
            let response = console.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        });
    });
    group.finish();

    if let Ok(redis_url) = std::env::var("EARN_REDIS_URL") {
        let stream = "earn:bench:dead_letters";
        let streams = rt
            .block_on(earn::redis::RedisStreams::connect(
                &redis_url,
                earn::redis::RedisSettings::new(stream, "bench"),
            ))
            .unwrap();
        rt.block_on(async {
            let client = redis::Client::open(redis_url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let dead = format!("{stream}:dead");
            let _: () = redis::cmd("DEL")
                .arg(&dead)
                .query_async(&mut conn)
                .await
                .unwrap();
            for chunk in 0..(LETTERS / 1000) {
                let mut pipe = redis::pipe();
                for i in 0..1000 {
                    let n = chunk * 1000 + i;
                    let name = if n % 10 == 0 {
                        "payment.failed"
                    } else {
                        "order.created"
                    };
                    pipe.cmd("XADD")
                        .arg(&dead)
                        .arg("*")
                        .arg("name")
                        .arg(name)
                        .arg("dead:reason")
                        .arg("gave up")
                        .ignore();
                }
                let _: () = pipe.query_async(&mut conn).await.unwrap();
            }
        });
        let source = streams.dead_letter_source();
        let admin = Admin::new().stream(streams.clone());
        let mut group = c.benchmark_group("dead_letters_redis");
        group.sample_size(10);
        group.bench_function("status_100k", |b| {
            b.to_async(&rt)
                .iter(|| async { admin.status().await.unwrap() });
        });
        group.bench_function("first_page_and_total_100k", |b| {
            b.to_async(&rt).iter(|| async {
                let page = source.list(&all, PageRequest::page(1, 50)).await.unwrap();
                let total = source.count(&all).await.unwrap();
                (page, total)
            });
        });
        group.bench_function("filtered_page_and_total_100k", |b| {
            b.to_async(&rt).iter(|| async {
                let page = source
                    .list(&payments, PageRequest::page(1, 50))
                    .await
                    .unwrap();
                let total = source.count(&payments).await.unwrap();
                (page, total)
            });
        });
        group.finish();
    }
}

criterion_group!(benches, dead_letters);
criterion_main!(benches);
