//! Model events and `ctx.emit`: delivered after the commit, never for a
//! rollback, on every database.

mod common;

use std::time::Duration;

use common::{each_backend, fresh};
use earn::prelude::*;
use earn::testing::Recorder;

#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "events_members", events = "member")]
struct Member {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    level: i32,
}

#[hooks]
impl Member {
    #[after_save]
    fn raise(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        if self.name == "fail" {
            return Err(HookError::msg("refused"));
        }
        if self.level > 9 {
            ctx.raise(Event::new("member.promoted", &self.name)?)?;
        }
        Ok(())
    }
}

fn setup(db: Db) -> (Db, EventBus, Recorder) {
    // One worker: delivery in the order the events were raised.
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .build()
        .unwrap();
    let recorder = Recorder::attach(&bus, "member.**").unwrap();
    (db.with_bus(bus.clone()), bus, recorder)
}

async fn settle(bus: &EventBus) {
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .expect("events handled");
}

#[tokio::test]
async fn insert_update_and_delete_emit_after_commit_with_the_model_as_payload() {
    each_backend(|db| async move {
        let (db, bus, recorder) = setup(db);
        fresh::<Member>(&db).await;
        let mut ada = Member {
            id: None,
            name: "ada".into(),
            level: 1,
        };
        ada.save(&db).await.unwrap();
        ada.level = 10;
        ada.save(&db).await.unwrap();
        ada.delete(&db).await.unwrap();
        settle(&bus).await;
        // `ctx.emit` in after_save comes before the write's own event.
        assert_eq!(
            recorder.names(),
            [
                "member.created",
                "member.promoted",
                "member.updated",
                "member.deleted"
            ]
        );
        let events = recorder.events();
        assert_eq!(
            events[0].payload::<Member>().unwrap(),
            Member {
                level: 1,
                ..ada.clone()
            }
        );
        assert_eq!(events[0].source(), Some("Member"));
        assert_eq!(events[1].payload::<String>().unwrap(), "ada");
        let changes: serde_json::Value =
            serde_json::from_str(events[2].meta(earn::CHANGES_KEY).unwrap()).unwrap();
        assert_eq!(
            changes,
            serde_json::json!({ "level": { "old": 1, "new": 10 } })
        );
        assert_eq!(events[3].payload::<Member>().unwrap().id, ada.id);
    })
    .await;
}

#[tokio::test]
async fn nothing_is_delivered_for_a_rollback_or_a_failed_write() {
    each_backend(|db| async move {
        let (db, bus, recorder) = setup(db);
        fresh::<Member>(&db).await;
        Member {
            id: None,
            name: "fail".into(),
            level: 10,
        }
        .save(&db)
        .await
        .unwrap_err();

        let mut tx = db.begin().await.unwrap();
        Member {
            id: None,
            name: "rolled".into(),
            level: 10,
        }
        .save_in(&mut tx)
        .await
        .unwrap();
        tx.rollback().await.unwrap();

        let mut tx = db.begin().await.unwrap();
        Member {
            id: None,
            name: "kept".into(),
            level: 1,
        }
        .save_in(&mut tx)
        .await
        .unwrap();
        {
            let mut sp = tx.begin().await.unwrap();
            Member {
                id: None,
                name: "undone".into(),
                level: 10,
            }
            .save_in(&mut sp)
            .await
            .unwrap();
            sp.rollback().await.unwrap();
        }
        settle(&bus).await;
        assert!(
            recorder.events().is_empty(),
            "nothing before the commit: {:?}",
            recorder.names()
        );
        tx.commit().await.unwrap();
        settle(&bus).await;
        let events = recorder.events();
        assert_eq!(recorder.names(), ["member.created"]);
        assert_eq!(events[0].payload::<Member>().unwrap().name, "kept");
    })
    .await;
}
