//! Crash tests with real processes: the `worker` example is started as a
//! producer, a relay and workers (outbox → Redis Streams → handler), and
//! killed with SIGKILL at three points:
//!
//! 1. after the commit, before the event is handed over;
//! 2. after the event is handed over to Redis, before its outbox row is
//!    deleted;
//! 3. a worker that handled an event and dies before acknowledging it.
//!
//! After a restart every committed order (a row of `demo_orders`) must show
//! up in the workers' effects file at least once; the test prints how many
//! were handled twice. Runs on every database.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use earn::prelude::*;

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "demo_orders")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    item: String,
    quantity: i64,
}

const PATIENCE: Duration = Duration::from_secs(60);

/// `target/<profile>/examples/worker`, built by `cargo test` with the tests.
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let binary = profile_dir.join("examples").join("worker");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds it with the suite; alone, build it with \
         `cargo build --example worker --features redis,postgres,mysql`",
        binary.display()
    );
    binary
}

/// One scenario's settings: a database, a stream of its own, an effects file.
struct Setup {
    db_url: String,
    redis_url: String,
    stream: String,
    effects: PathBuf,
}

/// A running example process whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Running {
    /// Reads lines until one equals `want`; panics if the process ends or
    /// the time runs out.
    fn wait_for(&mut self, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(_) => {}
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!("{} never printed `{want}` (exit: {status:?})", self.name);
                }
            }
        }
    }

    /// SIGKILL, and reap it.
    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Setup {
    fn start(&self, args: &[&str]) -> Running {
        let mut child = Command::new(worker_binary())
            .args(args)
            .env("EARN_DB_URL", &self.db_url)
            .env("EARN_REDIS_URL", &self.redis_url)
            .env("EARN_STREAM", &self.stream)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the worker example");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            name: format!("worker {}", args.join(" ")),
        }
    }

    fn worker(&self, pause_at: Option<&str>) -> Running {
        let effects = self.effects.display().to_string();
        let mut args = vec!["work", "--consumer", "crash-worker", "--effects", &effects];
        if let Some(point) = pause_at {
            args.extend(["--pause-at", point]);
        }
        self.start(&args)
    }

    /// How many times each item was handled.
    fn handled(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        let text = std::fs::read_to_string(&self.effects).unwrap_or_default();
        for line in text.lines() {
            if let Some((_, item)) = line.split_once(' ') {
                *counts.entry(item.to_owned()).or_default() += 1;
            }
        }
        counts
    }

    /// Waits until every committed order was handled; returns duplicates.
    async fn expect_every_committed_order_handled(&self, db: &Db, point: &str) -> usize {
        let committed: Vec<String> = Order::all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.item)
            .collect();
        assert!(!committed.is_empty(), "{point}: nothing was committed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let handled = self.handled();
            let missing: Vec<_> = committed
                .iter()
                .filter(|item| !handled.contains_key(*item))
                .collect();
            if missing.is_empty() {
                let duplicates: usize = handled.values().map(|n| n - 1).sum();
                eprintln!(
                    "kill -9 {point}: {} committed, all handled, {duplicates} handled twice",
                    committed.len()
                );
                return duplicates;
            }
            assert!(
                Instant::now() < deadline,
                "kill -9 {point}: {} of {} committed orders never handled, e.g. {:?}",
                missing.len(),
                committed.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn setup(name: &str, url: &str, redis_url: &str, point: &str) -> (Setup, Db) {
    let db_url = if name == "sqlite" {
        common::sqlite_file("crash")
    } else {
        url.to_owned()
    };
    let db = common::connect(name, &db_url).await;
    db.execute_unprepared("DROP TABLE IF EXISTS demo_orders")
        .await
        .unwrap();
    db.install_outbox().await.unwrap();
    db.execute_unprepared("DELETE FROM earn_outbox")
        .await
        .unwrap();
    let run = uuid::Uuid::new_v4();
    let setup = Setup {
        db_url,
        redis_url: redis_url.to_owned(),
        stream: format!("earn:crash:{point}:{run}"),
        effects: std::env::temp_dir().join(format!("earn-crash-{point}-{run}.log")),
    };
    (setup, db)
}

/// Runs `scenario` on every database.
async fn each_database<F, Fut>(point: &str, scenario: F)
where
    F: Fn(Setup, Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _serial = common::serial().await;
    let Some(redis_url) = common::redis_url() else {
        return;
    };
    for (name, url) in common::backends() {
        eprintln!("--- on {name}");
        let (setup, db) = setup(name, &url, &redis_url, point).await;
        let effects = setup.effects.clone();
        scenario(setup, db).await;
        let _ = std::fs::remove_file(effects);
    }
}

/// Kills the producer with SIGKILL at its 5th event at `point`, then runs
/// the relay; returns how many orders were handled twice.
async fn kill_the_producer(setup: Setup, db: Db, point: &str, what: &str) -> usize {
    let _worker = setup.worker(None);
    let pause_at = format!("{point}:5");
    let mut producer = setup.start(&["produce", "--count", "20", "--pause-at", &pause_at]);
    producer.wait_for("PAUSED");
    producer.kill9();
    assert!(
        db.outbox_backlog().await.unwrap() > 0,
        "{what}: the crash left nothing in the outbox"
    );
    setup.start(&["relay"]).wait_for("done");
    setup.expect_every_committed_order_handled(&db, what).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_commit_before_the_handover() {
    each_database("after-commit", |setup, db| async move {
        kill_the_producer(
            setup,
            db,
            "after-commit",
            "after commit, before the hand-over",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_handover_before_the_row_is_deleted() {
    each_database("after-handover", |setup, db| async move {
        let what = "after the hand-over, before the row is deleted";
        let duplicates = kill_the_producer(setup, db, "after-handover", what).await;
        assert!(
            duplicates >= 1,
            "the event handed over before the crash is delivered again"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_before_ack() {
    each_database("before-ack", |setup, db| async move {
        setup.start(&["produce", "--count", "20"]).wait_for("done");
        let mut worker = setup.worker(Some("before-ack:5"));
        worker.wait_for("PAUSED");
        worker.kill9();
        // The same consumer name: on start it drains its own pending entries.
        let _worker = setup.worker(None);
        let duplicates = setup
            .expect_every_committed_order_handled(&db, "worker before ack")
            .await;
        assert!(
            duplicates >= 1,
            "the event handled before the crash is delivered again"
        );
    })
    .await;
}
