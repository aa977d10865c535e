//! Dropping any future the bus returns, polled or not, finished or not,
//! leaves no count, subscription or task behind.

use std::sync::Arc;
use std::time::Duration;

use earn_core::{Event, EventBus, Finished, HandlerError, RetryPolicy};
use tokio::sync::Semaphore;

/// A bus with one worker held by a gated handler and a queue of one,
/// already full: the next publish waits for room.
async fn full_bus() -> (EventBus, Arc<Semaphore>) {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .queue_capacity(1)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    bus.subscribe("hold.*", 0, move |_: Event| {
        let held = held.clone();
        async move {
            held.acquire().await.unwrap().forget();
        }
    })
    .unwrap();
    bus.publish(Event::new("hold.worker", &()).unwrap())
        .await
        .unwrap();
    tokio::task::yield_now().await;
    bus.publish(Event::new("hold.queue", &()).unwrap())
        .await
        .unwrap();
    assert_eq!(bus.in_flight(), 2);
    (bus, gate)
}

fn handlers(bus: &EventBus) -> String {
    let shown = format!("{bus:?}");
    let at = shown
        .find("handlers: ")
        .expect("Debug shows the handler count");
    shown[at..]
        .split([',', ' ', '}'])
        .nth(1)
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_publish_dropped_while_waiting_for_room_is_not_counted() {
    let (bus, gate) = full_bus().await;
    let waited = tokio::time::timeout(
        Duration::from_secs(1),
        bus.publish(Event::new("hold.more", &()).unwrap()),
    )
    .await;
    assert!(waited.is_err(), "the queue was full: publish waited");
    assert_eq!(
        bus.in_flight(),
        2,
        "the dropped publish left a count behind"
    );
    gate.add_permits(2);
    tokio::time::timeout(Duration::from_secs(60), bus.wait_idle())
        .await
        .expect("wait_idle returns once the two queued events are handled");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn publish_then_and_deliver_dropped_while_waiting_are_not_counted() {
    let (bus, gate) = full_bus().await;
    let event = || Event::new("hold.more", &()).unwrap();
    let then = tokio::time::timeout(Duration::from_secs(1), bus.publish_then(event(), || ()));
    assert!(then.await.is_err());
    let deliver = tokio::time::timeout(Duration::from_secs(1), bus.deliver(event()));
    assert!(deliver.await.is_err());
    let deliver_then = tokio::time::timeout(
        Duration::from_secs(1),
        bus.deliver_then(event(), Finished::none(), |_| ()),
    );
    assert!(deliver_then.await.is_err());
    assert_eq!(bus.in_flight(), 2);
    gate.add_permits(2);
    bus.wait_idle().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_requeue_dropped_while_waiting_for_room_keeps_the_dead_letter() {
    let (bus, gate) = full_bus().await;
    bus.subscribe_sync("fail.*", 0, |_: &Event| {
        Err::<(), _>(HandlerError::msg("down"))
    })
    .unwrap();
    // Dead-lettered through emit's sibling: a publish that fails once.
    gate.add_permits(2);
    bus.publish(Event::new("fail.once", &()).unwrap())
        .await
        .unwrap();
    bus.wait_idle().await;
    let letter = dead_letters(&bus).await.pop().expect("a dead letter");
    // Fill the queue again, then requeue and give up waiting.
    bus.publish(Event::new("hold.worker", &()).unwrap())
        .await
        .unwrap();
    tokio::task::yield_now().await;
    bus.publish(Event::new("hold.queue", &()).unwrap())
        .await
        .unwrap();
    let source = bus.dead_letter_source();
    let requeued = tokio::time::timeout(
        Duration::from_secs(1),
        earn_core::DeadLetters::requeue(&source, &letter.id),
    )
    .await;
    assert!(requeued.is_err(), "the queue was full: requeue waited");
    assert_eq!(
        dead_letters(&bus)
            .await
            .iter()
            .map(|l| l.id.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&letter.id),
        "a dropped requeue must not lose the dead letter"
    );
    assert_eq!(bus.in_flight(), 2);
    gate.add_permits(2);
    bus.wait_idle().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_wait_for_dropped_unpolled_leaves_no_subscription() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    assert_eq!(handlers(&bus), "0");
    let waiting = bus.wait_for("user.*", Duration::from_secs(60));
    drop(waiting);
    assert_eq!(handlers(&bus), "0", "{bus:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_wait_for_dropped_mid_wait_leaves_no_subscription() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    tokio::select! {
        _ = bus.wait_for("user.*", Duration::from_secs(60)) => panic!("nothing was published"),
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    assert_eq!(handlers(&bus), "0", "{bus:?}");
    // A wait that ends by itself unsubscribes too.
    let seen = bus.wait_for("user.*", Duration::from_secs(5));
    bus.publish(Event::new("user.created", &()).unwrap())
        .await
        .unwrap();
    assert_eq!(seen.await.unwrap().name().as_str(), "user.created");
    assert_eq!(handlers(&bus), "0", "{bus:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_and_wait_idle_dropped_mid_wait_leave_nothing_behind() {
    let (bus, gate) = full_bus().await;
    let idle = tokio::time::timeout(Duration::from_secs(1), bus.wait_idle()).await;
    assert!(idle.is_err());
    let stopped = tokio::time::timeout(
        Duration::from_secs(1),
        bus.shutdown(Duration::from_secs(60)),
    )
    .await;
    assert!(stopped.is_err());
    assert_eq!(bus.in_flight(), 2);
    gate.add_permits(2);
    bus.wait_idle().await;
    assert_eq!(bus.in_flight(), 0);
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
