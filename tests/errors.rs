//! Bad input is a clear error, never a panic, and loses nothing.

mod common;

use common::{backends, connect, each_backend, fresh};
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "errors_missing_table")]
struct Ghost {
    #[model(primary_key, auto)]
    id: Option<i64>,
}

#[derive(Debug, Clone, Model)]
#[model(table = "errors_kept")]
struct Kept {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[tokio::test]
async fn a_missing_table_names_the_table_and_operation() {
    each_backend(|db| async move {
        db.drop_table::<Ghost>().await.unwrap();
        let error = Ghost { id: None }.save(&db).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("database error on table `errors_missing_table` during insert: "),
            "{message}"
        );
        let source = std::error::Error::source(&error).unwrap();
        assert!(
            source.downcast_ref::<earn::sqlx::Error>().is_some(),
            "the driver error is reachable"
        );
        let error = Ghost::find(&db, 1).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("database error on table `errors_missing_table` during select: "),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_scheme_and_unreachable_server_are_errors() {
    let error = Db::connect("oracle://scott:tiger@db/orcl")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot use database URL `oracle://scott:***@db/orcl`: unknown scheme; expected `sqlite:`, `postgres:` or `mysql:`"
    );
    let error = Db::connect("postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=1")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("database error during connect: "),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn a_closed_pool_is_an_error_and_the_data_is_intact() {
    for (name, url) in backends() {
        let db = connect(name, &url).await;
        fresh::<Kept>(&db).await;
        let mut kept = Kept {
            id: None,
            name: "kept".into(),
        };
        kept.save(&db).await.unwrap();
        let other = connect(name, &url).await;
        match name {
            "sqlite" => db.as_sqlite().unwrap().close().await,
            "postgres" => db.as_postgres().unwrap().close().await,
            _ => db.as_mysql().unwrap().close().await,
        }
        let error = Kept {
            id: None,
            name: "lost?".into(),
        }
        .save(&db)
        .await
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("database error during acquire a connection: "),
            "{error}"
        );
        if name != "sqlite" {
            // A separate pool still sees exactly the committed row.
            let rows = Kept::all(&other).await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].name, "kept");
        }
    }
}

/// The model has a column the table lacks.
#[derive(Debug, Clone, Model)]
#[model(table = "errors_people")]
struct Person {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    nickname: String,
}

/// The same table without `nickname`, and `name` nullable.
#[derive(Debug, Clone, Model)]
#[model(table = "errors_people")]
struct OldPerson {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: Option<String>,
}

#[tokio::test]
async fn a_missing_column_or_a_null_in_a_plain_field_is_an_error_naming_table_and_column() {
    each_backend(|db| async move {
        fresh::<OldPerson>(&db).await;
        let mut old = OldPerson {
            id: None,
            name: Some("Ada".into()),
        };
        old.save(&db).await.unwrap();
        // SQLite used to read `"nickname"` as the string 'nickname'.
        let error = Person::find(&db, old.id.unwrap()).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("errors_people") && message.contains("nickname"),
            "{message}"
        );

        db.execute_unprepared("ALTER TABLE errors_people ADD COLUMN nickname TEXT")
            .await
            .unwrap();
        let mut unnamed = OldPerson {
            id: None,
            name: None,
        };
        unnamed.save(&db).await.unwrap();
        db.execute_unprepared("UPDATE errors_people SET nickname = 'x'")
            .await
            .unwrap();
        // SQLite used to read a NULL `String` as "".
        let error = Person::find(&db, unnamed.id.unwrap()).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("errors_people") && message.contains("`name`"),
            "{message}"
        );
        let found = Person::find(&db, old.id.unwrap()).await.unwrap().unwrap();
        assert_eq!((found.name.as_str(), found.nickname.as_str()), ("Ada", "x"));
    })
    .await;
}

/// A hook that writes another model in a transaction of its own.
#[derive(Debug, Clone, Model)]
#[model(table = "errors_orders")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    note: String,
}

#[hooks]
impl Order {
    #[after_create]
    async fn log_it(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        let mut entry = Kept {
            id: None,
            name: format!("order {:?}", self.id),
        };
        if self.note == "wrong" {
            entry.save(&DB.get().unwrap().clone()).await?;
        } else {
            entry.save_in(ctx.tx()).await?;
        }
        Ok(())
    }
}

static DB: std::sync::OnceLock<Db> = std::sync::OnceLock::new();

#[tokio::test]
async fn a_write_in_a_transaction_of_its_own_inside_a_hook_fails_at_once() {
    // On SQLite in memory this used to wait 30 s for the one connection,
    // and on PostgreSQL commit the entry on its own.
    let db = Db::connect("sqlite::memory:").await.unwrap();
    fresh::<Kept>(&db).await;
    fresh::<Order>(&db).await;
    DB.set(db.clone()).unwrap();
    let error = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Order {
            id: None,
            note: "wrong".into(),
        }
        .save(&db),
    )
    .await
    .expect("the save returns instead of waiting for a connection")
    .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            earn::Error::Hook(_) | earn::Error::WriteInsideHook { .. }
        ) && message.contains("save_in(ctx.tx())")
            && message.contains("Kept")
            && message.contains("Order"),
        "{message}"
    );
    assert_eq!(common::count::<Kept>(&db).await, 0);
    assert_eq!(common::count::<Order>(&db).await, 0);

    Order {
        id: None,
        note: "right".into(),
    }
    .save(&db)
    .await
    .unwrap();
    assert_eq!(common::count::<Kept>(&db).await, 1);
}

#[derive(Debug, Clone, Model)]
#[model(table = "errors_accounts")]
struct Account {
    #[model(primary_key)]
    handle: String,
    email: String,
}

#[tokio::test]
async fn unique_violations_are_typed_and_name_the_constraint() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let index = match db.dialect() {
            earn::Dialect::MySql => {
                "CREATE UNIQUE INDEX errors_accounts_email ON errors_accounts (email(100))"
            }
            _ => "CREATE UNIQUE INDEX errors_accounts_email ON errors_accounts (email)",
        };
        db.execute_unprepared(index).await.unwrap();
        let mut ada = Account {
            handle: "ada".into(),
            email: "ada@example.com".into(),
        };
        ada.insert(&db).await.unwrap();

        let mut twin = Account {
            handle: "twin".into(),
            email: "ada@example.com".into(),
        };
        let error = twin.insert(&db).await.unwrap_err();
        let earn::Error::UniqueViolation {
            model,
            table,
            constraint,
            operation,
            ..
        } = &error
        else {
            panic!("expected a unique violation, got {error:?}");
        };
        assert_eq!(
            (*model, *table, *operation),
            ("Account", "errors_accounts", "insert")
        );
        assert!(
            constraint.contains("email"),
            "names the index or column: {constraint}"
        );
        assert!(
            error.to_string().contains("already has this value"),
            "{error}"
        );

        // The same in a bulk write: nothing of it is kept.
        let mut batch = vec![
            Account {
                handle: "bob".into(),
                email: "bob@example.com".into(),
            },
            Account {
                handle: "ada".into(),
                email: "other@example.com".into(),
            },
        ];
        let error = Account::insert_many(&db, &mut batch).await.unwrap_err();
        assert!(
            matches!(error, earn::Error::UniqueViolation { .. }),
            "{error:?}"
        );
        assert_eq!(Account::query().count(&db).await.unwrap(), 1);
    })
    .await;
}
