//! An `after_commit` hook sees what the whole transaction changed in its
//! row: every field changed by any write of it, from the row before the
//! transaction to the row after its last write; on every database.

mod common;

use common::{each_backend, fresh, log, take_log};
use earn::TransactionChanges;
use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tx_changes_accounts")]
struct Account {
    #[model(primary_key, auto)]
    id: Option<i64>,
    email: String,
    plan: String,
    visits: i64,
}

#[hooks]
impl Account {
    #[after_commit]
    fn committed(&self, changes: &TransactionChanges<Account>) {
        let before = changes
            .before()
            .map_or("-".to_owned(), |a| format!("{}/{}", a.email, a.plan));
        let after = changes.after();
        log(format!(
            "commit {} [{}] {before} -> {}/{} created={} deleted={}",
            self.email,
            changes.changed().join(","),
            after.email,
            after.plan,
            changes.was_created(),
            changes.was_deleted(),
        ));
    }
}

fn account(email: &str) -> Account {
    Account {
        id: None,
        email: email.into(),
        plan: "free".into(),
        visits: 0,
    }
}

#[tokio::test]
async fn every_field_changed_in_the_transaction_from_first_old_to_last_new_value() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let mut ada = account("a@x.io");
        ada.save(&db).await.expect("insert");
        // A write on its own: its own changes.
        assert_eq!(
            take_log(),
            ["commit a@x.io [id,email,plan,visits] - -> a@x.io/free created=true deleted=false"]
        );

        let mut tx = db.begin().await.expect("begin");
        ada.email = "b@x.io".into();
        ada.save_in(&mut tx).await.expect("update email");
        ada.plan = "pro".into();
        ada.save_in(&mut tx).await.expect("update plan");
        ada.email = "c@x.io".into();
        ada.save_in(&mut tx).await.expect("update email again");
        assert!(take_log().is_empty(), "nothing before the commit");
        tx.commit().await.expect("commit");
        // One call per write, each with the whole transaction's changes.
        let line = "[email,plan] a@x.io/free -> c@x.io/pro created=false deleted=false";
        assert_eq!(
            take_log(),
            [
                format!("commit b@x.io {line}"),
                format!("commit b@x.io {line}"),
                format!("commit c@x.io {line}"),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn writes_of_a_rolled_back_savepoint_are_not_changes() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let mut ada = account("a@x.io");
        ada.save(&db).await.expect("insert");
        take_log();

        let mut tx = db.begin().await.expect("begin");
        {
            let mut sp = tx.begin().await.expect("savepoint");
            let mut inner = ada.clone();
            inner.email = "undone@x.io".into();
            inner
                .save_in(&mut sp)
                .await
                .expect("update in the savepoint");
            sp.rollback().await.expect("roll the savepoint back");
        }
        take_log();
        ada.visits = 5;
        ada.save_in(&mut tx).await.expect("update visits");
        tx.commit().await.expect("commit");
        assert_eq!(
            take_log(),
            ["commit a@x.io [visits] a@x.io/free -> a@x.io/free created=false deleted=false"]
        );
    })
    .await;
}

#[tokio::test]
async fn bulk_and_single_writes_of_one_row_merge_and_a_delete_is_seen() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let mut ada = account("a@x.io");
        ada.save(&db).await.expect("insert");
        take_log();

        let mut tx = db.begin().await.expect("begin");
        Account::query()
            .filter(Account::ID.eq(ada.id.expect("saved")))
            .update_all_in(&mut tx, [Account::PLAN.set("team")])
            .await
            .expect("bulk update");
        let mut fresh_copy = Account::find_in(&mut tx, ada.id.expect("saved"))
            .await
            .expect("find")
            .expect("row");
        fresh_copy.delete_in(&mut tx).await.expect("delete");
        fresh_copy.email = "gone".into(); // not written: the delete is last
        tx.commit().await.expect("commit");
        let line = "[plan] a@x.io/free -> a@x.io/team created=false deleted=true";
        assert_eq!(
            take_log(),
            [
                format!("commit a@x.io {line}"),
                format!("commit a@x.io {line}")
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_row_created_in_the_transaction_has_no_before() {
    each_backend(|db| async move {
        fresh::<Account>(&db).await;
        let mut tx = db.begin().await.expect("begin");
        let mut bo = account("bo@x.io");
        bo.save_in(&mut tx).await.expect("insert");
        bo.plan = "pro".into();
        bo.save_in(&mut tx).await.expect("update");
        tx.commit().await.expect("commit");
        let line = "[id,email,plan,visits] - -> bo@x.io/pro created=true deleted=false";
        assert_eq!(
            take_log(),
            [
                format!("commit bo@x.io {line}"),
                format!("commit bo@x.io {line}")
            ]
        );
    })
    .await;
}
