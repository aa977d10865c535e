//! `publish_delayed`: a delayed event belongs to the bus from the moment
//! it is accepted. It counts in `in_flight` / `wait_idle` / `shutdown`,
//! waits for room in the queue when it comes due, and is never dropped
//! silently: if the bus cannot run it, it becomes a dead letter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn_core::{Event, EventBus, Overflow};
use tokio::sync::Semaphore;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn recording(bus: &EventBus, pattern: &str) -> Seen {
    let seen = Seen::default();
    let sink = seen.clone();
    bus.subscribe_sync(pattern, 0, move |event: &Event| {
        sink.0.lock().unwrap().push(event.name().to_string());
    })
    .unwrap();
    seen
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_delayed_event_that_finds_the_queue_full_waits_for_room() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .queue_capacity(1)
        .overflow(Overflow::Error)
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
    let seen = recording(&bus, "later.*");
    bus.publish(Event::new("hold.worker", &()).unwrap())
        .await
        .unwrap();
    tokio::task::yield_now().await; // the worker takes it and waits on the gate
    bus.publish(Event::new("hold.queue", &()).unwrap())
        .await
        .unwrap();
    bus.publish_delayed(
        Event::new("later.reminder", &()).unwrap(),
        Duration::from_secs(1),
    )
    .unwrap();
    // Due while the worker is held and the queue full.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(bus.in_flight(), 3, "the due event still counts");
    gate.add_permits(2);
    bus.wait_idle().await;
    assert_eq!(seen.names(), ["later.reminder"]);
    assert!(dead_letters(&bus).await.is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_waits_for_a_delayed_event_and_runs_it() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .build()
        .unwrap();
    let seen = recording(&bus, "later.*");
    bus.publish_delayed(
        Event::new("later.reminder", &()).unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    let report = bus.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(report.left, 0);
    assert_eq!(
        seen.names(),
        ["later.reminder"],
        "shutdown reported drained: the delayed event must have run"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_reports_a_delayed_event_not_due_by_the_deadline() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .build()
        .unwrap();
    let seen = recording(&bus, "later.*");
    bus.publish_delayed(
        Event::new("later.reminder", &()).unwrap(),
        Duration::from_secs(60),
    )
    .unwrap();
    let report = bus.shutdown(Duration::from_secs(1)).await;
    assert!(!report.drained);
    assert_eq!(report.left, 1);
    // Accepted before the shutdown: it still runs when due.
    bus.wait_idle().await;
    assert_eq!(seen.names(), ["later.reminder"]);
}

#[test]
fn a_delayed_event_outlives_the_runtime_that_published_it() {
    // The bus runs on a runtime of its own, like `EventBus::global()`.
    let own = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bus = EventBus::builder()
        .without_registered_handlers()
        .runtime(own.handle().clone())
        .build()
        .unwrap();
    let seen = recording(&bus, "later.*");
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    caller.block_on(async {
        bus.publish_delayed(
            Event::new("later.reminder", &()).unwrap(),
            Duration::from_millis(100),
        )
        .unwrap();
    });
    drop(caller);
    let idle = own
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), bus.wait_idle()).await });
    assert!(
        idle.is_ok(),
        "the delayed event was lost with the caller's runtime: in_flight stayed {}",
        bus.in_flight()
    );
    assert_eq!(seen.names(), ["later.reminder"]);
}

#[test]
fn a_delayed_event_the_bus_can_no_longer_run_is_a_dead_letter() {
    let own = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bus = EventBus::builder()
        .without_registered_handlers()
        .runtime(own.handle().clone())
        .build()
        .unwrap();
    let seen = recording(&bus, "later.*");
    let event = Event::new("later.reminder", &()).unwrap();
    bus.publish_delayed(event.clone(), Duration::from_secs(3600))
        .unwrap();
    assert_eq!(bus.in_flight(), 1);
    // The bus's runtime ends (its workers and timer with it) long before
    // the event is due.
    drop(own);
    assert!(seen.names().is_empty());
    assert_eq!(bus.in_flight(), 0, "nothing is left counted for ever");
    let letters = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(dead_letters(&bus));
    assert_eq!(letters.len(), 1, "never a silent drop: {letters:?}");
    assert_eq!(letters[0].event.as_ref().map(Event::id), Some(event.id()));
    assert!(
        letters[0].reason.contains("runtime"),
        "the reason says why: {}",
        letters[0].reason
    );
}

#[test]
fn a_delayed_event_on_the_global_bus_outlives_the_callers_runtime() {
    let bus = EventBus::global();
    let seen = recording(bus, "global-delayed.*");
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    caller.block_on(async {
        bus.publish_delayed(
            Event::new("global-delayed.reminder", &()).unwrap(),
            Duration::from_millis(100),
        )
        .unwrap();
    });
    drop(caller);
    let later = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idle = later
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), bus.wait_idle()).await });
    assert!(
        idle.is_ok(),
        "the delayed event was lost with the caller's runtime: in_flight stayed {}",
        bus.in_flight()
    );
    assert_eq!(seen.names(), ["global-delayed.reminder"]);
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
