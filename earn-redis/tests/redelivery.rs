//! A failed delivery stays pending, is delivered again after `claim_idle`
//! with the delivery count as attempt, and goes to dead letters (with the
//! handler's failure) on its `max_deliveries`-th delivery.

mod common;

use earn::DeadLetters as _;
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
        !streams.dead_letter_entries(10).await.unwrap().is_empty()
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

    let letters = streams.dead_letter_entries(10).await.unwrap();
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
    assert!(streams.dead_letter_entries(10).await.unwrap().is_empty());
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
        !streams.dead_letter_entries(10).await.unwrap().is_empty()
    })
    .await;
    let letter = &streams.dead_letter_entries(10).await.unwrap()[0];
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

/// Counts the calls of a handler and the attempts it saw.
#[derive(Clone, Default)]
struct Calls(std::sync::Arc<std::sync::Mutex<Vec<u32>>>);

impl Calls {
    fn record(&self, event: &Event) -> usize {
        let mut calls = self.0.lock().unwrap();
        calls.push(event.attempt());
        calls.len()
    }

    fn attempts(&self) -> Vec<u32> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// The keys of the per-entry sets of finished handlers still in Redis.
async fn done_sets(stream: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{stream}:done:*"))
        .query_async(&mut common::raw().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_runs_only_the_handlers_that_have_not_finished() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream)
        .claim_idle(Duration::from_millis(300))
        .max_deliveries(5);
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let (receipts, ledger) = (Calls::default(), Calls::default());
    let sink = receipts.clone();
    bus.subscribe_sync("order.*", 10, move |event: &Event| {
        sink.record(event);
    })
    .unwrap();
    let sink = ledger.clone();
    bus.subscribe_sync("order.*", 0, move |event: &Event| {
        if sink.record(event) <= 2 {
            Err(HandlerError::msg("ledger unavailable"))
        } else {
            Ok(())
        }
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    streams
        .publish(&Event::new("order.paid", &7).unwrap())
        .await
        .unwrap();
    common::wait_until("the third ledger call", Duration::from_secs(20), || {
        ledger.len() >= 3
    })
    .await;
    common::wait_until_async("acknowledged", Duration::from_secs(10), || async {
        streams.lag().await.unwrap().pending == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        ledger.attempts(),
        [1, 2, 3],
        "the failing handler, once per delivery"
    );
    assert_eq!(
        receipts.attempts(),
        [1],
        "the receipt succeeded on the first delivery and must not run again"
    );
    assert!(streams.dead_letter_entries(10).await.unwrap().is_empty());
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
    assert_eq!(
        done_sets(&stream).await,
        Vec::<String>::new(),
        "deleted with the ack"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_dead_letter_runs_only_the_handlers_that_gave_up() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream)
        .claim_idle(Duration::from_millis(300))
        .max_deliveries(2);
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    let bus = common::bus();
    let (receipts, ledger) = (Calls::default(), Calls::default());
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sink = receipts.clone();
    let receipt = bus
        .subscribe_sync("order.*", 10, move |event: &Event| {
            sink.record(event);
        })
        .unwrap();
    let (sink, down) = (ledger.clone(), broken.clone());
    let ledger_id = bus
        .subscribe_sync("order.*", 0, move |event: &Event| {
            sink.record(event);
            if down.load(std::sync::atomic::Ordering::SeqCst) {
                Err(HandlerError::msg("ledger unavailable"))
            } else {
                Ok(())
            }
        })
        .unwrap();
    // Closures are named after their subscription.
    let receipt_name = format!("subscription#{receipt}@order.*");
    let ledger_name = format!("subscription#{ledger_id}@order.*");
    let consumer = streams.consume(bus).await.unwrap();
    streams
        .publish(&Event::new("order.paid", &7).unwrap())
        .await
        .unwrap();
    common::wait_until_async("a dead letter", Duration::from_secs(20), || async {
        !streams.dead_letter_entries(10).await.unwrap().is_empty()
    })
    .await;
    assert_eq!(ledger.len(), 2);
    assert_eq!(receipts.len(), 1);
    let letter = streams.dead_letter_entries(10).await.unwrap().remove(0);
    assert_eq!(letter.gave_up, [ledger_name], "{letter:?}");
    assert_eq!(letter.finished, [receipt_name], "{letter:?}");
    assert_eq!(
        done_sets(&stream).await,
        Vec::<String>::new(),
        "deleted with the dead letter"
    );

    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    streams
        .dead_letter_source()
        .requeue(&letter.id)
        .await
        .unwrap();
    common::wait_until("the requeued delivery", Duration::from_secs(20), || {
        ledger.len() >= 3
    })
    .await;
    common::wait_until_async("acknowledged", Duration::from_secs(10), || async {
        streams.lag().await.unwrap().pending == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(ledger.len(), 3, "the handler that gave up ran again, once");
    assert_eq!(
        receipts.len(),
        1,
        "the receipt had finished: a requeue must not send it again"
    );
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_deliveries_is_the_one_budget_whatever_the_bus_retry_policy() {
    let stream = common::unique_stream();
    let settings = common::settings(&stream)
        .claim_idle(Duration::from_millis(300))
        .max_deliveries(3);
    let Some((streams, _keys)) = common::connect(settings).await else {
        return;
    };
    // The default policy: three attempts with backoff, for `publish`.
    let bus = earn::EventBus::builder()
        .without_registered_handlers()
        .workers(2)
        .build()
        .unwrap();
    let calls = Calls::default();
    let sink = calls.clone();
    bus.subscribe_sync("payment.*", 0, move |event: &Event| {
        sink.record(event);
        Err::<(), _>(HandlerError::msg("card declined"))
    })
    .unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    streams
        .publish(&Event::new("payment.charge", &1).unwrap())
        .await
        .unwrap();
    common::wait_until_async("a dead letter", Duration::from_secs(20), || async {
        !streams.dead_letter_entries(10).await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        calls.attempts(),
        [1, 2, 3],
        "one call per delivery, max_deliveries in all"
    );
    assert!(consumer.shutdown(Duration::from_secs(5)).await.drained);
}
