//! Crash tests with real processes against a private `nats-server` on
//! file storage: a producer publishes without pause, a consumer handles
//! into an effects file, and the test kills with SIGKILL, mid-stream, the
//! consumer, then `nats-server` itself (restarted on the same store), then
//! the producer. Every event whose publish was acknowledged must show up
//! in the effects file; the test prints how many were handled twice.
//!
//! The producer and the consumers are this test binary run again with
//! `EARN_NATS_CRASH_ROLE` set (see `crash_child`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use earn::Event;
use earn::nats::NatsStreams;

const PATIENCE: Duration = Duration::from_secs(90);
const ROLE: &str = "EARN_NATS_CRASH_ROLE";

/// One child process whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(role: &str, url: &str, stream: &str, effects: &Path) -> Running {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ROLE, role)
            .env("EARN_NATS_CRASH_URL", url)
            .env("EARN_NATS_CRASH_STREAM", stream)
            .env("EARN_NATS_CRASH_EFFECTS", effects)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a child");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest starts the child's first line with the test's name.
                let line = match line.split_once("crash_child ... ") {
                    Some((_, rest)) => rest.to_owned(),
                    None => line,
                };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Waits for the line `ready`.
    fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == "ready" => return,
                Ok(_) => {}
                Err(_) => panic!("a child never became ready"),
            }
        }
    }

    /// The ids acknowledged so far (`acked {id}` lines).
    fn take_acked(&self, into: &mut Vec<String>) {
        while let Ok(line) = self.lines.try_recv() {
            if let Some(id) = line.strip_prefix("acked ") {
                into.push(id.to_owned());
            }
        }
    }

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

/// How many times each id was handled.
fn handled(effects: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in std::fs::read_to_string(effects).unwrap_or_default().lines() {
        *counts.entry(id.to_owned()).or_default() += 1;
    }
    counts
}

/// Collects acknowledged ids until there are `n` more than `since`.
fn run_until(producer: &Running, acked: &mut Vec<String>, more: usize) {
    let want = acked.len() + more;
    let deadline = Instant::now() + PATIENCE;
    while acked.len() < want {
        assert!(
            Instant::now() < deadline,
            "the producer stalled at {}",
            acked.len()
        );
        producer.take_acked(acked);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn nothing_acknowledged_is_lost_when_consumer_server_and_producer_are_killed() {
    let Some(mut server) = earn_test_servers::NatsServer::start_plain() else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", server.port());
    let stream = common::unique_stream();
    let effects: PathBuf = server.dir().join("effects");
    let mut acked = Vec::new();

    let mut consumer = Running::start("consumer", &url, &stream, &effects);
    consumer.wait_ready();
    let producer = Running::start("producer", &url, &stream, &effects);
    producer.wait_ready();

    // 1. The consumer dies mid-stream; another takes over.
    run_until(&producer, &mut acked, 300);
    consumer.kill9();
    consumer = Running::start("consumer", &url, &stream, &effects);
    consumer.wait_ready();

    // 2. nats-server dies mid-stream and comes back on the same store.
    run_until(&producer, &mut acked, 300);
    server.kill9();
    std::thread::sleep(Duration::from_millis(500));
    producer.take_acked(&mut acked);
    let at_server_kill = acked.len();
    server.restart();

    // 3. The producer dies mid-stream, after the server is back.
    run_until(&producer, &mut acked, 300);
    producer.kill9();
    // Lines already in the pipe were acknowledged before the kill.
    std::thread::sleep(Duration::from_millis(100));

    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = handled(&effects);
        let missing: Vec<usize> = (0..acked.len())
            .filter(|&i| !counts.contains_key(&acked[i]))
            .collect();
        if missing.is_empty() {
            let twice = counts.values().filter(|&&n| n > 1).count();
            eprintln!(
                "{} acknowledged events, all handled; {twice} handled more than once",
                acked.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged events were never handled: positions {missing:?} \
             (nats-server was killed after {at_server_kill})",
            missing.len(),
            acked.len(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(consumer);
}

/// The producer and consumer processes; does nothing when run as a test.
#[test]
fn crash_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let url = std::env::var("EARN_NATS_CRASH_URL").unwrap();
    let stream = std::env::var("EARN_NATS_CRASH_STREAM").unwrap();
    let effects = std::env::var("EARN_NATS_CRASH_EFFECTS").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let settings = common::settings(&stream).ack_wait(Duration::from_secs(2));
        let streams = NatsStreams::connect(&url, settings).await.unwrap();
        match role.as_str() {
            "producer" => produce(streams).await,
            _ => consume(streams, &effects).await,
        }
    });
}

/// Publishes numbered events from 8 tasks forever, each retried until it
/// is acknowledged, printing `acked {id}` for each.
async fn produce(streams: NatsStreams) {
    println!("ready");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let streams = streams.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let event = Event::new("crash.order", &1).unwrap();
                while streams.publish(&event).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {}", event.id()).unwrap();
                    out.flush().unwrap();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Handles every event by appending its id to the effects file.
async fn consume(streams: NatsStreams, effects: &str) {
    let bus = common::bus();
    let path = effects.to_owned();
    bus.subscribe_sync("crash.*", 0, move |event: &Event| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        // One write per line: concurrent handlers append whole lines.
        file.write_all(format!("{}\n", event.id()).as_bytes())
            .unwrap();
    })
    .unwrap();
    let _consumer = streams.consume(bus).await.unwrap();
    println!("ready");
    std::future::pending::<()>().await;
}
