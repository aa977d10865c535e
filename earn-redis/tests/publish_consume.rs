//! Publishing and consuming: ids end to end, the entry format, concurrent
//! publishers, the `EventSink` the outbox uses, acknowledgement.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use earn::redis::RedisStreams;
use earn::{Event, EventSink};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_reach_the_handlers_with_their_ids_and_are_acknowledged() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let (bus, seen) = common::recording_bus("order.*");
    let consumer = streams.consume(bus).await.unwrap();

    let sent = common::events("order.paid", 250);
    for event in &sent {
        streams.publish(event).await.unwrap();
    }
    common::wait_until("250 events handled", Duration::from_secs(10), || {
        seen.len() >= 250
    })
    .await;

    let mut got = seen.events();
    got.sort_by_key(Event::id);
    let mut want = sent.clone();
    want.sort_by_key(Event::id);
    assert_eq!(got.len(), 250, "no duplicates without failures");
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(got.id(), want.id());
        assert_eq!(got.payload_json(), want.payload_json());
        assert_eq!(got.correlation_id(), want.correlation_id());
        assert_eq!(got.attempt(), 1, "first delivery");
    }

    let report = consumer.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained, "{report:?}");
    let lag = streams.lag().await.unwrap();
    assert_eq!(
        lag.pending, 0,
        "everything handled is acknowledged: {lag:?}"
    );
    assert_eq!(lag.lag, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_holds_the_version_the_name_and_the_event_json() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let event = Event::new(
        "user.created",
        &serde_json::json!({"email": "ada@example.com"}),
    )
    .unwrap()
    .with_meta("tenant", "7");
    let id = streams.publish(&event).await.unwrap();

    let mut conn = common::raw().await;
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&stream).await.unwrap();
    assert_eq!(entries.ids.len(), 1);
    let entry = &entries.ids[0];
    assert_eq!(entry.id, id);
    assert_eq!(entry.get::<String>("v").as_deref(), Some("1"));
    assert_eq!(entry.get::<String>("name").as_deref(), Some("user.created"));
    let json: String = entry.get("event").unwrap();
    let data: earn::EventData = serde_json::from_str(&json).unwrap();
    assert_eq!(&data, event.data());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_share_the_connection() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let streams = streams.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for event in common::events("load.test", 250) {
                    ids.push(streams.publish(&event).await.unwrap());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "every publish got its own entry");
    assert_eq!(streams.lag().await.unwrap().length, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_an_event_sink_it_accepts_once_redis_has_the_event() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let accepted = Arc::new(AtomicBool::new(false));
    let flag = accepted.clone();
    let sink: &dyn EventSink = &streams;
    sink.hand_over(
        Event::new("order.placed", &1).unwrap(),
        Box::new(move || flag.store(true, Ordering::SeqCst)),
    )
    .await
    .unwrap();
    assert!(accepted.load(Ordering::SeqCst));
    assert_eq!(streams.lag().await.unwrap().length, 1);

    // Refused: never accepted.
    let small = RedisStreams::connect(&common::url(), common::settings(&stream).max_payload(10))
        .await
        .unwrap();
    let accepted = Arc::new(AtomicBool::new(false));
    let flag = accepted.clone();
    let refused = small
        .hand_over(
            Event::new("order.placed", &"x".repeat(100)).unwrap(),
            Box::new(move || flag.store(true, Ordering::SeqCst)),
        )
        .await;
    assert!(refused.is_err());
    assert!(!accepted.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_of_a_group_share_the_entries_and_another_group_gets_them_all() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let (bus, seen) = common::recording_bus("job.*");
    let first = streams.consume(bus.clone()).await.unwrap();
    let second_streams =
        RedisStreams::connect(&common::url(), common::settings(&stream).consumer("c2"))
            .await
            .unwrap();
    let second = second_streams.consume(bus).await.unwrap();
    let other_streams = RedisStreams::connect(
        &common::url(),
        earn::redis::RedisSettings::new(&stream, "audit").block(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let (audit_bus, audited) = common::recording_bus("job.*");
    let audit = other_streams.consume(audit_bus).await.unwrap();

    for event in common::events("job.run", 300) {
        streams.publish(&event).await.unwrap();
    }
    common::wait_until("both groups handled 300", Duration::from_secs(10), || {
        seen.len() >= 300 && audited.len() >= 300
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.len(), 300, "each entry once in the group");
    assert_eq!(audited.len(), 300);
    for consumer in [first, second, audit] {
        assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
    }
}
