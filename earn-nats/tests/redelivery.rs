//! A failed delivery comes back after the retry backoff with the delivery
//! count as attempt; handlers that finished are not run again; on its
//! `max_deliveries`-th delivery it goes to the dead letters with the
//! handler's failure, and a requeue sends it back to that group alone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use earn::{DeadLetterFilter, DeadLetters as _, Event, HandlerError, PageRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_failed_handler_runs_again_then_the_message_is_dead_lettered() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream).max_deliveries(3);
    let Some((streams, _cleanup)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let receipts = Arc::new(AtomicUsize::new(0));
    let seen = common::Seen::default();
    let sent = receipts.clone();
    bus.subscribe_sync("payment.*", 0, move |_: &Event| {
        sent.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let sink = seen.clone();
    bus.subscribe_sync("payment.*", 0, move |event: &Event| {
        sink.push(event);
        Err::<(), _>(HandlerError::msg("card declined"))
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    let event = Event::new("payment.charge", &42).unwrap();
    streams.publish(&event).await.unwrap();

    let dead = streams.dead_letter_source();
    common::wait_until_async("a dead letter", Duration::from_secs(20), || async {
        dead.count(&DeadLetterFilter::default()).await.unwrap() == 1
    })
    .await;
    let attempts: Vec<u32> = seen.events().iter().map(Event::attempt).collect();
    assert_eq!(
        attempts,
        [1, 2, 3],
        "attempt is the delivery count; none after the limit"
    );
    assert_eq!(
        receipts.load(Ordering::SeqCst),
        1,
        "the handler that finished ran once"
    );

    let letters = dead
        .list(&DeadLetterFilter::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.source, format!("nats:{stream}"));
    assert_eq!(letter.name, "payment.charge");
    assert_eq!(letter.attempts, 3);
    assert!(letter.reason.contains("card declined"), "{}", letter.reason);
    assert!(letter.handler.as_deref().is_some_and(|h| !h.is_empty()));
    assert_eq!(letter.event.as_ref().map(Event::id), Some(event.id()));
    consumer.shutdown(Duration::from_secs(5)).await;

    // Requeued: handled by the group that gave up, the finished handler
    // still skipped.
    let healed = common::Seen::default();
    let bus = common::bus();
    let sink = healed.clone();
    let sent = receipts.clone();
    bus.subscribe_sync("payment.*", 0, move |_: &Event| {
        sent.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    bus.subscribe_sync("payment.*", 0, move |event: &Event| sink.push(event))
        .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    dead.requeue(&letter.id).await.unwrap();
    common::wait_until("the requeued event", Duration::from_secs(10), || {
        healed.len() == 1
    })
    .await;
    assert_eq!(healed.ids(), [event.id()]);
    assert_eq!(dead.count(&DeadLetterFilter::default()).await.unwrap(), 0);
    let error = dead.requeue(&letter.id).await.unwrap_err();
    assert!(
        matches!(error, earn::Error::NoDeadLetter { .. }),
        "{error:?}"
    );
    consumer.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_and_the_consumer_carries_on() {
    let stream = common::unique_stream();
    let Some((streams, _cleanup)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let (bus, seen) = common::recording_bus("**");
    let consumer = streams.consume(bus).await.unwrap();
    // Another client publishes garbage on the stream's subjects.
    let js = async_nats::jetstream::new(streams.client().clone());
    js.publish(format!("{stream}.order.paid"), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Earn-Version", "1");
    js.publish_with_headers(
        format!("{stream}.order.paid"),
        headers,
        "{\"id\": 3}".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let good = Event::new("order.paid", &1).unwrap();
    streams.publish(&good).await.unwrap();
    common::wait_until("the good event", Duration::from_secs(10), || {
        seen.len() == 1
    })
    .await;
    let dead = streams.dead_letter_source();
    common::wait_until_async("two dead letters", Duration::from_secs(10), || async {
        dead.count(&DeadLetterFilter::default()).await.unwrap() == 2
    })
    .await;
    let letters = dead
        .list(&DeadLetterFilter::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert!(
        letters[0].reason.contains("no `Earn-Version` header"),
        "{}",
        letters[0].reason
    );
    assert!(
        letters[1].reason.contains("not a valid event"),
        "{}",
        letters[1].reason
    );
    assert_eq!(letters[0].raw.as_deref(), Some("not json"));
    assert_eq!(letters[0].name, "order.paid");
    assert!(letters[0].handler.is_none());
    assert_eq!(dead.purge(&DeadLetterFilter::default()).await.unwrap(), 2);
    consumer.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_event_is_handled_once_due() {
    let stream = common::unique_stream();
    let Some((streams, _cleanup)) = common::connect(common::settings(&stream)).await else {
        return;
    };
    let (bus, seen) = common::recording_bus("cart.*");
    let consumer = streams.consume(bus).await.unwrap();
    let event = Event::new("cart.reminder", &3).unwrap();
    let start = std::time::Instant::now();
    streams
        .publish_delayed(&event, Duration::from_millis(1500))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.len(), 0, "not before it is due");
    common::wait_until("the delayed event", Duration::from_secs(10), || {
        seen.len() == 1
    })
    .await;
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert_eq!(seen.ids(), [event.id()]);
    consumer.shutdown(Duration::from_secs(5)).await;
}
