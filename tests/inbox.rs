//! The idempotency inbox: a handler's database work runs once per event,
//! however often the event is delivered, and again after it failed.

mod common;

use std::time::Duration;

use common::{count, each_backend, fresh};
use earn::Dialect;
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "inbox_shipments")]
struct Shipment {
    #[model(primary_key, auto)]
    id: Option<i64>,
    order_event: String,
}

fn shipment(event: &Event) -> Shipment {
    Shipment {
        id: None,
        order_event: event.id().to_string(),
    }
}

async fn setup(db: &Db) {
    fresh::<Shipment>(db).await;
    db.install_inbox().await.unwrap();
    db.execute_unprepared("DELETE FROM earn_inbox")
        .await
        .unwrap();
}

fn paid(order: u32) -> Event {
    Event::new("order.paid", &order).unwrap()
}

/// The handler under test; `true` if it did the work.
async fn ship(db: &Db, event: &Event) -> Result<bool, Error> {
    let Some(mut tx) = db.begin_once("shipping.ship", event).await? else {
        return Ok(false);
    };
    shipment(event).save_in(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}

fn deliver(db: &Db, event: &Event) -> tokio::task::JoinHandle<Result<bool, Error>> {
    let (db, event) = (db.clone(), event.clone());
    tokio::spawn(async move { ship(&db, &event).await })
}

#[tokio::test]
async fn an_event_delivered_twice_changes_the_database_once() {
    each_backend(|db| async move {
        setup(&db).await;
        let event = paid(1);
        assert!(ship(&db, &event).await.unwrap());
        assert!(
            !ship(&db, &event).await.unwrap(),
            "the redelivery is skipped"
        );
        assert_eq!(count::<Shipment>(&db).await, 1);

        // Another event, or another handler of the same event, is not a redelivery.
        assert!(ship(&db, &paid(2)).await.unwrap());
        let other = db.begin_once("billing.invoice", &event).await.unwrap();
        other.expect("another handler").commit().await.unwrap();
        assert_eq!(count::<Shipment>(&db).await, 2);
    })
    .await;
}

#[tokio::test]
async fn a_handler_that_failed_runs_again_on_redelivery() {
    each_backend(|db| async move {
        setup(&db).await;
        let event = paid(1);
        // The handler wrote, then failed: its transaction rolled back.
        let mut tx = db.begin_once("shipping.ship", &event).await.unwrap();
        let tx_ref = tx.as_mut().expect("first delivery");
        shipment(&event).save_in(tx_ref).await.unwrap();
        tx.unwrap().rollback().await.unwrap();
        // Again, leaving through an early `?`: the transaction is dropped.
        let mut tx = db.begin_once("shipping.ship", &event).await.unwrap();
        let tx_ref = tx.as_mut().expect("delivery after a rollback");
        shipment(&event).save_in(tx_ref).await.unwrap();
        drop(tx);
        assert_eq!(count::<Shipment>(&db).await, 0);

        assert!(
            ship(&db, &event).await.unwrap(),
            "the redelivery runs the handler"
        );
        assert!(!ship(&db, &event).await.unwrap());
        assert_eq!(count::<Shipment>(&db).await, 1);
    })
    .await;
}

/// Opens the first delivery of event `n`, starts a second one, checks it
/// waits, then commits or rolls back the first; returns whether the
/// second ran the handler.
async fn second_delivery_while_the_first_is_open(db: &Db, n: u32, commit: bool) -> bool {
    let event = paid(n);
    let mut first = db.begin_once("shipping.ship", &event).await.unwrap();
    shipment(&event)
        .save_in(first.as_mut().unwrap())
        .await
        .unwrap();
    let second = deliver(db, &event);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "the second delivery waits");
    let first = first.unwrap();
    if commit {
        first.commit().await.unwrap();
    } else {
        first.rollback().await.unwrap();
    }
    second.await.unwrap().unwrap()
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_change_the_database_exactly_once() {
    each_backend(|db| async move {
        if db.dialect() == Dialect::Sqlite {
            // One writer at a time: SQLite cannot interleave transactions.
            return;
        }
        setup(&db).await;

        // A second delivery waits for the first's transaction; it committed: skipped.
        assert!(
            !second_delivery_while_the_first_is_open(&db, 1, true).await,
            "then skips"
        );
        assert_eq!(count::<Shipment>(&db).await, 1);

        // The first rolled back: the waiting delivery does the work.
        assert!(
            second_delivery_while_the_first_is_open(&db, 2, false).await,
            "then runs"
        );
        assert_eq!(count::<Shipment>(&db).await, 2);

        // Many at once: one does the work.
        let event = paid(3);
        let deliveries: Vec<_> = (0..8).map(|_| deliver(&db, &event)).collect();
        let mut ran = 0;
        for delivery in deliveries {
            ran += usize::from(delivery.await.unwrap().unwrap());
        }
        assert_eq!(ran, 1);
        assert_eq!(count::<Shipment>(&db).await, 3);
    })
    .await;
}
