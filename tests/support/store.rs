//! Shared by the event store's tests and bench: an empty store, and a
//! projection that writes a row per event in the subscription's
//! transaction.

// Each includer uses some of it.
#![allow(dead_code)]

use std::time::Duration;

use earn::prelude::*;
use earn::store::{EventStore, Expected, Projection, Recorded};

/// Drops the event store's tables and installs them again: an empty store.
pub(crate) async fn fresh_store(db: &Db) -> EventStore {
    let drop = match db.dialect() {
        earn::Dialect::Postgres => {
            "DROP TABLE IF EXISTS earn_events, earn_streams, earn_checkpoints, earn_snapshots CASCADE; \
             DROP SEQUENCE IF EXISTS earn_events_position"
        }
        earn::Dialect::MySql => {
            "DROP TABLE IF EXISTS earn_events, earn_streams, earn_checkpoints, earn_snapshots, earn_event_position"
        }
        earn::Dialect::Sqlite => {
            "DROP TABLE IF EXISTS earn_events; DROP TABLE IF EXISTS earn_streams; \
             DROP TABLE IF EXISTS earn_checkpoints; DROP TABLE IF EXISTS earn_snapshots"
        }
    };
    db.execute_unprepared(drop)
        .await
        .expect("drop the store's tables");
    let store = EventStore::new(db);
    store.install().await.expect("install the store");
    store
}

/// A row per event applied, written in the subscription's transaction:
/// a position applied twice breaks the unique key.
#[derive(Debug, Clone, Model)]
#[model(table = "store_applied")]
pub(crate) struct Applied {
    #[model(primary_key, auto)]
    pub(crate) seq: Option<i64>,
    #[model(unique)]
    pub(crate) position: i64,
}

/// Writes an [`Applied`] row per event, after `pause`.
#[derive(Default)]
pub(crate) struct Apply {
    pub(crate) pause: Duration,
}

impl Projection for Apply {
    async fn apply(&self, tx: &mut Tx, event: &Recorded) -> Result<(), HandlerError> {
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        let mut row = Applied {
            seq: None,
            position: event.position as i64,
        };
        row.save_in(tx).await?;
        Ok(())
    }
}

/// The positions applied, in the order they were applied.
pub(crate) async fn applied(db: &Db) -> Vec<u64> {
    Applied::query()
        .order_by(Applied::SEQ.asc())
        .all(db)
        .await
        .expect("read the applied rows")
        .into_iter()
        .map(|row| row.position as u64)
        .collect()
}

/// Stream `order-1` of `read` events, applied by subscription `totals`
/// (feeding a bus with no handlers), which is then stopped; then `unread`
/// more. Returns the subscription's checkpoint and the store's head.
pub(crate) async fn lagging_subscription(store: &EventStore, read: u64, unread: u64) -> (u64, u64) {
    let line = || Event::new("order.line_added", &1).expect("event");
    let events = |n: u64| (0..n).map(|_| line()).collect::<Vec<_>>();
    store
        .append("order-1", Expected::NoStream, events(read))
        .await
        .expect("append what the subscription reads");
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .expect("bus");
    let subscription = store
        .subscription("totals")
        .start(bus)
        .await
        .expect("start");
    subscription
        .reached(store.head().await.expect("head"), Duration::from_secs(30))
        .await
        .expect("the subscription reads everything");
    let checkpoint = subscription.shutdown().await.position;
    store
        .append("order-1", Expected::Exact(read), events(unread))
        .await
        .expect("append what it has not read");
    (checkpoint, store.head().await.expect("head"))
}
