//! Hooks declared in another crate are collected at link time and run.

mod common;

use common::{each_backend, fresh};
use earn::prelude::*;
use earn_test_models::{EVENTS, Ticket};

#[tokio::test]
async fn hooks_from_a_library_crate_run() {
    each_backend(|db| async move {
        fresh::<Ticket>(&db).await;
        EVENTS.lock().unwrap().clear();
        let mut ticket = Ticket {
            id: None,
            title: "printer on fire".into(),
        };
        ticket.save(&db).await.unwrap();
        assert_eq!(ticket.title, "PRINTER ON FIRE");
        assert_eq!(
            *EVENTS.lock().unwrap(),
            ["before_save PRINTER ON FIRE", "after_commit Some(1)"]
        );
    })
    .await;
    let registered: Vec<_> = earn::registry()
        .hooks
        .into_iter()
        .filter(|r| r.model_name == "Ticket")
        .map(|r| r.function)
        .collect();
    assert_eq!(registered, ["shout", "committed"]);
}
