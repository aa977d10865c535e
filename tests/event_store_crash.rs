//! A catch-up subscription killed with SIGKILL half way through history
//! resumes from its checkpoint: every stored event is applied exactly
//! once, in order, with no gap. The subscriber is this test binary run
//! again in the `subscriber` role. Runs on every database (SQLite in a
//! file both processes open).

mod common;
#[path = "support/store.rs"]
mod store_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{backends, connect, fresh, sqlite_file};
use earn::prelude::*;
use earn::store::{EventStore, Expected};
use store_support::{Applied, Apply, applied, fresh_store};

const ROLE: &str = "EARN_STORE_CRASH_ROLE";
const DB_URL: &str = "EARN_STORE_CRASH_DB";
const SUBSCRIPTION: &str = "crash";
const EVENTS: u64 = 2_000;
const PATIENCE: Duration = Duration::from_secs(120);

/// The subscriber process: applies events until it is killed.
#[tokio::test]
async fn subscriber_role() {
    if std::env::var(ROLE).as_deref() != Ok("subscriber") {
        return; // only in the child process
    }
    let url = std::env::var(DB_URL).expect("database URL");
    let db = Db::connect(&url).await.expect("connect");
    let store = EventStore::new(&db);
    let _subscription = store
        .subscription(SUBSCRIPTION)
        .batch(40)
        .poll_interval(Duration::from_millis(20))
        // Slow enough to be killed half way through.
        .start(Apply {
            pause: Duration::from_micros(500),
        })
        .await
        .expect("start the subscription");
    println!("subscribing");
    std::future::pending::<()>().await;
}

fn start_subscriber(url: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "subscriber_role",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE, "subscriber")
        .env(DB_URL, url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the subscriber process")
}

async fn checkpoint(store: &EventStore) -> u64 {
    store
        .checkpoints()
        .await
        .expect("checkpoints")
        .into_iter()
        .find(|c| c.name == SUBSCRIPTION)
        .map_or(0, |c| c.position)
}

/// Waits until the checkpoint passes `above`, and returns it.
async fn checkpoint_above(store: &EventStore, above: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let position = checkpoint(store).await;
        if position > above {
            return position;
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoint stayed at {position}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_subscriber_killed_mid_catch_up_resumes_from_its_checkpoint() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let _serial = common::serial().await;
    for (name, url) in backends() {
        let url = if name == "sqlite" {
            sqlite_file("store-crash")
        } else {
            url
        };
        eprintln!("--- on {name}");
        let db = connect(name, &url).await;
        let store = fresh_store(&db).await;
        fresh::<Applied>(&db).await;
        for order in 0..EVENTS / 100 {
            let events = (0..100)
                .map(|i| Event::new("order.line_added", &serde_json::json!({ "i": i })).unwrap())
                .collect();
            store
                .append(&format!("order-{order}"), Expected::NoStream, events)
                .await
                .expect("append");
        }
        let head = store.head().await.unwrap();

        // Killed twice half way through history, then left to finish.
        let mut killed_at = Vec::new();
        let mut last = 0;
        for _ in 0..2 {
            let mut child = start_subscriber(&url);
            checkpoint_above(&store, last).await;
            child.kill().expect("SIGKILL the subscriber");
            child.wait().expect("reap the subscriber");
            let at = checkpoint(&store).await;
            assert!(
                at < head,
                "killed before the end of history ({at} of {head})"
            );
            killed_at.push(at);
            last = at;
        }
        let mut child = start_subscriber(&url);
        let deadline = Instant::now() + PATIENCE;
        while checkpoint(&store).await < head {
            assert!(
                Instant::now() < deadline,
                "the restarted subscriber did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().expect("stop the subscriber");
        child.wait().expect("reap the subscriber");

        let applied = applied(&db).await;
        let stored: Vec<u64> = {
            use futures_util::TryStreamExt;
            store
                .read_all(0, usize::MAX)
                .map_ok(|e| e.position)
                .try_collect()
                .await
                .unwrap()
        };
        assert_eq!(stored.len() as u64, EVENTS);
        assert_eq!(
            applied, stored,
            "every event applied once, in order, no gap"
        );
        eprintln!(
            "killed at checkpoints {killed_at:?} of {head}; {} events applied once each",
            applied.len()
        );
    }
}
