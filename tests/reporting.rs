//! What is not returned is reported: quiet writes and failing outcome hooks
//! leave a `tracing` event.

mod common;

use common::{capture, each_backend, fresh};
use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "reporting_mail")]
struct Mail {
    #[model(primary_key, auto)]
    id: Option<i64>,
    to: String,
}

#[hooks]
impl Mail {
    #[after_commit]
    fn send(&self) -> Result<(), HookError> {
        Err(HookError::msg(format!("smtp refused {}", self.to)))
    }
}

#[tokio::test]
async fn quiet_writes_and_failed_outcome_hooks_are_reported() {
    each_backend(|db| async move {
        fresh::<Mail>(&db).await;
        let captured = capture();

        let mut mail = Mail {
            id: None,
            to: "ada@example.com".into(),
        };
        mail.save(&db).await.expect("the committed save succeeds");
        let text = captured.text();
        assert!(text.contains("ERROR"), "{text}");
        assert!(
            text.contains("Mail::send (after_commit) failed: smtp refused ada@example.com"),
            "{text}"
        );

        mail.save_quietly(&db).await.unwrap();
        mail.delete_quietly(&db).await.unwrap();
        let text = captured.text();
        assert!(
            text.contains("save_quietly: hooks skipped") && text.contains("model=\"Mail\""),
            "{text}"
        );
        assert!(text.contains("delete_quietly: hooks skipped"), "{text}");
    })
    .await;
}

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "reporting_jobs", events = "reporting_job")]
struct Job {
    #[model(primary_key, auto)]
    id: Option<i64>,
}

#[event_handler("reporting_job.created")]
async fn slow_job_handler(_event: &Event) {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn dropping_the_last_handle_while_the_process_wide_bus_is_busy_warns_with_the_count() {
    let _serial = common::serial().await;
    let captured = capture();
    let db = Db::connect("sqlite::memory:").await.unwrap();
    fresh::<Job>(&db).await;
    Job { id: None }.save(&db).await.unwrap();
    Job { id: None }.save(&db).await.unwrap();
    // What `main` does when it returns without `shutdown`.
    drop(db);
    let text = captured.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("event(s) published to the process-wide bus are still queued")
            && text.contains("db.bus().shutdown(deadline).await"),
        "{text}"
    );
    assert!(
        text.contains("events=2") || text.contains("events=1"),
        "the count: {text}"
    );
    earn::EventBus::global().wait_idle().await;

    // Shut down first, and nothing is said.
    let db = Db::connect("sqlite::memory:").await.unwrap();
    fresh::<Job>(&db).await;
    Job { id: None }.save(&db).await.unwrap();
    db.bus().wait_idle().await;
    drop(db);
    assert!(!captured.text().contains("still queued"));
}

#[tokio::test]
async fn handlers_run_in_a_span_carrying_the_event_and_correlation_ids() {
    let _serial = common::serial().await;
    let captured = capture();
    let bus = earn::EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    bus.subscribe_sync("report.*", 0, |_: &Event| tracing::info!("handled"))
        .unwrap();
    let inline = Event::new("report.inline", &1).unwrap();
    bus.emit(inline.clone()).await;
    let queued = Event::new("report.queued", &2).unwrap();
    bus.publish(queued.clone()).await.unwrap();
    bus.wait_idle().await;
    let text = captured.text();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains("handled") && l.contains(name))
            .unwrap_or_else(|| panic!("no handler line for {name} in {text}"))
            .to_owned()
    };
    let emitted = line("report.inline");
    assert!(
        emitted.contains("earn.emit{")
            && emitted.contains(&inline.id().to_string())
            && emitted.contains(&format!("correlation_id={}", inline.correlation_id())),
        "{emitted}"
    );
    let delivered = line("report.queued");
    assert!(
        delivered.contains("earn.deliver{")
            && delivered.contains(&queued.id().to_string())
            && delivered.contains("attempt=1"),
        "{delivered}"
    );
}
