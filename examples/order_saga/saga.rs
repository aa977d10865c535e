//! The seeds' order saga (Nexus's saga pattern, plugin events): an order
//! takes a payment, then reserves its items; if the items are not there,
//! the payment is refunded and the order cancelled. Its state is a row of
//! `earn_sagas`, moved in the transaction of each step.
//!
//! The payment and inventory services it talks to are here too, each
//! handling its requests once (the inbox) and answering in the request's
//! correlation, so the answers come back to the saga.

use std::time::Duration;

use earn::prelude::*;
use earn::saga::{Saga, SagaContext};
use serde_json::json;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OrderSaga {
    pub(crate) order_id: i64,
    pub(crate) amount: i64,
    pub(crate) items: Vec<String>,
    /// `payment`, `inventory`, `done`.
    pub(crate) current_step: String,
    pub(crate) completed_steps: Vec<String>,
}

impl Saga for OrderSaga {
    const NAME: &'static str = "order";
    const STARTS: &'static [&'static str] = &["order.created"];
    const HANDLES: &'static [&'static str] = &[
        "payment.completed",
        "payment.failed",
        "inventory.reserved",
        "inventory.failed",
    ];

    async fn handle(
        &mut self,
        event: &Event,
        saga: &mut SagaContext<'_>,
    ) -> Result<(), HandlerError> {
        let order = json!({ "order_id": self.order_id });
        match event.name().as_str() {
            "order.created" => {
                let created = event.payload_json();
                self.order_id = created["order_id"].as_i64().unwrap_or_default();
                self.amount = created["amount"].as_i64().unwrap_or_default();
                self.items = serde_json::from_value(created["items"].clone()).unwrap_or_default();
                self.current_step = "payment".into();
                saga.send(Event::new(
                    "payment.request",
                    &json!({ "order_id": self.order_id, "amount": self.amount }),
                )?);
                saga.timeout_after(Duration::from_secs(60));
            }
            "payment.completed" => {
                self.completed_steps.push("payment".into());
                // Undone if a later step fails.
                saga.compensate_with(Event::new(
                    "payment.refund",
                    &json!({ "order_id": self.order_id, "amount": self.amount }),
                )?);
                self.current_step = "inventory".into();
                saga.send(Event::new(
                    "inventory.reserve",
                    &json!({ "order_id": self.order_id, "items": self.items }),
                )?);
            }
            "payment.failed" => {
                saga.send(Event::new(
                    "order.cancelled",
                    &json!({ "order_id": self.order_id, "reason": "payment_failed" }),
                )?);
                saga.fail("payment failed");
            }
            "inventory.reserved" => {
                self.completed_steps.push("inventory".into());
                self.current_step = "done".into();
                saga.send(Event::new("order.confirmed", &order)?);
                saga.complete();
            }
            "inventory.failed" => {
                saga.send(Event::new(
                    "order.cancelled",
                    &json!({ "order_id": self.order_id, "reason": "inventory_unavailable" }),
                )?);
                // Sends the refund recorded after the payment.
                saga.fail("inventory unavailable");
            }
            _ => {}
        }
        Ok(())
    }
}

/// The services' tables.
pub(crate) async fn install_services(db: &Db) -> Result<(), Error> {
    for table in [
        "CREATE TABLE IF NOT EXISTS saga_payments (order_id BIGINT PRIMARY KEY, amount BIGINT NOT NULL, refunded BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS saga_reservations (order_id BIGINT PRIMARY KEY)",
    ] {
        db.execute_unprepared(table).await?;
    }
    Ok(())
}

/// The payment service (orders over 1,000 are declined) and the inventory
/// service (`unobtainium` is never in stock). Each request changes the
/// database once and is answered in the same transaction. With `stall`,
/// the inventory service never answers: a worker to be killed mid-saga.
pub(crate) fn subscribe_services(bus: &EventBus, db: &Db, stall: bool) -> Result<(), Error> {
    let payments = db.clone();
    bus.subscribe("payment.request", 0, move |request: Event| {
        let db = payments.clone();
        async move {
            let Some(mut tx) = db.begin_once("payments.charge", &request).await? else {
                return Ok(());
            };
            let order = request.payload_json()["order_id"].as_i64().unwrap_or_default();
            let amount = request.payload_json()["amount"].as_i64().unwrap_or_default();
            let answer = if amount > 1_000 {
                "payment.failed"
            } else {
                tx.execute_unprepared(&format!(
                    "INSERT INTO saga_payments (order_id, amount, refunded) VALUES ({order}, {amount}, 0)"
                ))
                .await?;
                "payment.completed"
            };
            tx.raise(Event::new(answer, &json!({ "order_id": order }))?.caused_by(&request))?;
            tx.commit().await?;
            Ok::<_, HandlerError>(())
        }
    })?;
    let inventory = db.clone();
    bus.subscribe("inventory.reserve", 0, move |request: Event| {
        let db = inventory.clone();
        async move {
            if stall {
                std::future::pending::<()>().await;
            }
            let Some(mut tx) = db.begin_once("inventory.reserve", &request).await? else {
                return Ok(());
            };
            let order = request.payload_json()["order_id"]
                .as_i64()
                .unwrap_or_default();
            let missing = request.payload_json()["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|item| item == "unobtainium"));
            let answer = if missing {
                "inventory.failed"
            } else {
                tx.execute_unprepared(&format!(
                    "INSERT INTO saga_reservations (order_id) VALUES ({order})"
                ))
                .await?;
                "inventory.reserved"
            };
            tx.raise(Event::new(answer, &json!({ "order_id": order }))?.caused_by(&request))?;
            tx.commit().await?;
            Ok::<_, HandlerError>(())
        }
    })?;
    let refunds = db.clone();
    bus.subscribe("payment.refund", 0, move |request: Event| {
        let db = refunds.clone();
        async move {
            let Some(mut tx) = db.begin_once("payments.refund", &request).await? else {
                return Ok(());
            };
            let order = request.payload_json()["order_id"]
                .as_i64()
                .unwrap_or_default();
            tx.execute_unprepared(&format!(
                "UPDATE saga_payments SET refunded = 1 WHERE order_id = {order}"
            ))
            .await?;
            tx.commit().await?;
            Ok::<_, HandlerError>(())
        }
    })?;
    Ok(())
}

/// An order placed: the event that starts its saga.
pub(crate) fn order_created(order_id: i64, amount: i64, items: &[&str]) -> Event {
    Event::new(
        "order.created",
        &json!({ "order_id": order_id, "amount": amount, "items": items }),
    )
    .expect("a valid event")
}
