//! The seeds' order saga, end to end in one process on an embedded
//! SQLite: three orders, one paid and reserved, one declined, one whose
//! items are missing (its payment is refunded).
//!
//! `cargo run --example order_saga`

mod saga;

use std::time::Duration;

use earn::prelude::*;
use earn::saga::{SagaStatus, Sagas};
use saga::OrderSaga;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::builder().without_registered_handlers().build()?;
    // The outbox stores what each step sends with its state.
    let db = Db::connect("sqlite::memory:")
        .await?
        .with_bus(bus.clone())
        .with_outbox(earn::Outbox::default());
    db.install_outbox().await?;
    saga::install_services(&db).await?;
    let sagas = Sagas::new(&db);
    sagas.install().await?;
    sagas.register::<OrderSaga>(&bus)?;
    saga::subscribe_services(&bus, &db, false)?;
    let _timeouts = sagas.start_timeouts(Duration::from_secs(1));

    let orders = [
        saga::order_created(1, 250, &["book"]),
        saga::order_created(2, 5_000, &["piano"]),
        saga::order_created(3, 90, &["unobtainium"]),
    ];
    for order in &orders {
        let mut tx = db.begin().await?;
        tx.raise(order.clone())?;
        tx.commit().await?;
    }
    for order in &orders {
        let id = order.correlation_id();
        let record = loop {
            match sagas.get::<OrderSaga>(id).await? {
                Some(record) if record.status != SagaStatus::Running => break record,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        println!(
            "order {}: {:?} after {} steps ({}), steps done: {:?}",
            record.state.order_id,
            record.status,
            record.version,
            record.reason.as_deref().unwrap_or("no failure"),
            record.state.completed_steps,
        );
    }
    bus.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
