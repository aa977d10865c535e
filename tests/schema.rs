//! What `create_table` and the DDL of `create_table_sql` declare: unique
//! columns, indexes and defaults, on the three databases.

mod common;

use common::{each_backend, fresh};
use earn::Dialect;
use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "schema_members")]
struct Member {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(unique)]
    email: String,
    #[model(index)]
    team: String,
    #[model(default = "active")]
    status: String,
    #[model(default = -1)]
    score: i64,
}

fn member(email: &str) -> Member {
    Member {
        id: None,
        email: email.into(),
        team: "red".into(),
        status: "new".into(),
        score: 0,
    }
}

#[test]
fn the_ddl_declares_unique_index_and_default() {
    let pg = Member::create_table_sql(Dialect::Postgres).unwrap();
    assert!(pg.contains(r#""email" TEXT NOT NULL UNIQUE"#), "{pg}");
    assert!(
        pg.contains(r#""status" TEXT NOT NULL DEFAULT 'active'"#),
        "{pg}"
    );
    assert!(pg.contains(r#""score" BIGINT NOT NULL DEFAULT -1"#), "{pg}");
    assert!(
        pg.contains(
            r#"CREATE INDEX IF NOT EXISTS "schema_members_team_idx" ON "schema_members" ("team")"#
        ),
        "{pg}"
    );
    let my = Member::create_table_sql(Dialect::MySql).unwrap();
    assert!(
        my.contains("`email` VARCHAR(255) NOT NULL UNIQUE"),
        "keys take the key type: {my}"
    );
    assert!(
        my.contains("INDEX `schema_members_team_idx` (`team`)"),
        "{my}"
    );
    assert!(!my.contains("CREATE INDEX"), "{my}");
}

#[tokio::test]
async fn unique_columns_defaults_and_indexes_hold_on_every_database() {
    each_backend(|db| async move {
        fresh::<Member>(&db).await;
        // Twice: the index statement is idempotent like the table's.
        db.create_table::<Member>().await.unwrap();
        member("ada@example.com").insert(&db).await.unwrap();
        let error = member("ada@example.com").insert(&db).await.unwrap_err();
        assert!(matches!(error, earn::Error::UniqueViolation { .. }), "{error:?}");

        // A row written around earn gets the declared defaults.
        let sql = match db.dialect() {
            Dialect::Postgres => r#"INSERT INTO "schema_members" ("email", "team") VALUES ('bob@example.com', 'blue')"#,
            _ => "INSERT INTO `schema_members` (`email`, `team`) VALUES ('bob@example.com', 'blue')",
        };
        db.execute_unprepared(sql).await.unwrap();
        let bob = Member::query().filter(Member::EMAIL.eq("bob@example.com")).one(&db).await.unwrap();
        assert_eq!((bob.status.as_str(), bob.score), ("active", -1));
        assert_eq!(Member::query().filter(Member::TEAM.eq("blue")).count(&db).await.unwrap(), 1);
    })
    .await;
}

/// Type aliases are columns like the types they name.
type Cents = i64;
type Counter = i32;
type Id = i64;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "schema_prices")]
struct Price {
    #[model(primary_key, auto)]
    id: Option<Id>,
    amount: Cents,
    discount: Option<Cents>,
    #[model(version)]
    revision: Counter,
}

#[tokio::test]
async fn type_aliases_are_accepted_as_field_types() {
    each_backend(|db| async move {
        fresh::<Price>(&db).await;
        let mut price = Price {
            id: None,
            amount: 450,
            discount: Some(50),
            revision: 0,
        };
        price.save(&db).await.unwrap();
        price.amount = 500;
        price.save(&db).await.unwrap();
        assert_eq!(price.revision, 1);
        let found = Price::query()
            .filter(Price::AMOUNT.ge(400))
            .one(&db)
            .await
            .unwrap();
        assert_eq!(found, price);
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "schema_everything")]
struct Everything {
    #[model(primary_key)]
    code: String,
    small: i16,
    int: i32,
    big: i64,
    unsigned: u32,
    ratio: f64,
    flag: bool,
    bytes: Vec<u8>,
    note: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
    naive: Option<chrono::NaiveDateTime>,
    day: chrono::NaiveDate,
    uid: uuid::Uuid,
    #[model(json)]
    tags: Vec<String>,
    #[model(belongs_to = Member)]
    member_id: Option<i64>,
}

#[tokio::test]
async fn check_schema_accepts_what_create_table_made_and_lists_every_drift() {
    each_backend(|db| async move {
        db.drop_table::<Everything>().await.unwrap();
        fresh::<Member>(&db).await;
        db.create_table::<Everything>().await.unwrap();
        for result in [
            db.check_schema::<Member>().await,
            db.check_schema::<Everything>().await,
        ] {
            result.unwrap();
        }
        fresh::<Price>(&db).await;
        db.check_schema::<Price>().await.unwrap();

        // An out-of-date table: a missing column, a wrong type, a NULL
        // where the model has none.
        db.drop_table::<Price>().await.unwrap();
        let (key, text) = match db.dialect() {
            Dialect::Sqlite => ("INTEGER PRIMARY KEY", "TEXT"),
            Dialect::Postgres => ("BIGINT PRIMARY KEY", "TEXT"),
            Dialect::MySql => ("BIGINT PRIMARY KEY", "TEXT"),
        };
        db.execute_unprepared(&format!(
            "CREATE TABLE schema_prices (id {key}, amount {text}, revision INTEGER)"
        ))
        .await
        .unwrap();
        let error = db.check_schema::<Price>().await.unwrap_err();
        let earn::Error::SchemaDrift {
            model,
            table,
            problems,
        } = &error
        else {
            panic!("expected drift, got {error:?}");
        };
        assert_eq!((*model, *table), ("Price", "schema_prices"));
        let text = problems.join("\n");
        assert!(text.contains("column `discount` is missing"), "{text}");
        assert!(text.contains("column `amount` is"), "wrong type: {text}");
        assert!(
            text.contains("column `revision` accepts NULL but `revision` is not an Option"),
            "{text}"
        );
        db.drop_table::<Price>().await.unwrap();

        let missing = db.check_schema::<Price>().await.unwrap_err();
        assert!(
            missing.to_string().contains("the table does not exist"),
            "{missing}"
        );
        db.drop_table::<Everything>().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn check_schemas_at_start_up_lists_every_table_that_drifts() {
    each_backend(|db| async move {
        db.drop_table::<Everything>().await.unwrap();
        fresh::<Member>(&db).await;
        fresh::<Price>(&db).await;
        db.check_schemas::<(Member, Price)>().await.unwrap();
        db.check_schemas::<(Member,)>().await.unwrap();

        // One table missing: that table's drift.
        let one = db
            .check_schemas::<(Member, Price, Everything)>()
            .await
            .unwrap_err();
        assert!(
            matches!(
                one,
                earn::Error::SchemaDrift {
                    table: "schema_everything",
                    ..
                }
            ),
            "{one:?}"
        );
        // Two: both, in the order listed.
        db.drop_table::<Price>().await.unwrap();
        let both = db
            .check_schemas::<(Member, Price, Everything)>()
            .await
            .unwrap_err();
        let earn::Error::SchemasDrift { drifts } = &both else {
            panic!("expected several drifts, got {both:?}");
        };
        let tables: Vec<&str> = drifts
            .iter()
            .map(|drift| match drift {
                earn::Error::SchemaDrift { table, .. } => *table,
                other => panic!("not a drift: {other:?}"),
            })
            .collect();
        assert_eq!(tables, ["schema_prices", "schema_everything"]);
        assert!(
            both.to_string().starts_with(
                "2 tables do not match their models: table `schema_prices` does not match Price"
            ),
            "{both}"
        );
    })
    .await;
}

/// Models declared by a `macro_rules!` that passes the table name on as a
/// `$table:literal` (wrapped in an invisible group).
macro_rules! lookup_model {
    ($name:ident, $table:literal) => {
        #[derive(Debug, Clone, PartialEq, Model)]
        #[model(table = $table)]
        struct $name {
            #[model(primary_key)]
            code: String,
            label: String,
        }
    };
}

lookup_model!(Colour, "schema_colours");

#[tokio::test]
async fn a_model_declared_by_a_macro_takes_its_table_name() {
    each_backend(|db| async move {
        fresh::<Colour>(&db).await;
        let mut red = Colour {
            code: "r".into(),
            label: "red".into(),
        };
        red.save(&db).await.unwrap();
        assert_eq!(Colour::find(&db, "r".into()).await.unwrap(), Some(red));
        db.check_schema::<Colour>().await.unwrap();
    })
    .await;
}
