//! The web console in a real browser: a console over a PostgreSQL outbox
//! and a Redis stream seeded with dead letters, driven by
//! `tests/console/e2e.mjs` (Node, playwright-core, Debian's chromium).
//! With `EARN_REQUIRE_SERVICES=1` a missing database, Redis, Node,
//! chromium or playwright-core fails the test instead of skipping it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axum::Router;
use earn::admin::Admin;
use earn::console::{self, ConsoleOptions};
use earn::redis::{RedisSettings, RedisStreams};
use earn::{DeadLetterFilter, DeadLetters, Event};
use redis::AsyncCommands as _;

fn required() -> bool {
    std::env::var("EARN_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// `Some(reason)` when the browser test cannot run here.
fn missing_tools(dir: &Path, chromium: &str) -> Option<String> {
    let runs = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if !runs("node", "--version") {
        return Some("node is not installed".to_owned());
    }
    if !Path::new(chromium).exists() {
        return Some(format!(
            "{chromium} is missing (apt-get install chromium, or set CHROMIUM)"
        ));
    }
    if !dir.join("node_modules/playwright-core").exists() {
        // Install what package-lock.json pins, as CI does.
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            return Some(format!(
                "playwright-core is not installed and `npm ci` in {} failed",
                dir.display()
            ));
        }
    }
    None
}

/// Three outbox dead letters, the last with a hostile payload.
async fn seed_outbox(db: &earn::Db) {
    let rows = [
        (
            "e2e-0",
            "order.created",
            common::stored_event("order.created", serde_json::json!({"order": 1})),
        ),
        (
            "e2e-1",
            "order.paid",
            common::stored_event("order.paid", serde_json::json!({"order": 1, "cents": 1250})),
        ),
        (
            "e2e-hostile",
            "user.created",
            common::stored_event(
                "user.created",
                serde_json::json!({"name": "<script>alert('pwned')</script>"}),
            ),
        ),
    ];
    common::seed_outbox_dead_letters(db, &rows, Duration::from_secs(60), Duration::from_secs(1))
        .await;
}

/// Two dead letters in `{stream}:dead`, as the consumer writes them.
async fn seed_stream(raw: &mut redis::aio::MultiplexedConnection, stream: &str) {
    for (i, name) in ["mail.send", "mail.bounce"].iter().enumerate() {
        let event = serde_json::to_string(&Event::new(*name, &i).unwrap()).unwrap();
        let fields = [
            ("name", name.to_string()),
            ("v", "1".to_owned()),
            ("event", event),
            ("dead:reason", "handler mailer gave up: SMTP 421".to_owned()),
            ("dead:deliveries", "5".to_owned()),
            ("dead:group", "ops".to_owned()),
            ("dead:entry", format!("{}-0", i + 1)),
            ("dead:gave_up", "mailer".to_owned()),
            ("dead:finished", String::new()),
        ];
        let _: String = raw
            .xadd(format!("{stream}:dead"), "*", &fields)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn spawn(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_browser() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let postgres = std::env::var("EARN_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let (Some(postgres), Some(redis_url)) = (postgres, common::redis_url()) else {
        assert!(
            !required(),
            "EARN_POSTGRES_URL is not set and EARN_REQUIRE_SERVICES=1"
        );
        eprintln!("skipped: the browser test needs EARN_POSTGRES_URL and EARN_REDIS_URL");
        return;
    };
    if let Some(reason) = missing_tools(&dir, &chromium) {
        assert!(
            !required(),
            "{reason}, and EARN_REQUIRE_SERVICES=1: the browser test cannot be skipped"
        );
        eprintln!("skipped: {reason}");
        return;
    }

    let db = common::connect("postgres", &postgres).await;
    seed_outbox(&db).await;
    let stream = format!("earn:console:{}", uuid::Uuid::new_v4());
    let streams = RedisStreams::connect(&redis_url, RedisSettings::new(stream.as_str(), "ops"))
        .await
        .unwrap();
    let mut raw = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    seed_stream(&mut raw, &stream).await;
    let admin = Admin::new().database(db.clone()).stream(streams.clone());

    // The console alone, as `earn console` serves it, and a read-only one
    // nested in an application under `/ops`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console_url = format!("http://{}", listener.local_addr().unwrap());
    let options = ConsoleOptions::default().sample_every(Duration::from_millis(500));
    tokio::spawn(console::serve_on(admin.clone(), options, listener));
    let read_only = Router::new().nest(
        "/ops",
        console::router(admin.clone(), ConsoleOptions::default().read_only(true)),
    );
    let read_only_url = format!("{}/ops", spawn(read_only).await);

    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    let screenshot = target.join("console-dashboard.png");
    let source = format!("redis:{stream}");
    let output = tokio::task::spawn_blocking({
        let (dir, screenshot) = (dir.clone(), screenshot.clone());
        move || {
            Command::new("node")
                .arg("e2e.mjs")
                .current_dir(dir)
                .env("CONSOLE_URL", console_url)
                .env("READ_ONLY_URL", read_only_url)
                .env("STREAM_SOURCE", source)
                .env("SCREENSHOT", screenshot)
                .env("CHROMIUM", chromium)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "e2e.mjs failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");

    // What the browser did reached the stores.
    let all = DeadLetterFilter::default();
    assert_eq!(db.outbox_backlog().await.unwrap(), 1, "one retried");
    assert_eq!(db.outbox_dead_letters().count(&all).await.unwrap(), 2);
    assert_eq!(streams.dead_letter_source().count(&all).await.unwrap(), 1);
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);

    db.execute_unprepared("DELETE FROM earn_outbox")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM earn_outbox_dead")
        .await
        .unwrap();
    let _: () = raw
        .del(&[
            stream.clone(),
            format!("{stream}:dead"),
            format!("{stream}:delayed"),
            format!("{stream}:marks"),
        ])
        .await
        .unwrap();
}
