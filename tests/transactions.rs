//! after_commit / after_rollback wait for the outermost transaction, with
//! savepoints, caller transactions, drops, and failing outcome hooks.

mod common;

use common::{count, each_backend, fresh, log, take_log};
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "tx_notes")]
struct Note {
    #[model(primary_key, auto)]
    id: Option<i64>,
    text: String,
}

#[hooks]
impl Note {
    #[before_save]
    fn veto(&self) -> Result<(), HookError> {
        if self.text == "veto" {
            return Err(HookError::abort("vetoed"));
        }
        Ok(())
    }

    #[after_save]
    fn saved(&self) -> Result<(), HookError> {
        if self.text == "fail-after" {
            return Err(HookError::msg("after_save refused"));
        }
        Ok(())
    }

    #[after_commit]
    fn committed(&self) {
        log(format!("commit {}", self.text));
    }

    #[after_commit(on = "create")]
    async fn created_commit(&self) {
        log(format!("create-commit {}", self.text));
    }

    #[after_commit(priority = -1)]
    fn fails_after_commit(&self) -> Result<(), HookError> {
        if self.text == "boom" {
            return Err(HookError::msg("mail server down"));
        }
        Ok(())
    }

    #[after_commit(priority = -2)]
    fn panics_after_commit(&self) {
        if self.text == "panic" {
            panic!("outcome hook panicked");
        }
    }

    #[after_commit(priority = -3)]
    fn runs_last(&self) {
        log(format!("last {}", self.text));
    }

    #[after_rollback]
    fn rolled_back(&self) {
        log(format!("rollback {}", self.text));
    }
}

/// The texts of every stored note, by id.
async fn texts(db: &Db) -> Vec<String> {
    Note::all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.text)
        .collect()
}

fn note(text: &str) -> Note {
    Note {
        id: None,
        text: text.into(),
    }
}

#[tokio::test]
async fn after_commit_waits_for_the_callers_commit() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        let mut tx = db.begin().await.unwrap();
        note("a").save_in(&mut tx).await.unwrap();
        note("b").save_in(&mut tx).await.unwrap();
        assert!(take_log().is_empty(), "nothing before commit");
        tx.commit().await.unwrap();
        assert_eq!(
            take_log(),
            [
                "commit a",
                "create-commit a",
                "last a",
                "commit b",
                "create-commit b",
                "last b"
            ]
        );
        assert_eq!(count::<Note>(&db).await, 2);
    })
    .await;
}

#[tokio::test]
async fn rollback_and_drop_run_after_rollback_and_never_after_commit() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        let mut tx = db.begin().await.unwrap();
        note("r").save_in(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(take_log(), ["rollback r"]);

        {
            let mut tx = db.begin().await.unwrap();
            note("d").save_in(&mut tx).await.unwrap();
            // dropped without commit
        }
        // The drop spawns the after_rollback hooks on the runtime.
        for _ in 0..100 {
            if !common::take_log_peek().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(take_log(), ["rollback d"]);
        assert_eq!(count::<Note>(&db).await, 0);
    })
    .await;
}

#[tokio::test]
async fn savepoints_hand_their_hooks_to_the_parent_or_discard_them() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        let mut tx = db.begin().await.unwrap();
        note("outer").save_in(&mut tx).await.unwrap();
        {
            let mut sp = tx.begin().await.unwrap();
            note("released").save_in(&mut sp).await.unwrap();
            sp.commit().await.unwrap();
        }
        {
            let mut sp = tx.begin().await.unwrap();
            note("undone").save_in(&mut sp).await.unwrap();
            {
                let mut inner = sp.begin().await.unwrap();
                note("nested").save_in(&mut inner).await.unwrap();
                inner.commit().await.unwrap();
            }
            sp.rollback().await.unwrap();
        }
        // A savepoint rollback runs the after_rollback hooks of what it undid, at once.
        assert_eq!(take_log(), ["rollback undone", "rollback nested"]);
        tx.commit().await.unwrap();
        let log = take_log();
        assert_eq!(
            log.iter()
                .filter(|l| l.starts_with("commit "))
                .collect::<Vec<_>>(),
            ["commit outer", "commit released"]
        );
        assert_eq!(texts(&db).await, ["outer", "released"]);
    })
    .await;
}

