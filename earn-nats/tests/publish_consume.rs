//! Publishing and consuming: every group gets every event, the processes
//! of one group share them, a server-side filter, deduplication by event
//! id, and the payload limit.

mod common;

use std::time::Duration;

use earn::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_gets_every_event_and_a_group_shares_them() {
    let stream = common::unique_stream();
    let Some((streams, _cleanup)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let billing = |name: &str| common::settings(&stream).consumer(name);
    let (b1, seen_b1) = common::recording_bus("order.*");
    let (b2, seen_b2) = common::recording_bus("order.*");
    let (m1, seen_mail) = common::recording_bus("order.*");
    let c1 = streams.consume(b1).await.unwrap();
    let other = earn::nats::NatsStreams::connect(&common::url(), billing("c2"))
        .await
        .unwrap();
    let c2 = other.consume(b2).await.unwrap();
    let mail = earn::nats::NatsStreams::connect(
        &common::url(),
        common::group_settings(&stream, "mail").consumer("m1"),
    )
    .await
    .unwrap();
    let c3 = mail.consume(m1).await.unwrap();

    let events = common::events("order.paid", 200);
    for event in &events {
        streams.publish(event).await.unwrap();
    }
    common::wait_until("both groups handled all", Duration::from_secs(20), || {
        seen_b1.len() + seen_b2.len() == 200 && seen_mail.len() == 200
    })
    .await;
    let mut billed: Vec<_> = seen_b1.ids().into_iter().chain(seen_b2.ids()).collect();
    billed.sort();
    let mut want: Vec<_> = events.iter().map(Event::id).collect();
    want.sort();
    assert_eq!(billed, want, "the group handled each event once");
    assert!(
        seen_b1.len() > 0 && seen_b2.len() > 0,
        "both processes of the group got events"
    );
    for consumer in [c1, c2, c3] {
        assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_retried_with_the_same_event_is_stored_once() {
    let stream = common::unique_stream();
    let Some((streams, _cleanup)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let event = Event::new("order.paid", &1).unwrap();
    let first = streams.publish(&event).await.unwrap();
    // As after a lost acknowledgement: the same event again.
    let again = streams.publish(&event).await.unwrap();
    assert_eq!(
        first, again,
        "the duplicate answers with the first one's sequence"
    );
    let (bus, seen) = common::recording_bus("order.*");
    let consumer = streams.consume(bus).await.unwrap();
    let next = Event::new("order.paid", &2).unwrap();
    streams.publish(&next).await.unwrap();
    common::wait_until("the next event", Duration::from_secs(10), || {
        seen.ids().contains(&next.id())
    })
    .await;
    // Two bus workers: the order of the two is not promised.
    let mut handled = seen.ids();
    handled.sort();
    let mut want = vec![event.id(), next.id()];
    want.sort();
    assert_eq!(handled, want, "each handled once");
    consumer.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_group_gets_only_its_events() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream).filter("order.*");
    let Some((streams, _cleanup)) = common::connect(settings).await else {
        return;
    };
    let (bus, seen) = common::recording_bus("**");
    let consumer = streams.consume(bus).await.unwrap();
    let user = Event::new("user.created", &1).unwrap();
    let order = Event::new("order.paid", &2).unwrap();
    streams.publish(&user).await.unwrap();
    streams.publish(&order).await.unwrap();
    common::wait_until("the order", Duration::from_secs(10), || seen.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.ids(), [order.id()]);
    consumer.shutdown(Duration::from_secs(5)).await;

    let bad = common::settings(&common::unique_stream()).filter("**.error");
    let error = earn::nats::NatsStreams::connect(&common::url(), bad)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`**` is only allowed as the last segment"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_the_limit_is_refused_at_publish() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream).max_payload(1000);
    let Some((streams, _cleanup)) = common::connect(settings).await else {
        return;
    };
    let big = Event::new("file.uploaded", &"x".repeat(2000)).unwrap();
    let error = streams.publish(&big).await.unwrap_err();
    assert!(
        matches!(error, earn::Error::PayloadTooLarge { max: 1000, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("over the limit of 1000 bytes"),
        "{error}"
    );
    // The server's own limit (1 MiB by default) applies too.
    let settings = common::settings(&common::unique_stream()).max_payload(usize::MAX);
    let (streams, _cleanup) = common::connect(settings).await.unwrap();
    let huge = Event::new("file.uploaded", &"x".repeat(2 << 20)).unwrap();
    let error = streams.publish(&huge).await.unwrap_err();
    assert!(
        matches!(error, earn::Error::PayloadTooLarge { .. }),
        "{error:?}"
    );
    streams
        .publish(&Event::new("file.uploaded", &"small").unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_streams_removes_the_stream_and_its_companions() {
    let stream = common::unique_stream();
    let Some((streams, _cleanup)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    streams
        .publish(&Event::new("order.paid", &1).unwrap())
        .await
        .unwrap();
    streams.delete_streams().await.unwrap();
    let js = async_nats::jetstream::new(streams.client().clone());
    for name in [
        stream.clone(),
        format!("{stream}_dead"),
        format!("{stream}_delayed"),
        format!("{stream}_done"),
    ] {
        assert!(js.get_stream(&name).await.is_err(), "{name} is still there");
    }
    streams.delete_streams().await.unwrap();
}
