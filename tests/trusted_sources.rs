//! `#[event_handler(…, sources = [...])]`: a handler gets only events from
//! the sources it accepts; one from another source (or none) is not handed
//! to it, shows as filtered in the report, and is logged with the handler
//! and the source. On `emit` and on `publish` (the path Redis and NATS
//! consumers deliver through).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use earn::prelude::*;

static CHARGED: AtomicUsize = AtomicUsize::new(0);

#[event_handler("payment.*", sources = ["billing", "refunds"])]
fn charge(_event: &Event) {
    CHARGED.fetch_add(1, Ordering::SeqCst);
}

struct Ledger {
    seen: AtomicUsize,
}

#[service]
impl Ledger {
    #[event_handler("payment.*", sources = ["billing"])]
    async fn record(&self, _event: &Event) {
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

fn payment(source: Option<&str>) -> Event {
    let event = Event::new("payment.captured", &100).unwrap();
    match source {
        Some(source) => event.with_source(source),
        None => event,
    }
}

#[tokio::test]
async fn only_events_from_accepted_sources_reach_the_handler() {
    let logs = common::capture();
    let bus = EventBus::builder().build().unwrap();
    let ledger = std::sync::Arc::new(Ledger {
        seen: AtomicUsize::new(0),
    });
    let _attached = bus.attach(ledger.clone()).unwrap();

    let trusted = bus.emit(payment(Some("billing"))).await;
    assert_eq!(trusted.ran(), 2, "{trusted:?}");
    let refund = bus.emit(payment(Some("refunds"))).await;
    assert_eq!(
        refund.ran(),
        1,
        "the ledger accepts billing only: {refund:?}"
    );

    let forged = bus.emit(payment(Some("shop"))).await;
    assert_eq!(forged.ran(), 0);
    assert_eq!(
        forged.filtered().len(),
        2,
        "reported as not handed over: {forged:?}"
    );
    let anonymous = bus.emit(payment(None)).await;
    assert_eq!(anonymous.ran(), 0);

    bus.publish(payment(Some("shop"))).await.unwrap();
    bus.publish(payment(Some("billing"))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .unwrap();

    assert_eq!(CHARGED.load(Ordering::SeqCst), 3);
    assert_eq!(ledger.seen.load(Ordering::SeqCst), 2);
    let text = logs.text();
    assert!(
        text.contains(r#"handler="trusted_sources::charge""#) && text.contains(r#"source="shop""#),
        "the refusal names the handler and the source: {text}"
    );
    assert!(text.contains(r#"source="(none)""#), "{text}");
}
