//! Bulk writes keep the promise: `insert_many`, `update_all` and
//! `delete_all` run every row's hooks and raise every row's event, for
//! exactly the rows written, in one transaction; only the `_quietly` forms
//! skip them, and they say so.

mod common;

use common::{capture, each_backend, fresh, log, take_log};
use earn::prelude::*;
use earn::testing::Recorder;
use earn::{Dialect, Error, HookError};

#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "bulk_items", events = "item")]
struct Item {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
    price: i64,
    note: Option<String>,
}

#[hooks]
impl Item {
    #[before_save]
    fn before_save(&mut self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        log(format!(
            "before_save:{}:{}:{}",
            self.name,
            ctx.operation(),
            ctx.is_bulk()
        ));
        if self.name == "veto" {
            return Err(HookError::invalid("name", "vetoed"));
        }
        // A hook that changes more than the bulk changes asked for.
        if self.price == 999 {
            self.note = Some("expensive".into());
        }
        Ok(())
    }

    #[after_save]
    fn after_save(&self, ctx: &mut HookContext<'_>) {
        log(format!("after_save:{}:{}", self.name, ctx.operation()));
    }

    #[before_delete]
    fn before_delete(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        log(format!("before_delete:{}:{}", self.name, ctx.is_bulk()));
        if self.name == "keep" {
            return Err(HookError::abort("keep is kept"));
        }
        Ok(())
    }

    #[after_delete]
    fn after_delete(&self) {
        log(format!("after_delete:{}", self.name));
    }

    #[after_commit]
    fn after_commit(&self) {
        log(format!("after_commit:{}", self.name));
    }

    #[after_rollback]
    fn after_rollback(&self) {
        log(format!("after_rollback:{}", self.name));
    }
}

/// No `before_delete`: deletes with one `DELETE … RETURNING` where the
/// database has it.
#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "bulk_notes", events = "note")]
struct Note {
    #[model(primary_key, auto)]
    id: Option<i64>,
    body: String,
}

#[hooks]
impl Note {
    #[after_delete]
    fn after_delete(&self, ctx: &mut HookContext<'_>) {
        log(format!("after_delete:{}:{}", self.body, ctx.is_bulk()));
    }
}

/// No hooks, no events.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "bulk_plain")]
struct Plain {
    #[model(primary_key, auto)]
    id: Option<i64>,
    n: i64,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "bulk_versioned")]
struct Versioned {
    #[model(primary_key, auto)]
    id: Option<i64>,
    n: i64,
    #[model(version)]
    version: i32,
}

#[hooks]
impl Versioned {
    #[after_update]
    fn updated(&self) {
        log(format!("updated:{}:v{}", self.n, self.version));
    }
}

fn item(name: &str, price: i64) -> Item {
    Item {
        id: None,
        name: name.into(),
        price,
        note: None,
    }
}

fn statements<'a>(log: &'a str, verb: &str) -> Vec<&'a str> {
    let needle = format!("summary=\"{verb}");
    log.lines().filter(|line| line.contains(&needle)).collect()
}

async fn with_recorder(db: Db, pattern: &str) -> (Db, EventBus, Recorder) {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    let recorder = Recorder::attach(&bus, pattern).unwrap();
    (db.with_bus(bus.clone()), bus, recorder)
}

#[tokio::test]
async fn insert_many_runs_every_rows_hooks_around_one_insert() {
    each_backend(|db| async move {
        let (db, bus, recorder) = with_recorder(db, "item.*").await;
        fresh::<Item>(&db).await;
        let mut items = vec![item("a", 1), item("b", 2), item("c", 3)];
        let captured = capture();
        Item::insert_many(&db, &mut items).await.unwrap();
        let sql = captured.text();
        assert_eq!(
            statements(&sql, "INSERT").len(),
            1,
            "one multi-row INSERT: {sql}"
        );
        let ids: Vec<i64> = items.iter().map(|i| i.id.unwrap()).collect();
        let stored: Vec<i64> = Item::all(&db)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id.unwrap())
            .collect();
        assert_eq!(ids, stored, "every key read back, in order");
        assert_eq!(
            take_log(),
            [
                "before_save:a:create:true",
                "before_save:b:create:true",
                "before_save:c:create:true",
                "after_save:a:create",
                "after_save:b:create",
                "after_save:c:create",
                "after_commit:a",
                "after_commit:b",
                "after_commit:c",
            ]
        );
        bus.wait_idle().await;
        assert_eq!(recorder.names(), ["item.created"; 3]);
        let names: Vec<String> = recorder
            .events()
            .iter()
            .map(|e| e.payload::<Item>().unwrap().name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);

        // Thousands of rows go in as many statements as the parameter
        // limit requires.
        let mut many: Vec<Item> = (0..12_000).map(|i| item(&format!("n{i}"), i)).collect();
        Item::insert_many(&db, &mut many).await.unwrap();
        assert_eq!(Item::query().count(&db).await.unwrap(), 12_003);
        let last = Item::find(&db, many[11_999].id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.name, "n11999");
        take_log();
    })
    .await;
}

