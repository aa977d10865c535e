//! A failed delivery stays pending, is delivered again after `claim_idle`
//! with the delivery count as attempt, and goes to dead letters (with the
//! handler's failure) on its `max_deliveries`-th delivery.

mod common;

use std::time::{Duration, Instant};

use earn::{Event, HandlerError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_entry_is_redelivered_after_claim_idle_then_dead_lettered() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream)
        .claim_idle(Duration::from_millis(400))
        .max_deliveries(3);
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let seen = common::Seen::default();
    let at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (sink, times) = (seen.clone(), at.clone());
    bus.subscribe_sync("payment.*", 0, move |event: &Event| {
        sink.push(event);
        times.lock().unwrap().push(Instant::now());
        Err::<(), _>(HandlerError::msg("card declined"))
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    let event = Event::new("payment.charge", &42).unwrap();
    streams.publish(&event).await.unwrap();

    common::wait_until_async("a dead letter", Duration::from_secs(10), || async {
        !streams.dead_letters(10).await.unwrap().is_empty()
    })
    .await;
    let attempts: Vec<u32> = seen.events().iter().map(Event::attempt).collect();
    assert_eq!(
        attempts,
        [1, 2, 3],
        "attempt is the delivery count; no delivery after the limit"
    );
    assert!(seen.events().iter().all(|e| e.id() == event.id()));
    let times = at.lock().unwrap().clone();
    // Each delivery comes claim_idle after the previous read; the handler
    // ran a little after that read, so allow for that delay.
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(300),
            "redelivered only after claim_idle: {:?}",
            pair[1] - pair[0]
        );
    }

    let letters = streams.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert!(letter.reason.contains("card declined"), "{}", letter.reason);
    assert!(
        letter.reason.contains("payment.*"),
        "names the handler: {}",
        letter.reason
    );
    assert_eq!(letter.deliveries, 3);
    assert_eq!(letter.event.as_ref().map(Event::id), Some(event.id()));
    assert_eq!(
        streams.lag().await.unwrap().pending,
        0,
        "acknowledged with the dead letter"
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(seen.len(), 3, "not delivered again after dead-lettering");
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_fails_once_is_handled_on_its_second_delivery() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream).claim_idle(Duration::from_millis(200));
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let seen = common::Seen::default();
    let sink = seen.clone();
    bus.subscribe_sync("mail.*", 0, move |event: &Event| {
        sink.push(event);
        if event.attempt() == 1 {
            Err(HandlerError::msg("smtp timeout"))
        } else {
            Ok(())
        }
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    streams
        .publish(&Event::new("mail.send", &1).unwrap())
        .await
        .unwrap();
    common::wait_until("second delivery", Duration::from_secs(5), || {
        seen.len() >= 2
    })
    .await;
    common::wait_until_async("acknowledged", Duration::from_secs(5), || async {
        streams.lag().await.unwrap().pending == 0
    })
    .await;
    assert!(streams.dead_letters(10).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.len(), 2, "no third delivery once handled");
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_dead_lettered_at_once() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream).claim_idle(Duration::from_millis(100));
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let seen = common::Seen::default();
    let sink = seen.clone();
    bus.subscribe_sync("import.*", 0, move |event: &Event| {
        sink.push(event);
        Err::<(), _>(HandlerError::permanent("row 3 is malformed"))
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    streams
        .publish(&Event::new("import.csv", &1).unwrap())
        .await
        .unwrap();
    common::wait_until_async("a dead letter", Duration::from_secs(5), || async {
        !streams.dead_letters(10).await.unwrap().is_empty()
    })
    .await;
    let letter = &streams.dead_letters(10).await.unwrap()[0];
    assert!(
        letter.reason.contains("row 3 is malformed"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.deliveries, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(seen.len(), 1, "never retried");
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
