//! `#[model(soft_delete)]`: `delete` marks the row (its hooks and event
//! run), reads leave marked rows out unless asked, `restore` brings one
//! back with its hooks and event, `force_delete` removes it; on every
//! database.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{each_backend, fresh, log, take_log};
use earn::prelude::*;
use earn::testing::Recorder;
use earn::{Error, Operation};

#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "soft_folders", has_many(Note, on_delete = "cascade"))]
struct Folder {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "soft_notes", events = "note")]
struct Note {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(belongs_to = Folder)]
    folder_id: i64,
    text: String,
    #[model(updated_at)]
    updated_at: Option<DateTime<Utc>>,
    #[model(soft_delete)]
    deleted_at: Option<DateTime<Utc>>,
}

#[hooks]
impl Note {
    #[before_delete]
    fn before_delete(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        log(format!(
            "before_delete:{}:soft={}:bulk={}",
            self.text,
            ctx.is_soft_delete(),
            ctx.is_bulk()
        ));
        if self.text == "pinned" {
            return Err(HookError::abort("pinned notes stay"));
        }
        Ok(())
    }

    #[after_delete]
    fn after_delete(&self, ctx: &mut HookContext<'_>) {
        log(format!(
            "after_delete:{}:marked={}:changed={}",
            self.text,
            self.deleted_at.is_some(),
            ctx.changed().join(",")
        ));
    }

    #[before_restore]
    fn before_restore(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        let was = ctx.previous::<Note>().and_then(|n| n.deleted_at).is_some();
        log(format!(
            "before_restore:{}:was_deleted={was}:now_deleted={}",
            self.text,
            self.deleted_at.is_some()
        ));
        if self.text == "expired" {
            return Err(HookError::abort("too old"));
        }
        Ok(())
    }

    #[after_restore]
    fn after_restore(&self) {
        log(format!("after_restore:{}", self.text));
    }

    #[after_commit(on = "restore")]
    fn restored_committed(&self) {
        log(format!("after_commit(restore):{}", self.text));
    }
}

fn note(folder_id: i64, text: &str) -> Note {
    Note {
        id: None,
        folder_id,
        text: text.into(),
        updated_at: None,
        deleted_at: None,
    }
}

async fn setup(db: Db) -> (Db, EventBus, Recorder, Folder) {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .build()
        .expect("bus");
    let recorder = Recorder::attach(&bus, "note.*").expect("recorder");
    let db = db.with_bus(bus.clone());
    // Children first: notes refer to folders.
    db.drop_table::<Note>().await.expect("drop notes");
    fresh::<Folder>(&db).await;
    db.create_table::<Note>().await.expect("create notes");
    let mut folder = Folder {
        id: None,
        name: "inbox".into(),
    };
    folder.save(&db).await.expect("folder");
    (db, bus, recorder, folder)
}

async fn settle(bus: &EventBus) {
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .expect("events handled");
}

/// How many rows the table holds, live or soft-deleted.
async fn every_row(db: &Db) -> u64 {
    Note::query()
        .with_deleted()
        .count(db)
        .await
        .expect("count with deleted")
}

async fn stored(db: &Db, id: i64) -> Option<Note> {
    Note::query()
        .with_deleted()
        .filter(Note::ID.eq(id))
        .first(db)
        .await
        .expect("read with deleted")
}