#[tokio::test]
async fn every_outcome_hook_runs_and_their_failures_never_fail_the_save() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        let mut boom = note("boom");
        boom.save(&db)
            .await
            .expect("a failing after_commit hook does not fail a committed save");
        let mut panicking = note("panic");
        panicking
            .save(&db)
            .await
            .expect("a panicking after_commit hook does not fail a committed save");
        assert_eq!(
            take_log(),
            [
                "commit boom",
                "create-commit boom",
                "last boom",
                "commit panic",
                "create-commit panic",
                "last panic"
            ]
        );
        assert_eq!(count::<Note>(&db).await, 2);
        // `on = "create"` filters the update.
        boom.text = "boom2".into();
        boom.save(&db).await.unwrap();
        assert_eq!(take_log(), ["commit boom2", "last boom2"]);
    })
    .await;
}

#[tokio::test]
async fn a_failed_write_in_a_caller_transaction_blocks_its_commit() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        let mut tx = db.begin().await.unwrap();
        note("kept?").save_in(&mut tx).await.unwrap();
        let mut bad = note("fail-after");
        bad.save_in(&mut tx).await.unwrap_err();
        assert_eq!(bad.id, None);
        let error = note("later").save_in(&mut tx).await.unwrap_err();
        assert!(
            matches!(error, earn::Error::TransactionAborted { .. }),
            "{error}"
        );
        let error = tx.commit().await.unwrap_err();
        assert!(error.to_string().contains("after_save refused"), "{error}");
        assert_eq!(
            count::<Note>(&db).await,
            0,
            "nothing of the transaction was committed"
        );
        let log = take_log();
        assert!(
            log.contains(&"rollback kept?".to_owned())
                && log.contains(&"rollback fail-after".to_owned()),
            "{log:?}"
        );
        assert!(!log.iter().any(|l| l.starts_with("commit")), "{log:?}");
    })
    .await;
}

#[tokio::test]
async fn a_savepoint_recovers_from_a_failed_write() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        let mut tx = db.begin().await.unwrap();
        note("first").save_in(&mut tx).await.unwrap();
        {
            let mut sp = tx.begin().await.unwrap();
            note("fail-after").save_in(&mut sp).await.unwrap_err();
            sp.rollback().await.unwrap();
        }
        note("second").save_in(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(texts(&db).await, ["first", "second"]);
    })
    .await;
}

#[tokio::test]
async fn a_validation_failure_before_any_write_leaves_the_transaction_usable() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        fresh::<Guarded>(&db).await;
        let mut tx = db.begin().await.unwrap();
        Guarded {
            id: None,
            ok: false,
        }
        .save_in(&mut tx)
        .await
        .unwrap_err();
        note("after").save_in(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count::<Note>(&db).await, 1);
        assert_eq!(count::<Guarded>(&db).await, 0);
    })
    .await;
}

#[derive(Debug, Clone, Model)]
#[model(table = "tx_guarded")]
struct Guarded {
    #[model(primary_key, auto)]
    id: Option<i64>,
    ok: bool,
}

#[hooks]
impl Guarded {
    #[before_save]
    fn must_be_ok(&self) -> Result<(), HookError> {
        if self.ok {
            Ok(())
        } else {
            Err(HookError::invalid("ok", "must be true"))
        }
    }
}

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "tx_accounts", events = "account")]
struct Account {
    #[model(primary_key, auto)]
    id: Option<i64>,
    owner: String,
}

#[hooks]
impl Account {
    #[after_create]
    fn audit(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        ctx.raise(Event::new("account.audit", &self.owner)?)?;
        Ok(())
    }

    #[after_commit]
    async fn done(&self) {
        // Time for a worker to handle an event published too early.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log(format!("after_commit:done:{}", self.owner));
    }
}

/// A bus whose one worker logs every event it handles, in order.
fn logging_bus() -> EventBus {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .build()
        .unwrap();
    bus.subscribe_sync("account.*", 0, |event: &Event| {
        let owner: String = match event.payload::<Account>() {
            Ok(account) => account.owner,
            Err(_) => event.payload().unwrap(),
        };
        log(format!("event:{}:{owner}", event.name()));
    })
    .unwrap();
    bus
}

