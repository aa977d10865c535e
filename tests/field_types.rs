//! Field types beyond the built-in ones: enums and newtypes with
//! `#[derive(earn::Field)]`, and the `time`, `decimal` and `json` features'
//! types, stored, read back, filtered on and checked against the schema on
//! the three databases.

mod common;

use std::str::FromStr;

use common::{each_backend, fresh};
use earn::Dialect;
use earn::prelude::*;
use rust_decimal::Decimal;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Stored as text: renamed by a rule, one variant by hand.
#[derive(Debug, Clone, Copy, PartialEq, Field)]
#[field(rename_all = "snake_case")]
enum Status {
    Pending,
    OutForDelivery,
    #[field(rename = "done")]
    Delivered,
}

/// Stored as its discriminant, explicit or implicit.
#[derive(Debug, Clone, Copy, PartialEq, Field)]
#[field(integer)]
enum Priority {
    Low = -1,
    Normal,
    High = 10,
}

#[derive(Debug, Clone, PartialEq, Field)]
struct Email(String);

/// Generic, and with a named field.
#[derive(Debug, Clone, PartialEq, Field)]
struct Tagged<T> {
    value: T,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "field_orders")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    status: Status,
    priority: Priority,
    previous: Option<Status>,
    email: Email,
    batch: Option<Tagged<i64>>,
}

fn order(status: Status, priority: Priority, email: &str) -> Order {
    Order {
        id: None,
        status,
        priority,
        previous: None,
        email: Email(email.into()),
        batch: None,
    }
}

/// A column of one row as the database holds it, as text (`None` for
/// `NULL`), read without earn.
async fn raw(db: &Db, table: &str, column: &str, id: i64) -> Option<String> {
    let pool_error = "the pool of the Db's own dialect";
    match db.dialect() {
        Dialect::Sqlite => {
            let sql = format!("SELECT CAST(`{column}` AS TEXT) FROM `{table}` WHERE id = ?");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(db.as_sqlite().expect(pool_error))
                .await
        }
        Dialect::Postgres => {
            let sql = format!(r#"SELECT "{column}"::text FROM "{table}" WHERE id = $1"#);
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(db.as_postgres().expect(pool_error))
                .await
        }
        Dialect::MySql => {
            let sql = format!("SELECT CAST(`{column}` AS CHAR) FROM `{table}` WHERE id = ?");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(db.as_mysql().expect(pool_error))
                .await
        }
    }
    .expect("read the raw column")
}

/// `sql` with backticks, or double quotes on PostgreSQL.
fn quoted(db: &Db, sql: &str) -> String {
    match db.dialect() {
        Dialect::Postgres => sql.replace('`', "\""),
        _ => sql.to_owned(),
    }
}

#[tokio::test]
async fn enums_and_newtypes_round_trip_and_are_stored_as_declared() {
    each_backend(|db| async move {
        fresh::<Order>(&db).await;
        let mut first = order(Status::OutForDelivery, Priority::Normal, "ada@example.com");
        first.previous = Some(Status::Pending);
        first.batch = Some(Tagged { value: 42 });
        first.save(&db).await.unwrap();
        let id = first.id.unwrap();
        assert_eq!(Order::find(&db, id).await.unwrap(), Some(first.clone()));

        let stored = |column: &'static str| {
            let db = db.clone();
            async move { raw(&db, "field_orders", column, id).await }
        };
        assert_eq!(stored("status").await.as_deref(), Some("out_for_delivery"));
        assert_eq!(stored("previous").await.as_deref(), Some("pending"));
        assert_eq!(
            stored("priority").await.as_deref(),
            Some("0"),
            "implicit: -1 + 1"
        );
        assert_eq!(stored("email").await.as_deref(), Some("ada@example.com"));
        assert_eq!(stored("batch").await.as_deref(), Some("42"));

        // A renamed variant is stored as its new name; an update writes it.
        first.status = Status::Delivered;
        first.priority = Priority::High;
        first.previous = None;
        first.save(&db).await.unwrap();
        assert_eq!(stored("status").await.as_deref(), Some("done"));
        assert_eq!(stored("priority").await.as_deref(), Some("10"));
        assert_eq!(stored("previous").await, None, "None is NULL");
        assert_eq!(Order::find(&db, id).await.unwrap(), Some(first));
    })
    .await;
}