#[tokio::test]
async fn a_failed_insert_many_leaves_no_row_no_key_and_no_event() {
    each_backend(|db| async move {
        let (db, bus, recorder) = with_recorder(db, "item.*").await;
        fresh::<Item>(&db).await;
        let mut items = vec![item("a", 1), item("veto", 2), item("c", 3)];
        let error = Item::insert_many(&db, &mut items).await.unwrap_err();
        assert!(error.to_string().contains("vetoed"), "{error}");
        assert!(items.iter().all(|i| i.id.is_none()));
        assert_eq!(Item::query().count(&db).await.unwrap(), 0);
        let log = take_log();
        assert!(log.contains(&"after_rollback:a".to_owned()), "{log:?}");
        assert!(
            !log.iter().any(|l| l.starts_with("after_commit")),
            "{log:?}"
        );
        bus.wait_idle().await;
        assert!(recorder.names().is_empty());

        // An already saved model is refused before anything is written.
        let mut saved = item("s", 1);
        saved.save(&db).await.unwrap();
        let mut batch = vec![item("x", 1), saved];
        let error = Item::insert_many(&db, &mut batch).await.unwrap_err();
        assert!(matches!(error, Error::AlreadyPersisted { .. }), "{error}");
        take_log();
    })
    .await;
}

#[tokio::test]
async fn update_all_runs_hooks_and_events_for_exactly_the_rows_it_changes() {
    each_backend(|db| async move {
        let (db, bus, recorder) = with_recorder(db, "item.updated").await;
        fresh::<Item>(&db).await;
        let mut items = vec![item("a", 1), item("b", 2), item("c", 3), item("d", 50)];
        Item::insert_many(&db, &mut items).await.unwrap();
        take_log();

        let cheap = Item::query().filter(Item::PRICE.lt(10));
        let captured = capture();
        // `b` already costs 2: it is not changed, so it is not written.
        let written = cheap.update_all(&db, [Item::PRICE.set(2)]).await.unwrap();
        let sql = captured.text();
        assert_eq!(written, 2);
        assert_eq!(
            statements(&sql, "UPDATE").len(),
            1,
            "one UPDATE for the rows: {sql}"
        );
        assert_eq!(
            take_log(),
            [
                "before_save:a:update:true",
                "before_save:c:update:true",
                "after_save:a:update",
                "after_save:c:update",
                "after_commit:a",
                "after_commit:c",
            ]
        );
        bus.wait_idle().await;
        let changes: Vec<String> = recorder
            .events()
            .iter()
            .map(|e| e.meta(earn::CHANGES_KEY).unwrap().to_owned())
            .collect();
        assert_eq!(
            changes,
            [
                r#"{"price":{"new":2,"old":1}}"#,
                r#"{"price":{"new":2,"old":3}}"#
            ]
        );
        let prices: Vec<i64> = Item::query()
            .order_by(Item::ID.asc())
            .all(&db)
            .await
            .unwrap()
            .iter()
            .map(|i| i.price)
            .collect();
        assert_eq!(prices, [2, 2, 2, 50]);

        // A before hook that changes another field: that row is written
        // with it.
        recorder.clear();
        Item::query()
            .filter(Item::NAME.eq("d"))
            .update_all(&db, [Item::PRICE.set(999)])
            .await
            .unwrap();
        let d = Item::query()
            .filter(Item::NAME.eq("d"))
            .one(&db)
            .await
            .unwrap();
        assert_eq!((d.price, d.note.as_deref()), (999, Some("expensive")));
        take_log();

        // A veto on one row rolls back every row.
        let mut veto = item("veto-later", 5);
        veto.save(&db).await.unwrap();
        Item::query()
            .filter(Item::NAME.eq("veto-later"))
            .update_all_quietly(&db, [Item::NAME.set("veto")])
            .await
            .unwrap();
        take_log();
        let error = Item::query()
            .update_all(&db, [Item::PRICE.set(7)])
            .await
            .unwrap_err();
        assert!(error.to_string().contains("vetoed"), "{error}");
        let prices: Vec<i64> = Item::query()
            .order_by(Item::ID.asc())
            .all(&db)
            .await
            .unwrap()
            .iter()
            .map(|i| i.price)
            .collect();
        assert_eq!(prices, [2, 2, 2, 999, 5]);
        assert!(take_log().iter().any(|l| l.starts_with("after_rollback")));

        // The key and the version are not bulk-updatable.
        let error = Item::query()
            .update_all(&db, [Item::ID.set(None)])
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidQuery { .. }), "{error}");
        take_log();
    })
    .await;
}

