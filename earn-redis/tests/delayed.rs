//! Delayed events wait in `{stream}:delayed` and arrive after their delay,
//! not before.

mod common;

use std::time::{Duration, Instant};

use earn::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_event_arrives_after_its_delay_and_not_before() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let (bus, seen) = common::recording_bus("cart.*");
    let consumer = streams.consume(bus).await.unwrap();

    let later = Event::new("cart.reminder", &"later").unwrap();
    let sooner = Event::new("cart.reminder", &"sooner").unwrap();
    let start = Instant::now();
    streams
        .publish_delayed(&later, Duration::from_millis(1500))
        .await
        .unwrap();
    streams
        .publish_delayed(&sooner, Duration::from_millis(700))
        .await
        .unwrap();
    assert_eq!(streams.lag().await.unwrap().delayed, 2);

    common::wait_until("the sooner event", Duration::from_secs(5), || {
        seen.len() >= 1
    })
    .await;
    let first = start.elapsed();
    assert!(
        first >= Duration::from_millis(700),
        "arrived after {first:?}, before its delay"
    );
    assert_eq!(seen.ids(), [sooner.id()]);

    common::wait_until("the later event", Duration::from_secs(5), || {
        seen.len() >= 2
    })
    .await;
    let second = start.elapsed();
    assert!(
        second >= Duration::from_millis(1500),
        "arrived after {second:?}, before its delay"
    );
    assert!(
        second < Duration::from_millis(3000),
        "arrived late: {second:?}"
    );
    assert_eq!(seen.ids(), [sooner.id(), later.id()]);
    assert_eq!(seen.events()[1].payload::<String>().unwrap(), "later");
    assert_eq!(
        streams.lag().await.unwrap().delayed,
        0,
        "moved out of the sorted set"
    );
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_events_wait_while_no_consumer_runs() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let event = Event::new("cart.reminder", &1).unwrap();
    streams
        .publish_delayed(&event, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lag = streams.lag().await.unwrap();
    assert_eq!(
        (lag.length, lag.delayed),
        (0, 1),
        "due, but only consumers move it"
    );

    let (bus, seen) = common::recording_bus("cart.*");
    let consumer = streams.consume(bus).await.unwrap();
    common::wait_until("the event", Duration::from_secs(5), || seen.len() >= 1).await;
    assert_eq!(seen.ids(), [event.id()]);
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
