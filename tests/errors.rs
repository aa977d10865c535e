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
