//! Updates write only what changed, skip what did not change, and with
//! `#[model(version)]` refuse to overwrite a row changed since it was read.

mod common;

use common::{capture, each_backend, fresh};
use earn::prelude::*;
use earn::testing::Recorder;
use earn::{Dialect, Error};

#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "upd_products", events = "product")]
struct Product {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    price: i64,
    stock: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "upd_items")]
struct Item {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    price: i64,
    stock: i64,
    #[model(version)]
    lock_version: i32,
}

/// A column name quoted as it appears in sqlx's log line (which escapes
/// double quotes).
fn quoted(db: &Db, column: &str) -> String {
    match db.dialect() {
        Dialect::Postgres => format!("\\\"{column}\\\""),
        Dialect::Sqlite | Dialect::MySql => format!("`{column}`"),
    }
}

/// The UPDATE statements sqlx logged.
fn updates(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("summary=\"UPDATE"))
        .collect()
}

#[tokio::test]
async fn an_update_writes_only_the_changed_columns() {
    each_backend(|db| async move {
        let bus = EventBus::builder()
            .without_registered_handlers()
            .build()
            .unwrap();
        let db = db.with_bus(bus.clone());
        fresh::<Product>(&db).await;
        let mut lamp = Product {
            id: None,
            name: "lamp".into(),
            price: 100,
            stock: 10,
        };
        lamp.save(&db).await.unwrap();
        let captured = capture();
        lamp.price = 150;
        lamp.save(&db).await.unwrap();
        let log = captured.text();
        let statements = updates(&log);
        assert_eq!(statements.len(), 1, "{log}");
        let update = statements[0];
        assert!(
            update.contains(&format!("SET {} = ", quoted(&db, "price"))),
            "{update}"
        );
        for untouched in ["name", "stock"] {
            assert!(
                !update.contains(&format!("{} =", quoted(&db, untouched))),
                "{untouched} was written: {update}"
            );
        }
        let stored = Product::find(&db, lamp.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(stored, lamp);
    })
    .await;
}

#[tokio::test]
async fn a_save_that_changes_nothing_writes_nothing_and_raises_no_event() {
    each_backend(|db| async move {
        let bus = EventBus::builder()
            .without_registered_handlers()
            .build()
            .unwrap();
        let recorder = Recorder::attach(&bus, "product.*").unwrap();
        let db = db.with_bus(bus.clone());
        fresh::<Product>(&db).await;
        let mut lamp = Product {
            id: None,
            name: "lamp".into(),
            price: 100,
            stock: 10,
        };
        lamp.save(&db).await.unwrap();
        let captured = capture();
        lamp.save(&db).await.unwrap();
        let log = captured.text();
        assert!(updates(&log).is_empty(), "{log}");
        lamp.stock = 9;
        lamp.save(&db).await.unwrap();
        bus.wait_idle().await;
        assert_eq!(recorder.names(), ["product.created", "product.updated"]);
        let changes = recorder.events()[1]
            .meta(earn::CHANGES_KEY)
            .unwrap()
            .to_owned();
        assert_eq!(changes, r#"{"stock":{"new":9,"old":10}}"#);
    })
    .await;
}

#[tokio::test]
async fn a_stale_copy_is_refused_instead_of_losing_an_update() {
    each_backend(|db| async move {
        fresh::<Item>(&db).await;
        let mut item = Item {
            id: None,
            name: "lamp".into(),
            price: 100,
            stock: 10,
            lock_version: 0,
        };
        item.save(&db).await.unwrap();
        let id = item.id.unwrap();

        // Two copies read at version 0: one raises the price, the other
        // sells one lamp.
        let mut pricing = Item::find(&db, id).await.unwrap().unwrap();
        let mut selling = Item::find(&db, id).await.unwrap().unwrap();
        pricing.price = 150;
        pricing.save(&db).await.unwrap();
        assert_eq!(pricing.lock_version, 1);

        selling.stock -= 1;
        let error = selling.save(&db).await.unwrap_err();
        match &error {
            Error::Stale {
                model: "Item",
                operation: Operation::Update,
                expected: 0,
                found: 1,
                ..
            } => {}
            other => panic!("expected Error::Stale, got {other:?}"),
        }
        assert!(error.to_string().contains("read it again"), "{error}");
        assert_eq!(selling.lock_version, 0, "a refused save changes nothing");
        let stored = Item::find(&db, id).await.unwrap().unwrap();
        assert_eq!((stored.price, stored.stock), (150, 10), "nothing was lost");

        // Read again, the sale goes through.
        let mut selling = stored;
        selling.stock -= 1;
        selling.save(&db).await.unwrap();
        let stored = Item::find(&db, id).await.unwrap().unwrap();
        assert_eq!(
            (stored.price, stored.stock, stored.lock_version),
            (150, 9, 2)
        );

        // The quiet path and delete check the version too.
        pricing.price = 1;
        let quiet = pricing.save_quietly(&db).await.unwrap_err();
        assert!(
            matches!(
                quiet,
                Error::Stale {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{quiet}"
        );
        let delete = pricing.delete(&db).await.unwrap_err();
        assert!(
            matches!(
                delete,
                Error::Stale {
                    operation: Operation::Delete,
                    ..
                }
            ),
            "{delete}"
        );
        stored.delete(&db).await.unwrap();
        assert!(Item::find(&db, id).await.unwrap().is_none());
    })
    .await;
}