#[tokio::test]
async fn after_commit_hooks_all_run_before_the_events_in_the_order_raised() {
    each_backend(|db| async move {
        let bus = logging_bus();
        let db = db.with_bus(bus.clone());
        fresh::<Account>(&db).await;
        Account {
            id: None,
            owner: "solo".into(),
        }
        .save(&db)
        .await
        .unwrap();
        bus.wait_idle().await;
        assert_eq!(
            take_log(),
            [
                "after_commit:done:solo",
                "event:account.audit:solo",
                "event:account.created:solo"
            ]
        );

        let mut tx = db.begin().await.unwrap();
        for owner in ["ann", "bob"] {
            Account {
                id: None,
                owner: owner.into(),
            }
            .save_in(&mut tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        bus.wait_idle().await;
        assert_eq!(
            take_log(),
            [
                "after_commit:done:ann",
                "after_commit:done:bob",
                "event:account.audit:ann",
                "event:account.created:ann",
                "event:account.audit:bob",
                "event:account.created:bob"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_write_in_a_transaction_that_commits_runs_its_after_rollback_hooks() {
    each_backend(|db| async move {
        fresh::<Note>(&db).await;
        let mut tx = db.begin().await.unwrap();
        note("kept").save_in(&mut tx).await.unwrap();
        let vetoed = note("veto").save_in(&mut tx).await.unwrap_err();
        assert!(vetoed.is_abort(), "{vetoed}");
        {
            let mut sp = tx.begin().await.unwrap();
            note("dropped").save_in(&mut sp).await.unwrap();
            // dropped: rolled back; its after_rollback waits for the end
        }
        assert!(take_log().is_empty());
        tx.commit().await.unwrap();
        // Every write ends with exactly one outcome: after_commit for what
        // was committed, after_rollback for the vetoed write and for the
        // dropped savepoint's, when the transaction ends.
        assert_eq!(
            take_log(),
            [
                "commit kept",
                "create-commit kept",
                "last kept",
                "rollback veto",
                "rollback dropped"
            ]
        );
        assert_eq!(texts(&db).await, ["kept"]);
    })
    .await;
}

#[derive(Debug, Clone, Model)]
#[model(table = "tx_slow")]
struct Slow {
    #[model(primary_key, auto)]
    id: Option<i64>,
    wait_ms: u64,
}

#[hooks]
impl Slow {
    #[after_save]
    async fn take_time(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(self.wait_ms)).await;
    }
}

#[tokio::test]
async fn a_write_cancelled_half_way_stops_its_transaction_from_committing() {
    each_backend(|db| async move {
        fresh::<Slow>(&db).await;
        let mut tx = db.begin().await.unwrap();
        Slow {
            id: None,
            wait_ms: 0,
        }
        .save_in(&mut tx)
        .await
        .unwrap();
        // Cancelled after its INSERT, in its after_save hook.
        let mut slow = Slow {
            id: None,
            wait_ms: 60_000,
        };
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(100), slow.save_in(&mut tx))
                .await;
        assert!(cancelled.is_err(), "the save was still running");
        let error = tx.commit().await.unwrap_err();
        assert!(
            matches!(error, earn::Error::TransactionAborted { .. })
                && error.to_string().contains("cancelled"),
            "{error}"
        );
        assert_eq!(count::<Slow>(&db).await, 0, "nothing of it was committed");

        // In a savepoint rolled back, the rest commits.
        let mut tx = db.begin().await.unwrap();
        Slow {
            id: None,
            wait_ms: 0,
        }
        .save_in(&mut tx)
        .await
        .unwrap();
        {
            let mut sp = tx.begin().await.unwrap();
            let mut slow = Slow {
                id: None,
                wait_ms: 60_000,
            };
            let cancelled =
                tokio::time::timeout(std::time::Duration::from_millis(100), slow.save_in(&mut sp))
                    .await;
            assert!(cancelled.is_err());
            sp.rollback().await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(count::<Slow>(&db).await, 1);
    })
    .await;
}
