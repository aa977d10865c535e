//! Reserved words as identifiers, hostile values round-tripping verbatim,
//! and every supported field type.

mod common;

use common::{each_backend, fresh};
use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "order")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(column = "select")]
    choice: String,
    #[model(column = "from")]
    origin: Option<String>,
}

const HOSTILE: &str = "'); DROP TABLE \"order\"; -- `x` \\ \0 ünïcødé 🎉 $1 ? %s";

#[tokio::test]
async fn reserved_words_are_quoted_and_values_are_bound() {
    each_backend(|db| async move {
        fresh::<Order>(&db).await;
        // MySQL TEXT cannot hold NUL in every mode; keep it out there.
        let hostile = if db.dialect() == earn::Dialect::MySql {
            HOSTILE.replace('\0', "")
        } else {
            HOSTILE.to_owned()
        };
        let hostile = if db.dialect() == earn::Dialect::Postgres {
            hostile.replace('\0', "")
        } else {
            hostile
        };
        let mut order = Order {
            id: None,
            choice: hostile.clone(),
            origin: Some(hostile.clone()),
        };
        order.save(&db).await.unwrap();
        let loaded = Order::find(&db, order.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(loaded, order);
        assert_eq!(loaded.choice, hostile, "verbatim");
        order.origin = None;
        order.save(&db).await.unwrap();
        assert_eq!(Order::all(&db).await.unwrap(), [order]);
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Address {
    city: String,
    lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "quoting_everything")]
struct Everything {
    #[model(primary_key)]
    id: uuid::Uuid,
    a: i8,
    b: i16,
    c: i32,
    d: i64,
    e: u8,
    f: u16,
    g: u32,
    h: u64,
    i: f32,
    j: f64,
    k: bool,
    l: String,
    m: Vec<u8>,
    n: Option<i64>,
    o: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
    day: chrono::NaiveDate,
    #[model(json)]
    address: Address,
    #[model(json)]
    tags: std::collections::BTreeMap<String, i32>,
}

fn everything() -> Everything {
    use chrono::TimeZone;
    Everything {
        id: uuid::Uuid::new_v4(),
        a: -8,
        b: -16,
        c: -32,
        d: i64::MIN,
        e: u8::MAX,
        f: u16::MAX,
        g: u32::MAX,
        h: i64::MAX as u64,
        i: 1.5,
        j: -2.25,
        k: true,
        l: "text".into(),
        m: vec![0, 1, 2, 255],
        n: None,
        o: Some("o".into()),
        at: chrono::Utc
            .with_ymd_and_hms(2024, 2, 29, 12, 30, 45)
            .unwrap(),
        day: chrono::NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
        address: Address {
            city: "Paris".into(),
            lines: vec!["1 rue".into()],
        },
        tags: [("x".to_owned(), 1)].into(),
    }
}

#[tokio::test]
async fn every_field_type_round_trips() {
    each_backend(|db| async move {
        fresh::<Everything>(&db).await;
        let mut row = everything();
        row.save(&db).await.unwrap();
        assert_eq!(
            Everything::find(&db, row.id).await.unwrap(),
            Some(row.clone())
        );
        row.address.city = "Lyon".into();
        row.n = Some(7);
        row.save(&db).await.unwrap();
        assert_eq!(Everything::all(&db).await.unwrap(), [row]);
    })
    .await;
}

#[tokio::test]
async fn a_value_the_column_cannot_hold_is_an_error_and_writes_nothing() {
    each_backend(|db| async move {
        fresh::<Everything>(&db).await;
        let mut row = everything();
        row.h = u64::MAX;
        let result = row.save(&db).await;
        if db.dialect() == earn::Dialect::MySql {
            // BIGINT UNSIGNED holds it.
            result.unwrap();
            assert_eq!(
                Everything::find(&db, row.id).await.unwrap().unwrap().h,
                u64::MAX
            );
        } else {
            let error = result.unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with("database error on table `quoting_everything` during insert:"),
                "{message}"
            );
            assert!(
                message.contains("u64 value 18446744073709551615 does not fit the column type"),
                "{message}"
            );
            assert!(Everything::all(&db).await.unwrap().is_empty());
        }
    })
    .await;
}
