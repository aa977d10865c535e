//! The transport path (`deliver`, `redeliver`): the transport owns
//! failures, so each delivery makes one attempt of each handler not yet
//! finished, whatever the bus's retry policy, and reports which finished.

use std::sync::{Arc, Mutex};

use earn_core::{Event, EventBus, Finished, HandlerError, Propagation};

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(&'static str, u32)>>>);

impl Calls {
    fn handler(
        &self,
        name: &'static str,
        result: impl Fn(&Event) -> Result<Propagation, HandlerError> + Send + Sync + 'static,
    ) -> impl Fn(&Event) -> Result<Propagation, HandlerError> + Send + Sync + 'static {
        let calls = self.clone();
        move |event: &Event| {
            calls.0.lock().unwrap().push((name, event.attempt()));
            result(event)
        }
    }

    fn take(&self) -> Vec<(&'static str, u32)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The names of closure subscriptions.
fn names(ids: &[earn_core::SubscriptionId], pattern: &str) -> Vec<String> {
    ids.iter()
        .map(|id| format!("subscription#{id}@{pattern}"))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn each_delivery_makes_one_attempt_per_unfinished_handler() {
    // The default policy retries `publish` three times; not a delivery.
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    let calls = Calls::default();
    let receipt = bus
        .subscribe_sync(
            "order.*",
            2,
            calls.handler("receipt", |_| Ok(Propagation::Continue)),
        )
        .unwrap();
    let ledger = bus
        .subscribe_sync(
            "order.*",
            1,
            calls.handler("ledger", |_| Err(HandlerError::msg("ledger down"))),
        )
        .unwrap();
    let event = Event::new("order.paid", &7).unwrap();

    let first = bus.deliver(event.clone()).await.unwrap();
    assert_eq!(calls.take(), [("receipt", 1), ("ledger", 1)]);
    let failed: Vec<_> = first
        .failures()
        .iter()
        .map(|(h, _)| h.to_string())
        .collect();
    assert_eq!(failed, names(&[ledger], "order.*"));
    let finished: Vec<_> = first.finished().iter().map(|h| h.to_string()).collect();
    assert_eq!(finished, names(&[receipt], "order.*"));
    assert!(
        dead_letters(&bus).await.is_empty(),
        "the transport owns the failure"
    );
    assert_eq!(bus.in_flight(), 0, "no retry is pending");

    // The transport's third delivery: its count is the attempt.
    let again = bus
        .redeliver(
            event.with_attempt(3),
            Finished::from_names(first.finished().iter().cloned()),
        )
        .await
        .unwrap();
    assert_eq!(calls.take(), [("ledger", 3)], "the receipt is skipped");
    let finished: Vec<_> = again.finished().iter().map(|h| h.to_string()).collect();
    assert_eq!(
        finished,
        names(&[receipt], "order.*"),
        "still reported finished"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn handlers_a_stop_kept_the_event_from_count_as_finished() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    let calls = Calls::default();
    let flaky = bus
        .subscribe_sync(
            "order.*",
            3,
            calls.handler("flaky", |e| {
                if e.attempt() == 1 {
                    Err(HandlerError::msg("busy"))
                } else {
                    Ok(Propagation::Continue)
                }
            }),
        )
        .unwrap();
    let gate = bus
        .subscribe_sync(
            "order.*",
            2,
            calls.handler("gate", |_| Ok(Propagation::Stop)),
        )
        .unwrap();
    let below = bus
        .subscribe_sync(
            "order.*",
            1,
            calls.handler("below", |_| Ok(Propagation::Continue)),
        )
        .unwrap();
    let event = Event::new("order.paid", &7).unwrap();
    let first = bus.deliver(event.clone()).await.unwrap();
    assert_eq!(calls.take(), [("flaky", 1), ("gate", 1)]);
    let mut finished: Vec<_> = first.finished().iter().map(|h| h.to_string()).collect();
    finished.sort();
    let mut expected = names(&[gate, below], "order.*");
    expected.sort();
    assert_eq!(finished, expected);
    // The redelivery runs the failed handler only: the stop still holds.
    let again = bus
        .redeliver(
            event.with_attempt(2),
            Finished::from_names(first.finished().iter().cloned()),
        )
        .await
        .unwrap();
    assert!(again.is_ok());
    assert_eq!(calls.take(), [("flaky", 2)]);
    assert_eq!(again.finished().len(), 3, "{flaky} and the two before");
}

/// Every dead letter of the bus, through the one dead-letter API.
async fn dead_letters(bus: &EventBus) -> Vec<earn_core::DeadLetter> {
    use earn_core::DeadLetters as _;
    bus.dead_letter_source()
        .list(
            &earn_core::DeadLetterFilter::default(),
            earn_core::PageRequest::first(1000),
        )
        .await
        .unwrap()
}