#[tokio::test]
async fn delete_marks_the_row_runs_the_delete_hooks_and_hides_it() {
    each_backend(|db| async move {
        let (db, bus, recorder, folder) = setup(db).await;
        let folder_id = folder.id.expect("saved");
        let mut draft = note(folder_id, "draft");
        draft.save(&db).await.expect("save");
        let id = draft.id.expect("saved");
        let mut kept = note(folder_id, "kept");
        kept.save(&db).await.expect("save");
        take_log();

        draft.delete(&db).await.expect("soft delete");
        assert_eq!(
            take_log(),
            [
                "before_delete:draft:soft=true:bulk=false",
                "after_delete:draft:marked=true:changed=updated_at,deleted_at"
            ]
        );
        // The row is still there, marked, and updated_at moved with it.
        let row = stored(&db, id).await.expect("the row stays");
        let deleted_at = row.deleted_at.expect("marked deleted");
        assert_eq!(row.updated_at, Some(deleted_at));
        // ... and every read leaves it out.
        assert_eq!(Note::find(&db, id).await.expect("find"), None);
        assert_eq!(Note::all(&db).await.expect("all"), [kept.clone()]);
        assert_eq!(Note::query().count(&db).await.expect("count"), 1);
        assert!(
            !Note::query()
                .filter(Note::TEXT.eq("draft"))
                .exists(&db)
                .await
                .expect("exists")
        );
        assert_eq!(folder.notes(&db).await.expect("relation"), [kept.clone()]);
        let trash = Note::query().only_deleted().all(&db).await.expect("trash");
        assert_eq!(trash, std::slice::from_ref(&row));
        assert_eq!(every_row(&db).await, 2);
        // The `deleted` event carries the marked row.
        settle(&bus).await;
        assert_eq!(
            recorder.names(),
            ["note.created", "note.created", "note.deleted"]
        );
        let payload: Note = recorder.events()[2].payload().expect("payload");
        assert_eq!(payload.deleted_at, Some(deleted_at));

        // Deleting it again finds no (live) row.
        let again = draft.delete(&db).await.expect_err("already deleted");
        assert!(matches!(again, Error::NotFound { .. }), "{again}");
    })
    .await;
}

#[tokio::test]
async fn a_vetoed_soft_delete_marks_nothing() {
    each_backend(|db| async move {
        let (db, _bus, _recorder, folder) = setup(db).await;
        let mut pinned = note(folder.id.expect("saved"), "pinned");
        pinned.save(&db).await.expect("save");
        let error = pinned.delete(&db).await.expect_err("vetoed");
        assert!(error.is_abort());
        let row = stored(&db, pinned.id.expect("saved")).await.expect("row");
        assert_eq!(row.deleted_at, None);
    })
    .await;
}

