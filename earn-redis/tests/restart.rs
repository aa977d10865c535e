//! Redis restarted mid-stream: publishing and consuming resume by
//! themselves. With persistence nothing published is lost; without it
//! Redis restarts empty, the group is re-created, and everything published
//! after the restart is handled.
//!
//! Each test runs a private `redis-server` (from `PATH`, or
//! `EARN_REDIS_SERVER`) on a free port.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use earn::redis::{RedisSettings, RedisStreams};

/// A private Redis server, killed and its directory removed on drop.
struct Server {
    port: u16,
    persistent: bool,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts one on a free port; `None` (after a skip line) if there is no
    /// `redis-server` to run.
    fn start(persistent: bool) -> Option<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap();
        let dir = std::env::temp_dir().join(format!("earn-redis-restart-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server {
            port,
            persistent,
            dir,
            child: None,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(error) if std::env::var("EARN_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
                panic!("EARN_REQUIRE_SERVICES=1 but redis-server cannot be started: {error}")
            }
            Err(error) => {
                eprintln!(
                    "skipped: redis-server cannot be started ({error}); set EARN_REDIS_SERVER"
                );
                None
            }
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let binary = std::env::var("EARN_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut command = Command::new(binary);
        command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.persistent {
            // Every write on disk before Redis answers, so `kill -9` loses
            // nothing a client was told is stored.
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        self.child = Some(command.spawn()?);
        let client = redis::Client::open(self.url()).map_err(std::io::Error::other)?;
        let start = Instant::now();
        loop {
            let ready = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
            if ready.is_ok() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(std::io::Error::other(format!(
                    "redis-server did not answer: {ready:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        // Down long enough for publishes to fail, not only to wait.
        std::thread::sleep(Duration::from_secs(1));
        self.spawn().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a run published and handled.
struct Run {
    /// Published successfully, and whether before the restart.
    published: Vec<(uuid::Uuid, bool)>,
    handled: Vec<uuid::Uuid>,
    publish_errors: usize,
}

/// Publishes 600 events (retrying each until Redis takes it) while a
/// consumer handles them, restarts the server after the 200th, and waits
/// until `done` says the handled events are complete.
async fn run(server: &mut Server, done: impl Fn(&Run) -> bool) -> Run {
    let settings = RedisSettings::new("restart", "workers")
        .consumer("c1")
        .block(Duration::from_millis(100))
        .claim_idle(Duration::from_millis(500));
    let streams = RedisStreams::connect(&server.url(), settings)
        .await
        .unwrap();
    let (bus, seen) = common::recording_bus("tick.*");
    let consumer = streams.consume(bus).await.unwrap();

    let restarted = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (streams, restarted, count) = (streams.clone(), restarted.clone(), count.clone());
        tokio::spawn(async move {
            let mut published = Vec::new();
            let mut errors = 0;
            for event in common::events("tick.tock", 600) {
                let after = restarted.load(Ordering::SeqCst);
                loop {
                    match streams.publish(&event).await {
                        Ok(_) => break,
                        Err(error) => {
                            assert!(matches!(error, earn::Error::Transport { .. }), "{error}");
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                published.push((event.id(), !after));
                count.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (published, errors)
        })
    };
    common::wait_until("200 published", Duration::from_secs(20), || {
        count.load(Ordering::SeqCst) >= 200
    })
    .await;
    tokio::task::block_in_place(|| server.restart());
    restarted.store(true, Ordering::SeqCst);
    let (published, publish_errors) = publisher.await.unwrap();
    let mut run = Run {
        published,
        handled: Vec::new(),
        publish_errors,
    };
    let start = Instant::now();
    loop {
        run.handled = seen.ids();
        if done(&run) || start.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumer.shutdown(Duration::from_secs(5)).await;
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_persistence_every_published_event_is_handled_across_a_restart() {
    let Some(mut server) = Server::start(true) else {
        return;
    };
    let all_handled = |run: &Run| {
        let handled: HashSet<_> = run.handled.iter().collect();
        run.published.iter().all(|(id, _)| handled.contains(id))
    };
    let run = run(&mut server, all_handled).await;
    let handled: HashSet<_> = run.handled.iter().collect();
    let missing: Vec<_> = run
        .published
        .iter()
        .filter(|(id, _)| !handled.contains(id))
        .collect();
    println!(
        "published {}, handled {} ({} duplicates), {} publish errors during the outage",
        run.published.len(),
        run.handled.len(),
        run.handled.len() - handled.len(),
        run.publish_errors,
    );
    assert_eq!(run.published.len(), 600);
    assert!(
        run.publish_errors > 0,
        "publishing failed while Redis was down"
    );
    assert!(
        missing.is_empty(),
        "{} published events never handled",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_persistence_events_published_after_the_restart_are_handled() {
    let Some(mut server) = Server::start(false) else {
        return;
    };
    let after_handled = |run: &Run| {
        let handled: HashSet<_> = run.handled.iter().collect();
        run.published
            .iter()
            .filter(|(_, before)| !before)
            .all(|(id, _)| handled.contains(id))
    };
    let run = run(&mut server, after_handled).await;
    let handled: HashSet<_> = run.handled.iter().collect();
    let lost = run
        .published
        .iter()
        .filter(|(id, before)| *before && !handled.contains(id))
        .count();
    let missing = run
        .published
        .iter()
        .filter(|(id, before)| !before && !handled.contains(id))
        .count();
    println!(
        "published {}, handled {} ({} duplicates); {lost} published before the restart were lost \
         with the server's memory, as documented",
        run.published.len(),
        run.handled.len(),
        run.handled.len() - handled.len(),
    );
    assert!(run.published.iter().any(|(_, before)| !before));
    assert_eq!(
        missing, 0,
        "the group is re-created and everything published since is handled"
    );
}
