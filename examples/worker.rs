//! Two processes, as in production: a web-like producer that commits rows
//! and their events through the transactional outbox into Redis Streams,
//! and workers that handle them, on as many machines as you like.
//!
//! ```text
//! cargo run --example worker --features redis -- produce --count 1000
//! cargo run --example worker --features redis -- work --consumer worker-1
//! cargo run --example worker --features redis -- work --consumer worker-2
//! ```
//!
//! Settings come from the environment: `EARN_DB_URL` (default a SQLite
//! file `earn-demo.db`; PostgreSQL or MySQL with `--features
//! redis,postgres` / `redis,mysql`), `EARN_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and `EARN_STREAM` (default `earn:demo`).
//!
//! The crash tests (`tests/crash.rs`) start this binary and `kill -9` it at
//! the points `--pause-at` names: it prints `PAUSED` there and stops.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use earn::prelude::*;
use earn::redis::{RedisSettings, RedisStreams};
use earn::{EventSink, Outbox, OutboxRelay, SinkFuture};

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "demo_orders")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    item: String,
    quantity: i64,
}

/// The consumer group of the workers: every worker process of one service
/// shares the events of its group.
const GROUP: &str = "fulfilment";

#[derive(Default)]
struct Args {
    command: String,
    count: usize,
    consumer: Option<String>,
    effects: Option<String>,
    pause_at: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        count: 100,
        ..Args::default()
    };
    let mut given = std::env::args().skip(1);
    args.command = given.next().unwrap_or_default();
    while let Some(flag) = given.next() {
        let mut value = || {
            given
                .next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--count" => {
                args.count = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--count takes a number"))
            }
            "--consumer" => args.consumer = Some(value()),
            "--effects" => args.effects = Some(value()),
            "--pause-at" => args.pause_at = Some(value()),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: worker produce [--count N] [--pause-at after-commit[:N]|after-handover[:N]]\n       \
         worker relay\n       worker work [--consumer NAME] [--effects FILE] [--pause-at before-ack[:N]]"
    );
    #[allow(clippy::exit, reason = "a command-line usage error")]
    std::process::exit(2)
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Prints `PAUSED` and never returns: the crash tests kill the process here.
async fn pause() -> ! {
    println!("PAUSED");
    std::io::stdout().flush().ok();
    PAUSED.store(true, Ordering::SeqCst);
    std::future::pending().await
}

static PAUSED: AtomicBool = AtomicBool::new(false);

/// `point:N` → (`point`, N); N defaults to 1.
fn crash_point(pause_at: Option<&str>) -> Option<(&str, usize)> {
    let pause_at = pause_at?;
    Some(match pause_at.split_once(':') {
        Some((point, n)) => (
            point,
            n.parse()
                .unwrap_or_else(|_| usage("--pause-at POINT:N takes a number")),
        ),
        None => (pause_at, 1),
    })
}

/// Hands events to Redis, except from the Nth on at the crash point it is
/// told to stop at.
struct Gate {
    redis: RedisStreams,
    pause_at: Option<String>,
    handed: AtomicUsize,
}

impl EventSink for Gate {
    fn hand_over(&self, event: earn::Event, accepted: Box<dyn FnOnce() + Send>) -> SinkFuture<'_> {
        let nth = self.handed.fetch_add(1, Ordering::SeqCst) + 1;
        let point = crash_point(self.pause_at.as_deref()).filter(|(_, from)| nth >= *from);
        Box::pin(async move {
            match point.map(|(point, _)| point) {
                // Committed, not handed over.
                Some("after-commit") => pause().await,
                // Dispatched to Redis, the outbox row not yet deleted.
                Some("after-handover") => {
                    self.redis.hand_over(event, Box::new(|| {})).await?;
                    pause().await
                }
                _ => self.redis.hand_over(event, accepted).await,
            }
        })
    }
}