#[tokio::test]
async fn update_all_respects_the_limit_and_bumps_versions() {
    each_backend(|db| async move {
        fresh::<Versioned>(&db).await;
        let mut rows: Vec<Versioned> = (0..5)
            .map(|n| Versioned {
                id: None,
                n,
                version: 0,
            })
            .collect();
        Versioned::insert_many(&db, &mut rows).await.unwrap();
        let written = Versioned::query()
            .order_by(Versioned::N.desc())
            .limit(2)
            .update_all(&db, [Versioned::N.set(100)])
            .await
            .unwrap();
        assert_eq!(written, 2);
        assert_eq!(take_log(), ["updated:100:v1", "updated:100:v1"]);
        let stored: Vec<(i64, i32)> = Versioned::query()
            .order_by(Versioned::ID.asc())
            .all(&db)
            .await
            .unwrap()
            .iter()
            .map(|v| (v.n, v.version))
            .collect();
        assert_eq!(stored, [(0, 0), (1, 0), (2, 0), (100, 1), (100, 1)]);
        // A copy read before the bulk write is stale now.
        let mut stale = rows[4].clone();
        stale.n = 7;
        assert!(matches!(
            stale.save(&db).await.unwrap_err(),
            Error::Stale { .. }
        ));
        take_log();
    })
    .await;
}

#[tokio::test]
async fn delete_all_runs_hooks_and_events_for_exactly_the_rows_deleted() {
    each_backend(|db| async move {
        let (db, bus, recorder) = with_recorder(db, "item.deleted").await;
        fresh::<Item>(&db).await;
        let mut items = vec![item("a", 1), item("b", 20), item("c", 3), item("d", 4)];
        Item::insert_many(&db, &mut items).await.unwrap();
        take_log();
        let deleted = Item::query()
            .filter(Item::PRICE.lt(10))
            .order_by(Item::PRICE.asc())
            .limit(2)
            .delete_all(&db)
            .await
            .unwrap();
        assert_eq!(deleted, 2);
        let log = take_log();
        assert_eq!(
            log,
            [
                "before_delete:a:true",
                "before_delete:c:true",
                "after_delete:a",
                "after_delete:c",
                "after_commit:a",
                "after_commit:c",
            ]
        );
        bus.wait_idle().await;
        let names: Vec<String> = recorder
            .events()
            .iter()
            .map(|e| e.payload::<Item>().unwrap().name)
            .collect();
        assert_eq!(names, ["a", "c"]);
        let left: Vec<String> = Item::query()
            .order_by(Item::ID.asc())
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(left, ["b", "d"]);

        // A veto keeps every row.
        item("keep", 1).save(&db).await.unwrap();
        take_log();
        let error = Item::query().delete_all(&db).await.unwrap_err();
        assert!(error.to_string().contains("keep is kept"), "{error}");
        assert_eq!(Item::query().count(&db).await.unwrap(), 3);
        take_log();
    })
    .await;
}

#[tokio::test]
async fn delete_all_without_before_hooks_deletes_and_returns_in_one_statement() {
    each_backend(|db| async move {
        let (db, bus, recorder) = with_recorder(db, "note.deleted").await;
        fresh::<Note>(&db).await;
        let mut notes: Vec<Note> = ["x", "y", "z"]
            .map(|b| Note {
                id: None,
                body: b.into(),
            })
            .into();
        Note::insert_many(&db, &mut notes).await.unwrap();
        let captured = capture();
        let deleted = Note::query()
            .filter(Note::BODY.ne("y"))
            .delete_all(&db)
            .await
            .unwrap();
        let sql = captured.text();
        assert_eq!(deleted, 2);
        let deletes = statements(&sql, "DELETE");
        assert_eq!(deletes.len(), 1, "{sql}");
        let mariadb = match db.as_mysql() {
            Some(pool) => earn::sqlx::query_scalar::<_, String>("SELECT VERSION()")
                .fetch_one(pool)
                .await
                .unwrap()
                .contains("MariaDB"),
            None => false,
        };
        // MySQL alone has no DELETE … RETURNING: it reads and locks first.
        if db.dialect() != Dialect::MySql || mariadb {
            assert!(deletes[0].contains("RETURNING"), "{sql}");
            assert!(
                statements(&sql, "SELECT").is_empty(),
                "no SELECT before: {sql}"
            );
        }
        let mut log = take_log();
        log.sort();
        assert_eq!(log, ["after_delete:x:true", "after_delete:z:true"]);
        bus.wait_idle().await;
        assert_eq!(recorder.names(), ["note.deleted"; 2]);
    })
    .await;
}

