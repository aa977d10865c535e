//! Entries that are not events go to the dead-letter stream with the
//! reason, acknowledged in the same step, and the consumer carries on.

mod common;

use std::time::Duration;

use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_entries_are_dead_lettered_with_their_reason_and_the_consumer_carries_on() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let mut conn = common::raw().await;
    let valid = common::events("order.paid", 3);
    streams.publish(&valid[0]).await.unwrap();
    let bad: [&[(&str, &str)]; 5] = [
        &[("v", "1"), ("name", "order.paid"), ("event", "not json")],
        &[("v", "1"), ("name", "order.paid")],
        &[("v", "2"), ("event", "{}")],
        &[("event", "{}")],
        &[("v", "1"), ("event", r#"{"id": "nope"}"#)],
    ];
    let mut bad_ids = Vec::new();
    for fields in bad {
        let id: String = conn.xadd(&stream, "*", fields).await.unwrap();
        bad_ids.push(id);
    }
    streams.publish(&valid[1]).await.unwrap();

    let (bus, seen) = common::recording_bus("order.*");
    let consumer = streams.consume(bus).await.unwrap();
    streams.publish(&valid[2]).await.unwrap();
    common::wait_until("the valid events", Duration::from_secs(5), || {
        seen.len() >= 3
    })
    .await;
    let ids = seen.ids();
    for event in &valid {
        assert!(
            ids.contains(&event.id()),
            "valid event {} handled",
            event.id()
        );
    }

    common::wait_until_async("5 dead letters", Duration::from_secs(5), || async {
        streams.dead_letter_entries(10).await.unwrap().len() == 5
    })
    .await;
    let letters = streams.dead_letter_entries(10).await.unwrap();
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert!(reasons[0].contains("not a valid event"), "{reasons:?}");
    assert!(reasons[1].contains("no `event` field"), "{reasons:?}");
    assert!(
        reasons[2].contains("unknown entry version `2`"),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("no `v`"), "{reasons:?}");
    assert!(reasons[4].contains("not a valid event"), "{reasons:?}");
    for (letter, id) in letters.iter().zip(&bad_ids) {
        assert_eq!(&letter.entry, id);
        assert_eq!(letter.group, "workers");
        assert_eq!(letter.deliveries, 1);
        assert!(letter.event.is_none());
    }
    assert_eq!(
        letters[0].raw,
        [
            ("v".to_owned(), b"1".to_vec()),
            ("name".to_owned(), b"order.paid".to_vec()),
            ("event".to_owned(), b"not json".to_vec()),
        ]
    );

    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
    let lag = streams.lag().await.unwrap();
    assert_eq!(lag.pending, 0, "dead letters are acknowledged: {lag:?}");
}
