//! A before hook halts the write; an after hook error rolls it back and
//! restores the key; abort is told apart from failure.

mod common;

use common::{count, each_backend, fresh, log, take_log};
use earn::HookPhase;
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "halting_accounts")]
struct Account {
    #[model(primary_key, auto)]
    id: Option<i64>,
    owner: String,
    balance: i64,
}

#[derive(Debug)]
struct Overdrawn(i64);

impl std::fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "balance {} is below zero", self.0)
    }
}

impl std::error::Error for Overdrawn {}

#[hooks]
impl Account {
    #[before_save]
    fn check_owner(&self) -> Result<(), HookError> {
        if self.owner.is_empty() {
            return Err(HookError::invalid("owner", "must not be empty"));
        }
        if self.owner == "frozen" {
            return Err(HookError::abort("the account is frozen"));
        }
        Ok(())
    }

    #[before_create]
    async fn no_negative_opening(&self) -> Result<(), Overdrawn> {
        if self.balance < 0 {
            Err(Overdrawn(self.balance))
        } else {
            Ok(())
        }
    }

    #[after_save]
    fn after_save_fails_for_mallory(&self) -> Result<(), HookError> {
        log("after_save");
        if self.owner == "mallory" {
            return Err(HookError::msg("audit refused mallory"));
        }
        Ok(())
    }

    #[before_delete]
    fn keep_the_bank(&self) -> Result<(), HookError> {
        if self.owner == "bank" {
            Err(HookError::abort("the bank account is permanent"))
        } else {
            Ok(())
        }
    }

    #[after_rollback]
    fn rolled_back(&self) {
        log(format!("after_rollback id={:?}", self.id));
    }

    #[after_commit]
    fn committed(&self) {
        log("after_commit");
    }
}

fn account(owner: &str, balance: i64) -> Account {
    Account {
        id: None,
        owner: owner.into(),
        balance,
    }
}

#[tokio::test]
async fn a_failing_before_hook_writes_nothing_and_names_model_phase_hook_and_reason() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let mut empty = account("", 10);
        let error = empty.save(&db).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "Account::check_owner (before_save) failed: owner: must not be empty"
        );
        assert!(!error.is_abort());
        let failure = error.as_hook_failure().unwrap();
        assert_eq!(
            (failure.model, failure.hook, failure.phase),
            ("Account", "check_owner", HookPhase::BeforeSave)
        );

        let error = account("eve", -5).save(&db).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "Account::no_negative_opening (before_create) failed: balance -5 is below zero"
        );
        assert_eq!(
            std::error::Error::source(&error).unwrap().to_string(),
            "balance -5 is below zero"
        );

        assert_eq!(count::<Account>(&db).await, 0);
        assert_eq!(empty.id, None);
        // The write rolled back, so after_rollback ran; after_save never did.
        assert_eq!(
            take_log(),
            ["after_rollback id=None", "after_rollback id=None"]
        );
    })
    .await;
}

#[tokio::test]
async fn abort_is_a_deliberate_halt_distinct_from_failure() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let error = account("frozen", 1).save(&db).await.unwrap_err();
        assert!(error.is_abort());
        assert_eq!(
            error.to_string(),
            "Account::check_owner (before_save) aborted: the account is frozen"
        );

        let mut bank = account("bank", 100);
        bank.save(&db).await.unwrap();
        let error = bank.delete(&db).await.unwrap_err();
        assert!(error.is_abort());
        assert_eq!(
            error.to_string(),
            "Account::keep_the_bank (before_delete) aborted: the bank account is permanent"
        );
        assert_eq!(count::<Account>(&db).await, 1, "the row is still there");
    })
    .await;
}

#[tokio::test]
async fn an_after_hook_error_rolls_the_insert_back_and_restores_the_key() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let mut mallory = account("mallory", 5);
        let error = mallory.save(&db).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "Account::after_save_fails_for_mallory (after_save) failed: audit refused mallory"
        );
        assert_eq!(
            mallory.id, None,
            "key restored to its value before the call"
        );
        assert_eq!(count::<Account>(&db).await, 0, "the INSERT was rolled back");
        // after_rollback sees the model as it was when the write failed.
        assert_eq!(take_log(), ["after_save", "after_rollback id=None"]);

        // An update that fails after the write leaves the old row.
        let mut alice = account("alice", 5);
        alice.save(&db).await.unwrap();
        let id = alice.id;
        take_log();
        alice.owner = "mallory".into();
        alice.save(&db).await.unwrap_err();
        assert_eq!(alice.id, id, "a persisted key is kept");
        let stored = Account::find(&db, id.unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.owner, "alice");
        assert_eq!(
            take_log(),
            ["after_save", format!("after_rollback id={id:?}").as_str()]
        );
    })
    .await;
}