#[tokio::test]
async fn the_quiet_forms_skip_hooks_and_events_and_say_so() {
    each_backend(|db| async move {
        let (db, bus, recorder) = with_recorder(db, "item.*").await;
        fresh::<Item>(&db).await;
        let mut items = vec![item("a", 1), item("b", 2)];
        Item::insert_many(&db, &mut items).await.unwrap();
        bus.wait_idle().await;
        recorder.clear();
        take_log();
        let captured = capture();
        let updated = Item::query()
            .update_all_quietly(&db, [Item::PRICE.set(5)])
            .await
            .unwrap();
        let deleted = Item::query()
            .filter(Item::NAME.eq("a"))
            .delete_all_quietly(&db)
            .await
            .unwrap();
        let text = captured.text();
        assert_eq!((updated, deleted), (2, 1));
        assert!(
            text.contains("update_all_quietly: hooks and events skipped"),
            "{text}"
        );
        assert!(
            text.contains("delete_all_quietly: hooks and events skipped"),
            "{text}"
        );
        assert!(take_log().is_empty());
        bus.wait_idle().await;
        assert!(recorder.names().is_empty());
        assert_eq!(Item::query().one(&db).await.unwrap().price, 5);
    })
    .await;
}

#[tokio::test]
async fn bulk_writes_in_a_transaction_roll_back_with_it() {
    each_backend(|db| async move {
        let (db, bus, recorder) = with_recorder(db, "item.*").await;
        fresh::<Item>(&db).await;
        let mut tx = db.begin().await.unwrap();
        let mut items = vec![item("a", 1), item("b", 2)];
        Item::insert_many_in(&mut tx, &mut items).await.unwrap();
        Item::query()
            .update_all_in(&mut tx, [Item::PRICE.set(9)])
            .await
            .unwrap();
        assert_eq!(
            Item::query()
                .filter(Item::PRICE.eq(9))
                .count_in(&mut tx)
                .await
                .unwrap(),
            2
        );
        Item::query()
            .filter(Item::NAME.eq("a"))
            .delete_all_in(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        bus.wait_idle().await;
        assert!(recorder.names().is_empty());
        assert_eq!(Item::query().count(&db).await.unwrap(), 0);
        let log = take_log();
        assert!(
            log.iter().all(|l| !l.starts_with("after_commit")),
            "{log:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn models_without_hooks_are_written_with_one_statement() {
    each_backend(|db| async move {
        fresh::<Plain>(&db).await;
        let mut rows: Vec<Plain> = (0..10).map(|n| Plain { id: None, n }).collect();
        Plain::insert_many(&db, &mut rows).await.unwrap();
        let captured = capture();
        let updated = Plain::query()
            .filter(Plain::N.ge(5))
            .update_all(&db, [Plain::N.set(0)])
            .await
            .unwrap();
        let deleted = Plain::query()
            .filter(Plain::N.eq(0))
            .delete_all(&db)
            .await
            .unwrap();
        let sql = captured.text();
        assert_eq!((updated, deleted), (5, 6));
        assert!(statements(&sql, "SELECT").is_empty(), "{sql}");
        assert_eq!(Plain::query().count(&db).await.unwrap(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_hook_inside_a_bulk_write_cannot_open_a_transaction_of_its_own() {
    #[derive(Debug, Clone, Model)]
    #[model(table = "bulk_nested")]
    struct Nested {
        #[model(primary_key, auto)]
        id: Option<i64>,
        n: i64,
    }
    #[hooks]
    impl Nested {
        #[before_create]
        async fn nested(&self) -> Result<(), HookError> {
            let db = Db::connect("sqlite::memory:").await?;
            let mut other = Nested { id: None, n: 0 };
            other.save(&db).await?;
            Ok(())
        }
    }
    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.create_table::<Nested>().await.unwrap();
    let mut rows = vec![Nested { id: None, n: 1 }];
    let error = Nested::insert_many(&db, &mut rows).await.unwrap_err();
    assert!(
        error.to_string().contains("while a write of Nested runs"),
        "{error}"
    );
}
