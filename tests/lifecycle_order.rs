//! Hooks run in the documented order, by priority then declaration order.

mod common;

use common::{each_backend, fresh, log, take_log};
use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "order_widgets")]
struct Widget {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[hooks]
impl Widget {
    #[before_save]
    fn before_save(&mut self) {
        log("before_save");
    }
    #[before_create]
    fn before_create(&mut self) {
        log("before_create");
    }
    #[before_update]
    fn before_update(&mut self) {
        log("before_update");
    }
    #[after_create]
    fn after_create(&self) {
        log(format!("after_create id={:?}", self.id));
    }
    #[after_update]
    fn after_update(&self) {
        log("after_update");
    }
    #[after_save]
    fn after_save(&self) {
        log("after_save");
    }
    #[before_delete]
    fn before_delete(&self) {
        log("before_delete");
    }
    #[after_delete]
    fn after_delete(&self) {
        log("after_delete");
    }
    #[after_commit]
    fn after_commit(&self) {
        log("after_commit");
    }
    #[after_rollback]
    fn after_rollback(&self) {
        log("after_rollback");
    }
    #[after_load]
    fn after_load(&mut self) {
        log("after_load");
    }
}

#[tokio::test]
async fn insert_update_delete_and_load_run_hooks_in_lifecycle_order() {
    each_backend(|db| async move {
        fresh::<Widget>(&db).await;
        let mut w = Widget {
            id: None,
            name: "a".into(),
        };
        w.save(&db).await.unwrap();
        assert_eq!(
            take_log(),
            [
                "before_save",
                "before_create",
                "after_create id=Some(1)",
                "after_save",
                "after_commit"
            ]
        );

        w.name = "b".into();
        w.save(&db).await.unwrap();
        assert_eq!(
            take_log(),
            [
                "before_save",
                "before_update",
                "after_update",
                "after_save",
                "after_commit"
            ]
        );

        let loaded = Widget::find(&db, 1).await.unwrap().unwrap();
        assert_eq!(loaded, w);
        assert_eq!(take_log(), ["after_load"]);
        assert_eq!(Widget::all(&db).await.unwrap().len(), 1);
        assert_eq!(take_log(), ["after_load"]);

        loaded.delete(&db).await.unwrap();
        assert_eq!(
            take_log(),
            ["before_delete", "after_delete", "after_commit"]
        );
        assert_eq!(Widget::find(&db, 1).await.unwrap(), None);
        assert!(take_log().is_empty(), "no row, no after_load");
    })
    .await;
}

#[derive(Debug, Clone, Model)]
#[model(table = "order_ranked")]
struct Ranked {
    #[model(primary_key, auto)]
    id: Option<i64>,
}

#[hooks]
impl Ranked {
    #[before_save]
    fn first_declared(&mut self) {
        log("first_declared");
    }
    #[before_save(priority = 10)]
    fn high(&mut self) {
        log("high");
    }
    #[before_save(priority = -5)]
    fn low(&mut self) {
        log("low");
    }
    #[before_save]
    async fn second_declared(&self) {
        log("second_declared");
    }
    #[before_save(priority = 10)]
    fn high_second(&self) {
        log("high_second");
    }
}

/// Hooks of the same model declared in another module and another block.
mod more_hooks {
    use super::{Ranked, log};
    use earn::prelude::*;

    #[hooks]
    impl Ranked {
        #[before_save(priority = 5)]
        fn declared_elsewhere(&self) {
            log("declared_elsewhere");
        }
    }
}

#[tokio::test]
async fn priority_then_declaration_order_never_link_order() {
    each_backend(|db| async move {
        fresh::<Ranked>(&db).await;
        for _ in 0..2 {
            Ranked { id: None }.save(&db).await.unwrap();
            assert_eq!(
                take_log(),
                [
                    "high",
                    "high_second",
                    "declared_elsewhere",
                    "first_declared",
                    "second_declared",
                    "low"
                ]
            );
        }
    })
    .await;
}

#[test]
fn registry_lists_every_hook_with_its_source() {
    let ranked: Vec<_> = earn::registry()
        .hooks
        .into_iter()
        .filter(|r| r.model_name == "Ranked")
        .collect();
    let names: Vec<_> = ranked.iter().map(|r| r.function).collect();
    assert_eq!(
        names,
        [
            "high",
            "high_second",
            "declared_elsewhere",
            "first_declared",
            "second_declared",
            "low"
        ]
    );
    let high = ranked[0];
    assert_eq!((high.phase, high.priority), (HookPhase::BeforeSave, 10));
    assert!(high.file.ends_with("lifecycle_order.rs"), "{}", high.file);
    assert!(high.line > 0);
    assert!(
        high.to_string()
            .starts_with("Ranked::high (before_save, priority 10) at "),
        "{high}"
    );
    assert!(
        ranked[2].module.ends_with("more_hooks"),
        "{}",
        ranked[2].module
    );
}

use earn::HookPhase;
