//! Event sourcing with earn's event store: an order aggregate decided from
//! its stream, appended with expected versions, a read model kept by a
//! catch-up subscription and rebuilt by replay, a snapshot, an upcaster
//! for an old event shape, and model events kept as streams.
//!
//! `cargo run --example event_sourcing` (embedded SQLite); set
//! `EARN_DATABASE_URL` to run it on PostgreSQL or MySQL (with the
//! `postgres` / `mysql` features).

use std::time::Duration;

use earn::prelude::*;
use earn::store::{Aggregate, EventStore, Expected, Projection, Recorded};
use serde_json::json;

/// The aggregate: what an order's events say about it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Order {
    placed: bool,
    paid: bool,
    lines: u32,
    total_cents: i64,
}

impl Aggregate for Order {
    fn apply(&mut self, event: &Recorded) -> Result<(), HandlerError> {
        let payload = event.event.payload_json();
        match event.event.name().as_str() {
            "order.placed" => self.placed = true,
            "order.line_added" => {
                self.lines += 1;
                self.total_cents += payload["price_cents"].as_i64().unwrap_or(0);
            }
            "order.paid" => self.paid = true,
            _ => {}
        }
        Ok(())
    }
}

/// Why a command was refused.
#[derive(Debug)]
enum Refused {
    Paid(String),
    NotPlaced(String),
    Store(earn::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Paid(order) => write!(f, "order {order} is already paid"),
            Refused::NotPlaced(order) => write!(f, "order {order} was never placed"),
            Refused::Store(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Refused {}

impl From<earn::Error> for Refused {
    fn from(error: earn::Error) -> Self {
        Refused::Store(error)
    }
}

/// The commands: load the aggregate, decide, append at the version loaded.
/// A concurrent change makes the append fail with `WrongExpectedVersion`;
/// the command is then decided again on the new state.
async fn add_line(store: &EventStore, order: &str, sku: &str, cents: i64) -> Result<(), Refused> {
    loop {
        let loaded = store.load::<Order>(order).await?;
        if !loaded.state.placed {
            return Err(Refused::NotPlaced(order.into()));
        }
        if loaded.state.paid {
            return Err(Refused::Paid(order.into()));
        }
        let line = Event::new(
            "order.line_added",
            &json!({ "sku": sku, "price_cents": cents }),
        )
        .map_err(earn::Error::from)?;
        match store
            .append(order, Expected::Exact(loaded.version), vec![line])
            .await
        {
            Ok(_) => return Ok(()),
            Err(earn::Error::WrongExpectedVersion { .. }) => {} // changed since: decide again
            Err(other) => return Err(other.into()),
        }
    }
}

async fn pay(store: &EventStore, order: &str) -> Result<(), Refused> {
    let loaded = store.load::<Order>(order).await?;
    if loaded.state.paid {
        return Err(Refused::Paid(order.into()));
    }
    let paid = Event::new(
        "order.paid",
        &json!({ "amount_cents": loaded.state.total_cents }),
    )
    .map_err(earn::Error::from)?;
    store
        .append(order, Expected::Exact(loaded.version), vec![paid])
        .await?;
    Ok(())
}

/// The read model, kept by a projection.
#[derive(Debug, Clone, Model)]
#[model(table = "example_order_summaries")]
struct OrderSummary {
    #[model(primary_key)]
    order: String,
    lines: i64,
    total_cents: i64,
    paid: bool,
}

struct Summaries;

impl Projection for Summaries {
    async fn apply(&self, tx: &mut Tx, event: &Recorded) -> Result<(), HandlerError> {
        if !event.stream.starts_with("order-") {
            return Ok(());
        }
        let mut row = OrderSummary::find_in(tx, event.stream.clone())
            .await?
            .unwrap_or(OrderSummary {
                order: event.stream.clone(),
                lines: 0,
                total_cents: 0,
                paid: false,
            });
        match event.event.name().as_str() {
            "order.line_added" => {
                row.lines += 1;
                row.total_cents += event.event.payload_json()["price_cents"]
                    .as_i64()
                    .unwrap_or(0);
            }
            "order.paid" => row.paid = true,
            _ => {}
        }
        row.save_in(tx).await?;
        Ok(())
    }

    async fn reset(&self, tx: &mut Tx) -> Result<(), HandlerError> {
        OrderSummary::query().delete_all_in(tx).await?;
        Ok(())
    }
}

/// A model whose writes are kept as the stream `customer-<id>`.
#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "example_customers", events = "customer")]
struct Customer {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("EARN_DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db = Db::connect(&url).await?;
    db.execute_unprepared(
        "DROP TABLE IF EXISTS earn_events; DROP TABLE IF EXISTS earn_streams; \
         DROP TABLE IF EXISTS earn_checkpoints; DROP TABLE IF EXISTS earn_snapshots",
    )
    .await?;
    // Version 1 of `order.line_added` had `price` in units; version 2 has
    // `price_cents`. Old events are upcast when read.
    let store = EventStore::builder(&db)
        .upcast("order.line_added", 1, |mut payload| {
            let units = payload["price"].as_f64().ok_or("no price")?;
            payload["price_cents"] = json!((units * 100.0).round() as i64);
            Ok(payload)
        })
        .build();
    store.install().await?;
    db.drop_table::<OrderSummary>().await?;
    db.create_table::<OrderSummary>().await?;

    // An event stored long ago, at schema version 1 (a store without the
    // upcaster stores at version 1).
    let legacy = EventStore::new(&db);
    let placed = Event::new("order.placed", &json!({ "customer": "ada" }))?;
    let old_line = Event::new("order.line_added", &json!({ "sku": "pen", "price": 2.5 }))?;
    legacy
        .append("order-1", Expected::NoStream, vec![placed, old_line])
        .await?;

    let summaries = store
        .subscription("order-summaries")
        .start(Summaries)
        .await?;

    add_line(&store, "order-1", "book", 1_250).await?;
    add_line(&store, "order-1", "lamp", 4_000).await?;
    pay(&store, "order-1").await?;
    match add_line(&store, "order-1", "late", 100).await {
        Err(refused) => println!("refused: {refused}"),
        Ok(()) => unreachable!("a paid order takes no line"),
    }
    match add_line(&store, "order-2", "book", 1_250).await {
        Err(refused) => println!("refused: {refused}"),
        Ok(()) => unreachable!("an order never placed takes no line"),
    }

    // Two writers who loaded the same version: one wins.
    let placed = Event::new("order.placed", &json!({ "customer": "bob" }))?;
    store
        .append("order-2", Expected::NoStream, vec![placed])
        .await?;
    let first = Event::new("order.line_added", &json!({ "price_cents": 10 }))?;
    let second = Event::new("order.line_added", &json!({ "price_cents": 20 }))?;
    let (a, b) = tokio::join!(
        store.append("order-2", Expected::Exact(1), vec![first]),
        store.append("order-2", Expected::Exact(1), vec![second]),
    );
    println!(
        "two writers at version 1: {} won, {}",
        [a.is_ok(), b.is_ok()].iter().filter(|&&ok| ok).count(),
        a.err()
            .or(b.err())
            .map(|e| e.to_string())
            .unwrap_or_default()
    );

    // The aggregate, with a snapshot for the next load.
    let order = store.load::<Order>("order-1").await?;
    println!(
        "order-1 at version {}: {} lines, {} cents, paid: {}",
        order.version, order.state.lines, order.state.total_cents, order.state.paid
    );
    store
        .save_snapshot("order-1", order.version, &order.state)
        .await?;
    let again = store.load::<Order>("order-1").await?;
    println!(
        "loaded again from the snapshot at version {:?}, replaying {} event(s)",
        again.snapshot, again.replayed
    );

    let head = store.head().await?;
    let progress = summaries.reached(head, Duration::from_secs(10)).await?;
    println!("subscription: {progress:?}");
    for row in OrderSummary::all(&db).await? {
        println!("read model: {row:?}");
    }

    // The read model is disposable: rebuilt by replaying every event.
    summaries.shutdown().await;
    let rebuilt = store.rebuild("order-summaries", &Summaries).await?;
    println!(
        "rebuilt from {} events at {:.0} events/s",
        rebuilt.applied, rebuilt.rate
    );
    for row in OrderSummary::all(&db).await? {
        println!("rebuilt read model: {row:?}");
    }

    // Model writes kept as streams, in the write's transaction.
    let db = db.with_model_streams(&store);
    db.drop_table::<Customer>().await?;
    db.create_table::<Customer>().await?;
    let mut ada = Customer {
        id: None,
        name: "Ada".into(),
    };
    ada.save(&db).await?;
    ada.name = "Ada Lovelace".into();
    ada.save(&db).await?;
    let stream = format!("customer-{}", ada.id.unwrap_or_default());
    let history: Vec<Recorded> =
        futures_util::TryStreamExt::try_collect(store.read_stream(&stream, 1)).await?;
    for event in history {
        println!(
            "{stream} v{}: {} {}",
            event.version,
            event.event.name(),
            event.event.payload_json()
        );
    }
    db.bus().shutdown(Duration::from_secs(5)).await;
    Ok(())
}
