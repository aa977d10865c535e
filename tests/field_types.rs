//! Field types of the `time`, `decimal` and `json` features: stored, read
//! back, filtered on and checked against the schema on the three
//! databases.

mod common;

use std::str::FromStr;

use common::{each_backend, fresh};
use earn::Dialect;
use earn::prelude::*;
use rust_decimal::Decimal;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "field_invoices")]
struct Invoice {
    #[model(primary_key, auto)]
    id: Option<i64>,
    total: Decimal,
    discount: Option<Decimal>,
    due: Date,
    sent_at: Option<PrimitiveDateTime>,
    paid_at: Option<OffsetDateTime>,
    details: serde_json::Value,
    note: Option<serde_json::Value>,
    #[model(created_at)]
    created_at: OffsetDateTime,
    #[model(updated_at)]
    updated_at: Option<PrimitiveDateTime>,
}

fn invoice(total: &str) -> Invoice {
    let day = Date::from_calendar_date(2026, Month::March, 31).unwrap();
    Invoice {
        id: None,
        total: Decimal::from_str(total).unwrap(),
        discount: None,
        due: day,
        sent_at: Some(PrimitiveDateTime::new(
            day,
            Time::from_hms_micro(23, 59, 58, 123_456).unwrap(),
        )),
        // Another offset than UTC: the instant is kept.
        paid_at: Some(
            PrimitiveDateTime::new(day, Time::from_hms(8, 30, 0).unwrap())
                .assume_offset(UtcOffset::from_hms(2, 0, 0).unwrap()),
        ),
        details: serde_json::json!({ "lines": [{ "sku": "A-1", "qty": 2 }], "paid": false }),
        note: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: None,
    }
}

#[tokio::test]
async fn time_decimal_and_json_values_round_trip() {
    each_backend(|db| async move {
        fresh::<Invoice>(&db).await;
        let before = OffsetDateTime::now_utc();
        let mut small = invoice("1234.5600");
        small.discount = Some(Decimal::from_str("-0.05").unwrap());
        small.note = Some(serde_json::Value::Null);
        small.save(&db).await.unwrap();
        assert!(small.created_at >= before - time::Duration::microseconds(1));
        assert_eq!(
            small.created_at.nanosecond() % 1_000,
            0,
            "to the microsecond"
        );
        assert_eq!(
            small.updated_at,
            Some(PrimitiveDateTime::new(
                small.created_at.date(),
                small.created_at.time()
            )),
            "one instant per write"
        );

        // The largest and the most precise values a `Decimal` holds.
        let mut large = invoice("79228162514264337593543950335");
        large.discount = Some(Decimal::from_str("0.0000000000000000000000000001").unwrap());
        large.save(&db).await.unwrap();

        for saved in [&small, &large] {
            let found = Invoice::find(&db, saved.id.unwrap())
                .await
                .unwrap()
                .unwrap();
            // `Decimal` and `OffsetDateTime` compare values and instants:
            // PostgreSQL keeps `1234.5600`, the others read back `1234.56`.
            assert_eq!(&found, saved);
            assert_eq!(
                found.paid_at.map(|t| t.unix_timestamp()),
                saved.paid_at.map(|t| t.unix_timestamp())
            );
        }
        let found = Invoice::find(&db, small.id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.details["lines"][0]["sku"], "A-1");
        assert_eq!(
            found.note,
            Some(serde_json::Value::Null),
            "JSON null is not SQL NULL"
        );
        let found = Invoice::find(&db, large.id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.note, None);
        assert_eq!(found.total.to_string(), "79228162514264337593543950335");

        // Equal decimals are equal in SQL whatever their scale.
        let matched = Invoice::query()
            .filter(Invoice::TOTAL.eq(Decimal::from_str("1234.56").unwrap()))
            .count(&db)
            .await
            .unwrap();
        assert_eq!(matched, 1);
        let due = Invoice::query()
            .filter(
                Invoice::DUE
                    .eq(small.due)
                    .and(Invoice::SENT_AT.is_not_null()),
            )
            .count(&db)
            .await
            .unwrap();
        assert_eq!(due, 2);
    })
    .await;
}

#[tokio::test]
async fn a_decimal_column_of_sqlite_holding_other_text_is_a_decode_error() {
    let db = common::connect("sqlite", "sqlite::memory:").await;
    fresh::<Invoice>(&db).await;
    let mut one = invoice("1");
    one.save(&db).await.unwrap();
    db.execute_unprepared("UPDATE `field_invoices` SET `total` = 'twelve'")
        .await
        .unwrap();
    let error = Invoice::find(&db, one.id.unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(r#"stored text "twelve" is not a decimal"#) && error.contains("total"),
        "{error}"
    );
}

#[tokio::test]
async fn check_schema_accepts_the_tables_of_every_field_type() {
    each_backend(|db| async move {
        fresh::<Invoice>(&db).await;
        db.check_schema::<Invoice>().await.unwrap();
    })
    .await;
}

#[test]
fn the_ddl_declares_each_type_in_each_dialect() {
    let pg = Invoice::create_table_sql(Dialect::Postgres).unwrap();
    for column in [
        r#""total" NUMERIC NOT NULL"#,
        r#""due" DATE NOT NULL"#,
        r#""paid_at" TIMESTAMPTZ,"#,
        r#""details" JSONB NOT NULL"#,
    ] {
        assert!(pg.contains(column), "{column} in {pg}");
    }
    let my = Invoice::create_table_sql(Dialect::MySql).unwrap();
    assert!(my.contains("`total` DECIMAL(65,28) NOT NULL"), "{my}");
    assert!(my.contains("`created_at` DATETIME(6) NOT NULL"), "{my}");
}
