//! Model events through the transactional outbox into Redis Streams, and a
//! consumer that hands them to its bus's handlers.
//!
//! ```text
//! cargo run --example redis --features redis
//! ```
//!
//! `EARN_REDIS_URL` names the Redis (default `redis://127.0.0.1:6379`).
//! Producer and consumer share one process here; in production they are
//! separate processes, on any number of machines (see the `worker`
//! example).

use std::time::Duration;

use earn::Outbox;
use earn::prelude::*;
use earn::redis::{RedisSettings, RedisStreams};

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "orders", events = "order")] // order.created / order.updated / order.deleted
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    item: String,
}

/// Runs in the consumer, for each `order.created` read from the stream.
#[event_handler("order.created")]
async fn ship(order: Order) {
    println!("shipping order {:?}: {}", order.id, order.item);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("EARN_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // The stream `earn:example:orders`, read by the consumer group `shipping`.
    let settings = RedisSettings::new("earn:example:orders", "shipping").consumer("shipping-1");
    let streams = RedisStreams::connect(&url, settings).await?;

    // The consumer: reads the group's entries and hands them to a bus with
    // the program's #[event_handler]s; an entry is acknowledged once they
    // all succeeded.
    let bus = EventBus::builder().build()?;
    let consumer = streams.consume(bus.clone()).await?;

    // The producer: the transaction writes the order and its event's outbox
    // row together; after the COMMIT the event goes to the stream and the
    // row is deleted. (A real producer also runs an `OutboxRelay` to deliver
    // what a crash between the two left behind.)
    let db = Db::connect("sqlite::memory:")
        .await?
        .with_outbox(Outbox::default())
        .with_outbox_sink(streams.clone());
    db.install_outbox().await?;
    db.create_table::<Order>().await?;

    let arrived = bus.wait_for("order.created", Duration::from_secs(10));
    let mut order = Order {
        id: None,
        item: "a lamp".into(),
    };
    order.save(&db).await?;
    let event = arrived.await?;
    println!("consumed {} ({}) from Redis", event.name(), event.id());

    // Stop reading, let the handlers finish and acknowledge, then stop the bus.
    let report = consumer.shutdown(Duration::from_secs(5)).await;
    if !report.drained {
        eprintln!(
            "{} entries left pending, delivered again at the next start",
            report.left
        );
    }
    bus.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
