//! Batch emission on the bus: `emit_all` runs the events side by side and
//! reports each; `publish_all` queues them all. (The transports'
//! `publish_all` runs in the conformance suite, on every transport.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use earn::prelude::*;

fn new_bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap()
}

#[tokio::test]
async fn emit_all_runs_the_events_side_by_side_and_reports_each_in_order() {
    let bus = new_bus();
    // Each handler waits until all three events are being handled: one at
    // a time, this would never finish.
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    bus.subscribe("metric.*", 0, {
        let barrier = barrier.clone();
        move |event: Event| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                if event.payload::<i32>()? == 1 {
                    return Err(HandlerError::msg("reading 1 is bad"));
                }
                Ok(())
            }
        }
    })
    .unwrap();
    let readings: Vec<Event> = (0..3)
        .map(|i| Event::new("metric.cpu", &i).unwrap())
        .collect();
    let ids: Vec<_> = readings.iter().map(Event::id).collect();
    let reports = tokio::time::timeout(Duration::from_secs(5), bus.emit_all(readings))
        .await
        .expect("the three events ran side by side");
    assert_eq!(
        reports.iter().map(|r| r.event_id()).collect::<Vec<_>>(),
        ids
    );
    assert!(reports[0].is_ok());
    assert!(
        !reports[1].is_ok(),
        "the failure is reported with its event"
    );
    assert!(reports[2].is_ok());
    assert!(bus.emit_all(Vec::new()).await.is_empty());
}

#[tokio::test]
async fn publish_all_queues_every_event_for_the_workers() {
    let bus = new_bus();
    let seen = Arc::new(AtomicUsize::new(0));
    bus.subscribe("metric.*", 0, {
        let seen = seen.clone();
        move |_: Event| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    let readings: Vec<Event> = (0..500)
        .map(|i| Event::new("metric.cpu", &i).unwrap())
        .collect();
    bus.publish_all(readings).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 500);
}
