//! Trimming (`XTRIM MINID`) towards `max_len` never drops an entry that a
//! group still has pending or has not read yet.

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};

async fn read(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
    n: usize,
) -> Vec<String> {
    let reply: StreamReadReply = conn
        .xread_options(
            &[stream],
            &[">"],
            &StreamReadOptions::default().group(group, "reader").count(n),
        )
        .await
        .unwrap();
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| e.id)
        .collect()
}

async fn ids(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<String> {
    let reply: StreamRangeReply = conn.xrange_all(stream).await.unwrap();
    reply.ids.into_iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_keeps_pending_and_unread_entries_of_every_group() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream).max_len(5)).await else {
        return;
    };
    let mut conn = common::raw().await;
    for group in ["workers", "slow"] {
        let _: () = conn
            .xgroup_create_mkstream(&stream, group, "0")
            .await
            .unwrap();
    }
    // Published in three rounds with a trim after each, as consumers trim
    // while events arrive: each trim marks where the stream ends.
    for _ in 0..3 {
        for event in common::events("log.line", 10) {
            streams.publish(&event).await.unwrap();
        }
        assert_eq!(streams.trim().await.unwrap(), 0, "nothing read yet");
    }
    let all = ids(&mut conn, &stream).await;
    assert_eq!(all.len(), 30);

    let read_by_workers = read(&mut conn, &stream, "workers", 30).await;
    let _: u64 = conn
        .xack(&stream, "workers", &read_by_workers)
        .await
        .unwrap();
    let read_by_slow = read(&mut conn, &stream, "slow", 20).await;
    let _: u64 = conn
        .xack(&stream, "slow", &read_by_slow[..10])
        .await
        .unwrap();

    // `slow` still has entries 10..20 pending and 20..30 unread.
    assert_eq!(streams.trim().await.unwrap(), 10);
    assert_eq!(
        ids(&mut conn, &stream).await,
        all[10..],
        "the oldest pending entry is kept"
    );

    // Nothing pending: the cut stops at `slow`'s last-delivered entry.
    let _: u64 = conn
        .xack(&stream, "slow", &read_by_slow[10..])
        .await
        .unwrap();
    assert_eq!(streams.trim().await.unwrap(), 9);
    assert_eq!(
        ids(&mut conn, &stream).await,
        all[19..],
        "unread entries are kept"
    );

    // All read: the cut is the newest mark at least max_len from the end
    // (written after the 20th entry), so never fewer than max_len remain.
    let rest = read(&mut conn, &stream, "slow", 30).await;
    let _: u64 = conn.xack(&stream, "slow", &rest).await.unwrap();
    assert_eq!(streams.trim().await.unwrap(), 0);
    for event in common::events("log.line", 10) {
        streams.publish(&event).await.unwrap();
    }
    for group in ["workers", "slow"] {
        let read = read(&mut conn, &stream, group, 10).await;
        let _: u64 = conn.xack(&stream, group, &read).await.unwrap();
    }
    assert_eq!(
        streams.trim().await.unwrap(),
        10,
        "cut at the mark after the 30th entry"
    );
    let left = ids(&mut conn, &stream).await;
    assert_eq!(left.len(), 11);
    assert_eq!(left[0], all[29]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_consumer_trims_what_every_group_has_finished() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream).max_len(10)).await
    else {
        return;
    };
    let (bus, seen) = common::recording_bus("log.*");
    let consumer = streams.consume(bus).await.unwrap();
    for event in common::events("log.line", 50) {
        streams.publish(&event).await.unwrap();
    }
    common::wait_until("50 handled", Duration::from_secs(5), || seen.len() >= 50).await;
    // More events after a first trim, so that a mark lies max_len back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for event in common::events("log.line", 20) {
        streams.publish(&event).await.unwrap();
    }
    common::wait_until("70 handled", Duration::from_secs(5), || seen.len() >= 70).await;
    common::wait_until_async("trimmed", Duration::from_secs(6), || async {
        let length = streams.lag().await.unwrap().length;
        assert!(length >= 10, "never below max_len: {length}");
        length <= 21
    })
    .await;
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