#[tokio::test]
async fn typed_filters_compare_enums_optional_enums_and_newtypes() {
    each_backend(|db| async move {
        fresh::<Order>(&db).await;
        let mut orders = vec![
            order(Status::Pending, Priority::Low, "a@example.com"),
            order(Status::OutForDelivery, Priority::High, "b@example.com"),
            order(Status::Delivered, Priority::Normal, "c@example.com"),
            order(Status::Delivered, Priority::High, "d@example.com"),
        ];
        orders[2].previous = Some(Status::OutForDelivery);
        orders[3].batch = Some(Tagged { value: 7 });
        for order in &mut orders {
            order.save(&db).await.unwrap();
        }
        let emails = |found: Vec<Order>| -> Vec<String> {
            let mut emails: Vec<String> = found.into_iter().map(|o| o.email.0).collect();
            emails.sort();
            emails
        };

        let delivered = Order::query()
            .filter(Order::STATUS.eq(Status::Delivered))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(emails(delivered), ["c@example.com", "d@example.com"]);
        let open = Order::query()
            .filter(Order::STATUS.is_in([Status::Pending, Status::OutForDelivery]))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(emails(open), ["a@example.com", "b@example.com"]);
        let urgent = Order::query()
            .filter(
                Order::PRIORITY
                    .eq(Priority::High)
                    .and(Order::STATUS.ne(Status::Pending)),
            )
            .all(&db)
            .await
            .unwrap();
        assert_eq!(emails(urgent), ["b@example.com", "d@example.com"]);
        let not_high = Order::query()
            .filter(Order::PRIORITY.is_in([Priority::Low, Priority::Normal]))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(emails(not_high), ["a@example.com", "c@example.com"]);

        // An `Option<Status>` column: compared with a `Status`, or NULL.
        let was_out = Order::query()
            .filter(Order::PREVIOUS.eq(Status::OutForDelivery))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(emails(was_out), ["c@example.com"]);
        assert_eq!(
            Order::query()
                .filter(Order::PREVIOUS.is_null())
                .count(&db)
                .await
                .unwrap(),
            3
        );

        let by_email = Order::query()
            .filter(Order::EMAIL.eq(Email("b@example.com".into())))
            .one(&db)
            .await
            .unwrap();
        assert_eq!(by_email.status, Status::OutForDelivery);
        assert_eq!(
            Order::query()
                .filter(Order::BATCH.eq(Tagged { value: 7 }))
                .count(&db)
                .await
                .unwrap(),
            1
        );

        // Assignments of `update_all` bind the same way.
        let changed = Order::query()
            .filter(Order::STATUS.eq(Status::Pending))
            .update_all(&db, [Order::STATUS.set(Status::OutForDelivery)])
            .await
            .unwrap();
        assert_eq!(changed, 1);
        assert_eq!(
            Order::query()
                .filter(Order::STATUS.eq(Status::Pending))
                .count(&db)
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn an_unknown_stored_value_is_a_decode_error_naming_type_and_value() {
    each_backend(|db| async move {
        fresh::<Order>(&db).await;
        let insert = |status: &str, priority: i64| {
            quoted(
                &db,
                &format!(
                    "INSERT INTO `field_orders` (`status`, `priority`, `email`) \
                     VALUES ('{status}', {priority}, 'x@example.com')"
                ),
            )
        };
        db.execute_unprepared(&insert("lost", 0)).await.unwrap();
        let error = Order::query().one(&db).await.unwrap_err().to_string();
        assert!(
            error.contains(r#"Status has no variant stored as "lost""#)
                && error.contains(r#""pending", "out_for_delivery", "done""#)
                && error.contains("column `status`"),
            "{error}"
        );

        fresh::<Order>(&db).await;
        db.execute_unprepared(&insert("pending", 7)).await.unwrap();
        let error = Order::query().one(&db).await.unwrap_err().to_string();
        assert!(
            error.contains("Priority has no variant stored as 7")
                && error.contains("-1 for Low, 0 for Normal, 10 for High"),
            "{error}"
        );

        // The variant's name rather than its renamed form is unknown too.
        fresh::<Order>(&db).await;
        db.execute_unprepared(&insert("Delivered", 0))
            .await
            .unwrap();
        let error = Order::query().one(&db).await.unwrap_err().to_string();
        assert!(error.contains(r#"stored as "Delivered""#), "{error}");
    })
    .await;
}

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
        fresh::<Order>(&db).await;
        fresh::<Invoice>(&db).await;
        db.check_schema::<Order>().await.unwrap();
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
    let lite = Order::create_table_sql(Dialect::Sqlite).unwrap();
    assert!(lite.contains("`status` TEXT NOT NULL"), "{lite}");
    assert!(lite.contains("`priority` INTEGER NOT NULL"), "{lite}");
    assert!(lite.contains("`previous` TEXT,"), "{lite}");
    assert!(lite.contains("`batch` INTEGER)"), "{lite}");
}
