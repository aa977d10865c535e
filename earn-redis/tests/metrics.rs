//! The transport's counters, labelled with the stream.

mod common;

#[path = "../../tests/support/counters.rs"]
mod counters;

use std::sync::Arc;
use std::time::Duration;

use counters::{Shared, Totals};
use earn::{Event, HandlerError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_acked_dead_lettered_and_claimed_are_counted() {
    let totals = Arc::new(Totals::default());
    metrics::set_global_recorder(Shared(totals.clone())).unwrap();
    let stream = common::unique_stream();
    let settings = common::settings(&stream)
        .claim_idle(Duration::from_millis(200))
        .max_deliveries(2);
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let seen = common::Seen::default();
    let sink = seen.clone();
    bus.subscribe_sync("job.*", 0, move |event: &Event| {
        sink.push(event);
        if event.name().as_str() == "job.bad" {
            Err(HandlerError::msg("nope"))
        } else {
            Ok(())
        }
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    for event in common::events("job.good", 5) {
        streams.publish(&event).await.unwrap();
    }
    streams
        .publish(&Event::new("job.bad", &0).unwrap())
        .await
        .unwrap();
    common::wait_until("the dead letter", Duration::from_secs(5), || {
        totals.get("earn_redis_dead_letters_total", &format!("stream={stream}")) == 1
    })
    .await;
    assert_eq!(
        totals.get("earn_redis_published_total", &format!("stream={stream}")),
        6
    );
    assert_eq!(
        totals.get("earn_redis_acked_total", &format!("stream={stream}")),
        5
    );
    assert_eq!(
        totals.get("earn_redis_claimed_total", &format!("stream={stream}")),
        1,
        "the failed entry, once"
    );
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