async fn redis(consumer: Option<&str>) -> Result<RedisStreams, earn::Error> {
    let mut settings = RedisSettings::new(env("EARN_STREAM", "earn:demo"), GROUP)
        .claim_idle(Duration::from_secs(2));
    if let Some(consumer) = consumer {
        settings = settings.consumer(consumer);
    }
    RedisStreams::connect(&env("EARN_REDIS_URL", "redis://127.0.0.1:6379"), settings).await
}

async fn database() -> Result<Db, earn::Error> {
    let db = Db::connect(&env("EARN_DB_URL", "sqlite://earn-demo.db?mode=rwc")).await?;
    db.create_table::<Order>().await?;
    db.install_outbox().await?;
    Ok(db)
}

/// The web-like producer: each "request" writes an order and raises
/// `order.placed` in one transaction; the outbox carries the event to Redis.
async fn produce(count: usize, pause_at: Option<String>) -> Result<(), earn::Error> {
    let redis = redis(None).await?;
    let db = database().await?.with_outbox(Outbox {
        lease: Duration::from_secs(1),
        ..Outbox::default()
    });
    let db = db.with_outbox_sink(Gate {
        redis: redis.clone(),
        pause_at,
        handed: AtomicUsize::new(0),
    });
    for n in 0..count {
        if PAUSED.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut order = Order {
            id: None,
            item: format!("book #{n}"),
            quantity: 1,
        };
        let mut tx = db.begin().await?;
        order.save_in(&mut tx).await?;
        let event = earn::Event::new("order.placed", &order)?;
        let id = event.id();
        tx.raise(event)?;
        tx.commit().await?;
        println!("committed {id}");
    }
    // The relay is the safety net for anything a crash left in the outbox.
    let relay = OutboxRelay::new(db.clone(), redis).lease(Duration::from_secs(1));
    while db.outbox_backlog().await? > 0 {
        relay.run_once().await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("done");
    Ok(())
}

/// Delivers what a crashed producer left in the outbox, then exits.
async fn relay() -> Result<(), earn::Error> {
    let db = database().await?;
    let relay = OutboxRelay::new(db.clone(), redis(None).await?).lease(Duration::from_secs(1));
    while db.outbox_backlog().await? > 0 {
        relay.run_once().await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("done");
    Ok(())
}

/// A worker: handles `order.placed` from the group's stream, appending each
/// event id to the effects file (its "side effect").
async fn work(
    consumer: Option<String>,
    effects: Option<String>,
    pause_at: Option<String>,
) -> Result<(), earn::Error> {
    let pause_after = crash_point(pause_at.as_deref())
        .filter(|(point, _)| *point == "before-ack")
        .map(|(_, n)| n);
    let effects = Arc::new(std::sync::Mutex::new(match effects {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the effects file"),
        ) as Box<dyn std::io::Write + Send>,
        None => Box::new(std::io::stdout()),
    }));
    let handled = Arc::new(AtomicUsize::new(0));
    let bus = EventBus::builder().without_registered_handlers().build()?;
    bus.subscribe("order.placed", 0, move |event: earn::Event| {
        let effects = effects.clone();
        let handled = handled.clone();
        async move {
            let order: Order = event.payload()?;
            writeln!(effects.lock().unwrap(), "{} {}", event.id(), order.item)?;
            if pause_after.is_some_and(|after| handled.fetch_add(1, Ordering::SeqCst) + 1 >= after)
            {
                // Handled, not acknowledged.
                pause().await;
            }
            Ok::<(), earn::HandlerError>(())
        }
    })?;
    let consumer = redis(consumer.as_deref()).await?.consume(bus).await?;
    eprintln!(
        "worker {} consuming group {GROUP}; Ctrl-C stops it",
        consumer.name()
    );
    tokio::signal::ctrl_c().await.ok();
    consumer.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), earn::Error> {
    let args = args();
    match args.command.as_str() {
        "produce" => produce(args.count, args.pause_at).await,
        "relay" => relay().await,
        "work" => work(args.consumer, args.effects, args.pause_at).await,
        other => usage(&format!("unknown command `{other}`")),
    }
}
