//! The transport's counters, labelled with the stream and the group.

mod common;

#[path = "../../tests/support/counters.rs"]
mod counters;

use std::sync::Arc;
use std::time::Duration;

use counters::{Shared, Totals};
use earn::{Event, HandlerError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_acked_retried_and_dead_lettered_are_counted() {
    let totals = Arc::new(Totals::default());
    metrics::set_global_recorder(Shared(totals.clone())).unwrap();
    let stream = common::unique_stream();
    let settings = common::settings(&stream).max_deliveries(2);
    let Some((streams, _cleanup)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    bus.subscribe_sync("job.*", 0, move |event: &Event| {
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
    let group = format!("stream={stream},group=workers");
    common::wait_until("the dead letter", Duration::from_secs(10), || {
        totals.get("earn_nats_dead_letters_total", &group) == 1
    })
    .await;
    assert_eq!(
        totals.get("earn_nats_published_total", &format!("stream={stream}")),
        6
    );
    assert_eq!(totals.get("earn_nats_acked_total", &group), 5);
    assert_eq!(
        totals.get("earn_nats_retried_total", &group),
        1,
        "the failed message, once"
    );
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
