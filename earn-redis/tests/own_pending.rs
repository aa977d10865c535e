//! A consumer restarted under the same name handles its own pending
//! entries first, at once, without waiting for `claim_idle`.

mod common;

use std::time::{Duration, Instant};

use earn::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_drains_its_own_pending_entries_first() {
    let stream = common::unique_stream();
    // Claims would take a minute: only the drain can deliver in time.
    let settings = common::settings(&stream).claim_idle(Duration::from_secs(60));
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    // The first run handles nothing to the end: its handler never returns.
    let (stuck, started) = common::stuck_bus("task.*");
    // Published first, so that the first run reads them all in one batch.
    let sent = common::events("task.run", 20);
    for event in &sent {
        streams.publish(event).await.unwrap();
    }
    let first = streams.consume(stuck).await.unwrap();
    common::wait_until("the first run to read", Duration::from_secs(5), || {
        started.len() >= 20
    })
    .await;
    first.abort(); // a crash: nothing acknowledged
    assert_eq!(streams.lag().await.unwrap().pending, 20);

    // Restarted under the same name `c1`.
    let (bus, seen) = common::recording_bus("task.*");
    let start = Instant::now();
    let second = streams.consume(bus).await.unwrap();
    let later = Event::new("task.run", &"new").unwrap();
    streams.publish(&later).await.unwrap();
    common::wait_until("all 21", Duration::from_secs(5), || seen.len() >= 21).await;
    assert!(start.elapsed() < Duration::from_secs(5));
    let events = seen.events();
    let mut drained: Vec<_> = events[..20].iter().map(Event::id).collect();
    drained.sort();
    let mut want: Vec<_> = sent.iter().map(Event::id).collect();
    want.sort();
    assert_eq!(drained, want, "its own pending entries first");
    assert!(
        events[..20].iter().all(|e| e.attempt() == 2),
        "second delivery"
    );
    assert_eq!(events[20].id(), later.id());
    assert_eq!(events[20].attempt(), 1);
    assert!(second.shutdown(Duration::from_secs(5)).await.drained);
    assert_eq!(streams.lag().await.unwrap().pending, 0);
}