#[tokio::test]
async fn restore_brings_the_row_back_with_its_hooks_and_event() {
    each_backend(|db| async move {
        let (db, bus, recorder, folder) = setup(db).await;
        let mut n = note(folder.id.expect("saved"), "back");
        n.save(&db).await.expect("save");
        let id = n.id.expect("saved");
        n.delete(&db).await.expect("delete");
        let deleted = stored(&db, id).await.expect("row");
        take_log();

        let mut trashed = deleted.clone();
        trashed.restore(&db).await.expect("restore");
        assert_eq!(
            take_log(),
            [
                "before_restore:back:was_deleted=true:now_deleted=false",
                "after_restore:back",
                "after_commit(restore):back"
            ]
        );
        assert_eq!(trashed.deleted_at, None);
        assert!(trashed.updated_at >= deleted.updated_at);
        // The model is the row as stored.
        assert_eq!(
            Note::find(&db, id).await.expect("find"),
            Some(trashed.clone())
        );

        settle(&bus).await;
        assert_eq!(
            recorder.names().last().map(String::as_str),
            Some("note.restored")
        );
        let changes: serde_json::Value = serde_json::from_str(
            recorder
                .events()
                .last()
                .expect("event")
                .meta(earn::CHANGES_KEY)
                .expect("changes"),
        )
        .expect("json");
        assert!(changes["deleted_at"]["old"].is_string(), "{changes}");
        assert!(changes["deleted_at"]["new"].is_null(), "{changes}");

        // A live row: nothing to do, no hooks.
        trashed.restore(&db).await.expect("restore a live row");
        assert!(take_log().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_vetoed_restore_leaves_the_row_deleted_and_the_model_as_it_was() {
    each_backend(|db| async move {
        let (db, _bus, _recorder, folder) = setup(db).await;
        let mut n = note(folder.id.expect("saved"), "expired");
        n.save(&db).await.expect("save");
        let id = n.id.expect("saved");
        n.delete(&db).await.expect("delete");
        let mut trashed = stored(&db, id).await.expect("row");
        let before = trashed.clone();
        let error = trashed.restore(&db).await.expect_err("vetoed");
        assert!(error.is_abort());
        assert_eq!(trashed, before);
        assert_eq!(stored(&db, id).await, Some(before));

        let mut missing = note(1, "missing");
        missing.id = Some(id + 1000);
        let error = missing.restore(&db).await.expect_err("no row");
        assert!(
            matches!(
                error,
                Error::NotFound {
                    operation: Operation::Restore,
                    ..
                }
            ),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn force_delete_removes_the_row_deleted_or_not() {
    each_backend(|db| async move {
        let (db, _bus, _recorder, folder) = setup(db).await;
        let folder_id = folder.id.expect("saved");
        let mut live = note(folder_id, "live");
        let mut trashed = note(folder_id, "trashed");
        live.save(&db).await.expect("save");
        trashed.save(&db).await.expect("save");
        trashed.delete(&db).await.expect("soft delete");
        take_log();

        live.force_delete(&db).await.expect("force delete");
        trashed
            .force_delete(&db)
            .await
            .expect("force delete a trashed row");
        assert_eq!(
            take_log(),
            [
                "before_delete:live:soft=false:bulk=false",
                "after_delete:live:marked=false:changed=",
                "before_delete:trashed:soft=false:bulk=false",
                "after_delete:trashed:marked=false:changed="
            ]
        );
        assert_eq!(every_row(&db).await, 0);
    })
    .await;
}

#[tokio::test]
async fn bulk_deletes_mark_live_rows_and_force_delete_all_empties_the_trash() {
    each_backend(|db| async move {
        let (db, _bus, _recorder, folder) = setup(db).await;
        let folder_id = folder.id.expect("saved");
        let mut notes: Vec<Note> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| note(folder_id, t))
            .collect();
        Note::insert_many(&db, &mut notes).await.expect("insert");
        take_log();

        let marked = Note::query()
            .filter(Note::TEXT.is_in(["a", "b"]))
            .delete_all(&db)
            .await
            .expect("soft delete_all");
        assert_eq!(marked, 2);
        assert_eq!(
            take_log(),
            [
                "before_delete:a:soft=true:bulk=true",
                "before_delete:b:soft=true:bulk=true",
                "after_delete:a:marked=true:changed=updated_at,deleted_at",
                "after_delete:b:marked=true:changed=updated_at,deleted_at"
            ]
        );
        // Already deleted rows are not marked again, even when the query
        // asks to see them.
        let again = Note::query()
            .with_deleted()
            .filter(Note::TEXT.is_in(["a", "c"]))
            .delete_all(&db)
            .await
            .expect("soft delete_all");
        assert_eq!(again, 1);
        take_log();
        // update_all leaves deleted rows alone.
        let updated = Note::query()
            .update_all(&db, [Note::TEXT.set("x")])
            .await
            .expect("update_all");
        assert_eq!(updated, 1);
        let quiet = Note::query()
            .delete_all_quietly(&db)
            .await
            .expect("quietly");
        assert_eq!(quiet, 1);
        assert!(take_log().is_empty());
        assert_eq!(Note::query().count(&db).await.expect("count"), 0);
        assert_eq!(
            Note::query()
                .only_deleted()
                .count(&db)
                .await
                .expect("trash"),
            4
        );
        let purged = Note::query()
            .only_deleted()
            .force_delete_all(&db)
            .await
            .expect("empty the trash");
        assert_eq!(purged, 4);
        assert_eq!(every_row(&db).await, 0);
    })
    .await;
}

#[tokio::test]
async fn removing_a_parent_removes_its_soft_deleted_children_too() {
    each_backend(|db| async move {
        let (db, _bus, _recorder, folder) = setup(db).await;
        let folder_id = folder.id.expect("saved");
        let mut live = note(folder_id, "live");
        let mut trashed = note(folder_id, "trashed");
        live.save(&db).await.expect("save");
        trashed.save(&db).await.expect("save");
        trashed.delete(&db).await.expect("soft delete");
        take_log();
        // The cascade reaches the trashed child: it still refers to the
        // folder, and a soft delete would leave it pointing at nothing.
        folder.delete(&db).await.expect("delete the folder");
        let log = take_log();
        assert!(
            log.contains(&"before_delete:trashed:soft=false:bulk=true".to_owned()),
            "{log:?}"
        );
        assert_eq!(every_row(&db).await, 0);
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "soft_tickets")]
struct Ticket {
    #[model(primary_key, auto)]
    id: Option<i64>,
    #[model(version)]
    version: i64,
    title: String,
    #[model(soft_delete)]
    deleted_at: Option<DateTime<Utc>>,
}

#[tokio::test]
async fn a_soft_deleted_row_is_not_brought_back_by_a_save_or_a_bulk_write() {
    each_backend(|db| async move {
        let (db, _bus, _recorder, folder) = setup(db).await;
        let folder_id = folder.id.expect("saved");
        let mut draft = note(folder_id, "draft");
        draft.save(&db).await.expect("save");
        let id = draft.id.expect("saved");
        draft.delete(&db).await.expect("soft delete");

        // The caller's copy still says live: saving it must not undelete.
        draft.text = "edited".into();
        let error = draft.save(&db).await.expect_err("the row is trashed");
        assert!(matches!(error, Error::SoftDeleted { .. }), "{error}");
        let error = draft.save_quietly(&db).await.expect_err("quietly too");
        assert!(matches!(error, Error::SoftDeleted { .. }), "{error}");
        let row = stored(&db, id).await.expect("row");
        assert!(row.deleted_at.is_some());
        assert_eq!(row.text, "draft");

        // A soft delete of the trash deletes nothing; live rows stay live.
        let mut live = note(folder_id, "live");
        live.save(&db).await.expect("save");
        take_log();
        let deleted = Note::query()
            .only_deleted()
            .delete_all(&db)
            .await
            .expect("delete_all");
        assert_eq!(deleted, 0);
        let quiet = Note::query()
            .only_deleted()
            .delete_all_quietly(&db)
            .await
            .expect("delete_all_quietly");
        assert_eq!(quiet, 0);
        assert!(take_log().is_empty());
        assert_eq!(Note::query().count(&db).await.expect("count"), 1);

        // The mark is delete's and restore's to write.
        let error = Note::query()
            .update_all(&db, [Note::DELETED_AT.set(None)])
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("restore"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_stale_versioned_model_is_not_soft_deleted() {
    each_backend(|db| async move {
        fresh::<Ticket>(&db).await;
        let mut ticket = Ticket {
            id: None,
            version: 0,
            title: "a".into(),
            deleted_at: None,
        };
        ticket.save(&db).await.expect("save");
        let stale = ticket.clone();
        ticket.title = "b".into();
        ticket.save(&db).await.expect("update");
        let error = stale.delete(&db).await.expect_err("stale");
        assert!(matches!(error, Error::Stale { .. }), "{error}");
        ticket
            .delete(&db)
            .await
            .expect("the current version deletes");
        let trashed = Ticket::query()
            .only_deleted()
            .one(&db)
            .await
            .expect("trashed");
        assert_eq!(trashed.version, ticket.version + 1);
    })
    .await;
}

#[test]
fn soft_delete_is_declared_in_the_model_info() {
    let info = <Note as earn::__private::Entity>::INFO;
    assert_eq!(
        info.soft_delete.map(|i| info.columns[i].name),
        Some("deleted_at")
    );
}
