//! A hook's own SQL on `ctx.tx()` joins the write: it commits and rolls
//! back with it.

mod common;

use common::{count, each_backend, fresh};
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "context_log")]
struct LogRow {
    #[model(primary_key, auto)]
    id: Option<i64>,
    line: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "context_jobs")]
struct Job {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[hooks]
impl Job {
    #[before_save]
    async fn log_sql(&self, ctx: &mut HookContext<'_>) -> Result<(), earn::Error> {
        // Raw SQL in the write's transaction (no user value in it).
        ctx.tx()
            .execute_unprepared("INSERT INTO context_log (line) VALUES ('job saved')")
            .await?;
        if self.name == "veto" {
            return Err(earn::Error::Url {
                url: String::new(),
                reason: "vetoed after logging".into(),
            });
        }
        Ok(())
    }

    #[after_save]
    fn fail_late(&self) -> Result<(), HookError> {
        if self.name == "late" {
            Err(HookError::msg("late failure"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_hooks_sql_commits_and_rolls_back_with_the_write() {
    each_backend(|db| async move {
        fresh::<LogRow>(&db).await;
        fresh::<Job>(&db).await;
        Job {
            id: None,
            name: "ok".into(),
        }
        .save(&db)
        .await
        .unwrap();
        assert_eq!(count::<LogRow>(&db).await, 1);

        Job {
            id: None,
            name: "late".into(),
        }
        .save(&db)
        .await
        .unwrap_err();
        Job {
            id: None,
            name: "veto".into(),
        }
        .save(&db)
        .await
        .unwrap_err();
        assert_eq!(
            count::<LogRow>(&db).await,
            1,
            "the log rows of failed writes rolled back"
        );
        assert_eq!(count::<Job>(&db).await, 1);

        // In a caller transaction, a before hook that ran SQL and then failed
        // leaves the transaction unable to commit: its SQL cannot be kept.
        let mut tx = db.begin().await.unwrap();
        Job {
            id: None,
            name: "veto".into(),
        }
        .save_in(&mut tx)
        .await
        .unwrap_err();
        let error = tx.commit().await.unwrap_err();
        assert!(
            matches!(error, earn::Error::TransactionAborted { .. }),
            "{error}"
        );
        assert_eq!(count::<LogRow>(&db).await, 1);
    })
    .await;
}
