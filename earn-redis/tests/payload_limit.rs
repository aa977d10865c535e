//! An event over `max_payload` is refused at publish, with the right error.

mod common;

use std::time::Duration;

use earn::{Error, Event, EventSink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_max_payload_is_refused_and_not_stored() {
    let stream = common::unique_stream();
    let Some((streams, _keys)) = common::connect(common::settings(&stream).max_payload(1024)).await
    else {
        return;
    };
    // Told to producers (the outbox) so they refuse it before commit.
    assert_eq!(streams.max_payload(), Some(1024));
    let big = Event::new("file.uploaded", &"x".repeat(2000)).unwrap();
    let size = serde_json::to_vec(big.data()).unwrap().len();
    match streams.publish(&big).await {
        Err(Error::PayloadTooLarge {
            event,
            id,
            size: got,
            max,
        }) => {
            assert_eq!(event, "file.uploaded");
            assert_eq!(id, big.id());
            assert_eq!(got, size);
            assert_eq!(max, 1024);
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert!(matches!(
        streams.publish_delayed(&big, Duration::from_secs(1)).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    let lag = streams.lag().await.unwrap();
    assert_eq!((lag.length, lag.delayed), (0, 0), "nothing stored");

    let small = Event::new("file.uploaded", &"x".repeat(100)).unwrap();
    streams.publish(&small).await.unwrap();
    assert_eq!(streams.lag().await.unwrap().length, 1);
}
