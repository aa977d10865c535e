//! Dropping a future of earn-redis leaves nothing running that should not
//! be: a `Consumer::shutdown` given up on still stops the consumer.

mod common;

use std::time::Duration;

use earn::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_dropped_mid_wait_still_stops_the_consumer() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let (bus, seen) = common::stuck_bus("job.*");
    let consumer = streams.consume(bus).await.unwrap();
    streams
        .publish(&Event::new("job.first", &1).unwrap())
        .await
        .unwrap();
    common::wait_until("the first event", Duration::from_secs(10), || {
        seen.len() == 1
    })
    .await;
    // Its handler never returns: the shutdown cannot drain; give up on it.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        consumer.shutdown(Duration::from_secs(60)),
    )
    .await;
    assert!(gave_up.is_err());

    streams
        .publish(&Event::new("job.second", &2).unwrap())
        .await
        .unwrap();
    // Several read periods (`block` is 100 ms): a running reader would take it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        seen.len(),
        1,
        "the consumer still read after its shutdown was dropped"
    );
    let lag = streams.lag().await.unwrap();
    assert_eq!(lag.lag, Some(1), "the second event is left unread: {lag:?}");
    assert_eq!(
        lag.pending, 1,
        "the first stays pending for redelivery: {lag:?}"
    );
}
