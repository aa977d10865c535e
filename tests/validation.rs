//! Validation errors collect: every field at fault with every message,
//! across the hooks of a phase, and through a nested write, so an API can
//! answer 422 with all of them.

mod common;

use common::{count, each_backend, fresh, log, take_log};
use earn::prelude::*;
use earn::{FieldErrors, HookPhase};

#[derive(Debug, Clone, Model)]
#[model(table = "validation_members")]
struct Member {
    #[model(primary_key, auto)]
    id: Option<i64>,
    team_id: i64,
    email: String,
    name: String,
}

#[hooks]
impl Member {
    #[before_save]
    fn email_valid(&self, ctx: &mut HookContext<'_>) {
        if !self.email.contains('@') {
            ctx.invalid("email", "must contain '@'");
        }
        if self.email.len() > 20 {
            ctx.invalid("email", "must be at most 20 characters");
        }
    }

    #[before_save]
    fn name_present(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        if self.name.is_empty() {
            ctx.invalid("name", "must not be empty");
        }
        // A hook that returns its own errors adds them to those recorded.
        if self.name == "root" {
            return FieldErrors::from_iter([("name", "is reserved")]).into_result();
        }
        Ok(())
    }

    #[before_create]
    fn never_reached_when_invalid(&self) {
        log("before_create");
    }
}

#[derive(Debug, Clone, Model)]
#[model(table = "validation_teams")]
struct Team {
    #[model(primary_key, auto)]
    id: Option<i64>,
    title: String,
    owner_email: String,
}

#[hooks]
impl Team {
    /// A nested write: the owner becomes the team's first member.
    #[after_create]
    async fn add_owner(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        let mut owner = Member {
            id: None,
            team_id: self.id.expect("created"),
            email: self.owner_email.clone(),
            name: "owner".into(),
        };
        owner.save_in(ctx.tx()).await?;
        Ok(())
    }
}

fn member(email: &str, name: &str) -> Member {
    Member {
        id: None,
        team_id: 1,
        email: email.into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn every_error_of_every_hook_of_the_phase_is_returned() {
    each_backend(|db| async move {
        fresh::<Member>(&db).await;
        let mut m = member("a-very-long-address-without-at", "");
        let error = m.save(&db).await.expect_err("invalid");
        let errors = error.field_errors().expect("a validation error");
        assert_eq!(
            errors.get("email"),
            ["must contain '@'", "must be at most 20 characters"]
        );
        assert_eq!(errors.get("name"), ["must not be empty"]);
        assert_eq!(errors.len(), 2);
        assert!(error.is_invalid());
        assert!(!error.is_abort());
        // Named after the first hook that reported, in its phase.
        let failure = error.as_hook_failure().expect("a hook failure");
        assert_eq!(
            (failure.hook, failure.phase),
            ("email_valid", HookPhase::BeforeSave)
        );
        let message = error.to_string();
        assert!(
            message.contains(
                "email: must contain '@', must be at most 20 characters; name: must not be empty"
            ),
            "{message}"
        );
        // The phase's hooks all ran; the write stopped before the next phase.
        assert!(take_log().is_empty());
        assert_eq!(m.id, None);
        assert_eq!(count::<Member>(&db).await, 0);
    })
    .await;
}

#[tokio::test]
async fn recorded_errors_and_a_returned_error_are_merged() {
    each_backend(|db| async move {
        fresh::<Member>(&db).await;
        let mut m = member("nobody", "root");
        let error = m.save(&db).await.expect_err("invalid");
        let errors = error.field_errors().expect("a validation error");
        assert_eq!(errors.get("email"), ["must contain '@'"]);
        assert_eq!(errors.get("name"), ["is reserved"]);
        assert_eq!(error.as_hook_failure().expect("hook").hook, "name_present");
        assert_eq!(count::<Member>(&db).await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_valid_model_is_saved_and_an_update_is_validated_too() {
    each_backend(|db| async move {
        fresh::<Member>(&db).await;
        let mut m = member("ann@example.com", "Ann");
        m.save(&db).await.expect("valid");
        assert_eq!(take_log(), ["before_create"]);
        m.name.clear();
        let error = m.save(&db).await.expect_err("invalid update");
        assert_eq!(
            error.field_errors().expect("validation").get("name"),
            ["must not be empty"]
        );
        let stored = Member::find(&db, m.id.expect("saved")).await.expect("find");
        assert_eq!(stored.expect("row").name, "Ann");
    })
    .await;
}

#[tokio::test]
async fn a_nested_write_keeps_its_field_errors() {
    each_backend(|db| async move {
        fresh::<Team>(&db).await;
        fresh::<Member>(&db).await;
        let mut team = Team {
            id: None,
            title: "core".into(),
            owner_email: "no-at-sign".into(),
        };
        let error = team.save(&db).await.expect_err("the owner is invalid");
        // The team's own hook failed (with the member's error inside) ...
        let failure = error.as_hook_failure().expect("a hook failure");
        assert_eq!((failure.model, failure.hook), ("Team", "add_owner"));
        // ... and the member's field errors are still there to answer 422.
        let errors = error.field_errors().expect("the nested field errors");
        assert_eq!(errors.get("email"), ["must contain '@'"]);
        assert!(error.is_invalid());
        assert_eq!(team.id, None);
        assert_eq!(count::<Team>(&db).await, 0);
        assert_eq!(count::<Member>(&db).await, 0);
    })
    .await;
}

#[tokio::test]
async fn one_invalid_row_fails_a_bulk_insert_with_its_errors() {
    each_backend(|db| async move {
        fresh::<Member>(&db).await;
        let mut members = vec![member("a@x.io", "A"), member("b-at-x.io", "B")];
        let error = Member::insert_many(&db, &mut members)
            .await
            .expect_err("one row is invalid");
        assert_eq!(
            error.field_errors().expect("validation").get("email"),
            ["must contain '@'"]
        );
        assert_eq!(count::<Member>(&db).await, 0);
        assert!(members.iter().all(|m| m.id.is_none()));
    })
    .await;
}

#[test]
fn other_failures_have_no_field_errors() {
    let abort = earn::Error::hook(
        "Member",
        HookPhase::BeforeSave,
        "h",
        HookError::abort("closed"),
    );
    assert!(abort.field_errors().is_none());
    let failed = earn::Error::hook("Member", HookPhase::BeforeSave, "h", HookError::msg("io"));
    assert!(!failed.is_invalid());
}

#[test]
fn field_errors_serialize_as_an_object_of_lists() {
    let mut errors = FieldErrors::new();
    errors
        .add("email", "must contain '@'")
        .add("name", "must not be empty");
    errors.add("email", "is taken");
    assert_eq!(
        serde_json::to_value(&errors).expect("serialize"),
        serde_json::json!({
            "email": ["must contain '@'", "is taken"],
            "name": ["must not be empty"],
        })
    );
}
