//! A hook that writes its own model again gets an error, not a loop.

mod common;

use common::{count, each_backend, fresh, log, take_log};
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "reentrant_counters")]
struct Counter {
    #[model(primary_key, auto)]
    id: Option<i64>,
    hits: i64,
}

#[hooks]
impl Counter {
    #[after_save]
    async fn save_again(&self, ctx: &mut HookContext<'_>) -> Result<(), earn::Error> {
        let mut again = self.clone();
        again.hits += 1;
        again.save_in(ctx.tx()).await
    }
}

#[tokio::test]
async fn saving_the_same_model_from_its_own_hook_is_an_error() {
    each_backend(|db| async move {
        fresh::<Counter>(&db).await;
        let mut counter = Counter { id: None, hits: 0 };
        let error = counter.save(&db).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("Counter::save_again (after_save) failed: "),
            "{message}"
        );
        assert!(
            message.contains("re-entrant update of Counter with key 1"),
            "{message}"
        );
        assert_eq!(counter.id, None);
        assert_eq!(count::<Counter>(&db).await, 0, "rolled back");
    })
    .await;
}

#[derive(Debug, Clone, Model)]
#[model(table = "reentrant_audit")]
struct Audit {
    #[model(primary_key, auto)]
    id: Option<i64>,
    what: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "reentrant_items")]
struct Item {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[hooks]
impl Item {
    /// Another model saved in the hook joins the write.
    #[after_save]
    async fn audit(&self, ctx: &mut HookContext<'_>) -> Result<(), earn::Error> {
        let mut audit = Audit {
            id: None,
            what: format!("saved {}", self.name),
        };
        audit.save_in(ctx.tx()).await?;
        if self.name == "refuse" {
            return Err(earn::Error::Url {
                url: String::new(),
                reason: "refused after the audit row".into(),
            });
        }
        Ok(())
    }

    #[after_commit]
    fn committed(&self) {
        log(format!("item {}", self.name));
    }
}

#[hooks]
impl Audit {
    #[after_commit]
    fn committed(&self) {
        log(format!("audit {}", self.what));
    }
}

#[tokio::test]
async fn writes_from_a_hook_join_the_transaction() {
    each_backend(|db| async move {
        fresh::<Item>(&db).await;
        fresh::<Audit>(&db).await;
        Item {
            id: None,
            name: "ok".into(),
        }
        .save(&db)
        .await
        .unwrap();
        assert_eq!(count::<Audit>(&db).await, 1);
        assert_eq!(take_log(), ["audit saved ok", "item ok"]);

        Item {
            id: None,
            name: "refuse".into(),
        }
        .save(&db)
        .await
        .unwrap_err();
        assert_eq!(count::<Item>(&db).await, 1);
        assert_eq!(
            count::<Audit>(&db).await,
            1,
            "the hook's own write rolled back with it"
        );
        assert!(take_log().is_empty());
    })
    .await;
}
