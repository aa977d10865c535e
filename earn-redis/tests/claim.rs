//! `XAUTOCLAIM`: another consumer takes over the entries of one that
//! stopped without acknowledging them, once they were idle `claim_idle`.

mod common;

use std::time::{Duration, Instant};

use earn::Event;
use earn::redis::RedisStreams;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_consumer_claims_the_entries_of_a_crashed_one() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let (stuck, started) = common::stuck_bus("task.*");
    // Published first, so that c1 reads them all in one batch.
    let sent = common::events("task.run", 30);
    for event in &sent {
        streams.publish(event).await.unwrap();
    }
    // Entries are read after this: they become claimable no earlier than `idle` from here.
    let before_read = Instant::now();
    let crashed = streams.consume(stuck).await.unwrap();
    common::wait_until("c1 to read", Duration::from_secs(5), || started.len() >= 30).await;
    crashed.abort();

    let idle = Duration::from_millis(800);
    let other = RedisStreams::connect(
        &common::url(),
        common::settings(&stream).consumer("c2").claim_idle(idle),
    )
    .await
    .unwrap();
    let (bus, seen) = common::recording_bus("task.*");
    let consumer = other.consume(bus).await.unwrap();
    common::wait_until("30 claimed", Duration::from_secs(10), || seen.len() >= 30).await;
    let waited = before_read.elapsed();
    assert!(waited >= idle, "claimed only after claim_idle: {waited:?}");
    let mut got = seen.ids();
    got.sort();
    let mut want: Vec<_> = sent.iter().map(Event::id).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(seen.events().iter().all(|e| e.attempt() == 2));
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
    assert_eq!(other.lag().await.unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_consumers_keep_crashing_is_dead_lettered_without_running_again() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream)
        .claim_idle(Duration::from_millis(150))
        .max_deliveries(2);
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let event = Event::new("task.run", &1).unwrap();
    streams.publish(&event).await.unwrap();
    // Two consumers in turn read it and crash.
    for name in ["c1", "c2"] {
        let crashing = RedisStreams::connect(
            &common::url(),
            common::settings(&stream)
                .consumer(name)
                .claim_idle(Duration::from_millis(150)),
        )
        .await
        .unwrap();
        let (stuck, started) = common::stuck_bus("task.*");
        let consumer = crashing.consume(stuck).await.unwrap();
        common::wait_until("a delivery", Duration::from_secs(5), || started.len() >= 1).await;
        consumer.abort();
    }
    // The third delivery is past the limit: no handler runs.
    let (bus, seen) = common::recording_bus("task.*");
    let consumer = RedisStreams::connect(
        &common::url(),
        common::settings(&stream)
            .consumer("c3")
            .claim_idle(Duration::from_millis(150))
            .max_deliveries(2),
    )
    .await
    .unwrap()
    .consume(bus)
    .await
    .unwrap();
    common::wait_until_async("a dead letter", Duration::from_secs(5), || async {
        !streams.dead_letter_entries(10).await.unwrap().is_empty()
    })
    .await;
    let letter = &streams.dead_letter_entries(10).await.unwrap()[0];
    assert_eq!(letter.deliveries, 3);
    assert!(
        letter.reason.contains("without being acknowledged"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.event.as_ref().map(Event::id), Some(event.id()));
    assert_eq!(seen.len(), 0);
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
