//! The worker pool of `publish`: one bounded queue shared by every worker,
//! so the capacity counts every waiting event and a free worker always
//! takes the next one, whatever the other workers are doing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use earn_core::{BusError, Event, EventBus, Overflow};
use tokio::sync::Semaphore;

/// A bus whose `job.slow` handler holds its worker until the gate opens
/// and whose `job.fast` handler only counts.
struct Pool {
    bus: EventBus,
    started: Arc<AtomicUsize>,
    handled: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

fn pool(workers: usize, capacity: usize, overflow: Overflow) -> Pool {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(workers)
        .queue_capacity(capacity)
        .overflow(overflow)
        .build()
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (counter, held) = (started.clone(), gate.clone());
    bus.subscribe("job.slow", 0, move |_: Event| {
        counter.fetch_add(1, Ordering::SeqCst);
        let held = held.clone();
        async move {
            held.acquire().await.unwrap().forget();
        }
    })
    .unwrap();
    let counter = handled.clone();
    bus.subscribe_sync("job.fast", 0, move |_: &Event| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    Pool {
        bus,
        started,
        handled,
        gate,
    }
}

fn event(name: &str) -> Event {
    Event::new(name, &()).unwrap()
}

/// On a current-thread runtime the workers run only while the test
/// yields: lets every ready worker run until `done` holds, for at most a
/// bounded number of turns (no clock involved). Returns whether it held.
async fn settle(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..1_000 {
        if done() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    done()
}

#[tokio::test(flavor = "current_thread")]
async fn the_capacity_counts_every_waiting_event_whatever_the_workers_do() {
    let pool = pool(2, 4, Overflow::Error);
    pool.bus.publish(event("job.slow")).await.unwrap();
    assert!(settle(|| pool.started.load(Ordering::SeqCst) == 1).await);

    // One worker is held; the other keeps the queue empty, so nothing is
    // ever refused however many events come one after the other.
    for sent in 1..=12 {
        let waiting = pool.bus.in_flight() - 1;
        let published = pool.bus.publish(event("job.fast")).await;
        assert!(
            published.is_ok(),
            "event {sent} refused ({published:?}) while {waiting} event(s) waited in a queue of 4"
        );
        settle(|| pool.handled.load(Ordering::SeqCst) == sent).await;
    }
    assert_eq!(pool.handled.load(Ordering::SeqCst), 12);

    // Both workers held: exactly four events wait, the fifth is refused.
    pool.bus.publish(event("job.slow")).await.unwrap();
    assert!(settle(|| pool.started.load(Ordering::SeqCst) == 2).await);
    for _ in 0..4 {
        pool.bus.publish(event("job.fast")).await.unwrap();
    }
    match pool.bus.publish(event("job.fast")).await {
        Err(BusError::QueueFull { capacity, .. }) => assert_eq!(capacity, 4),
        other => panic!("a fifth waiting event must be refused, got {other:?}"),
    }
    assert_eq!(pool.bus.in_flight(), 6, "2 running and 4 waiting");
    pool.gate.add_permits(2);
    pool.bus.wait_idle().await;
    assert_eq!(pool.handled.load(Ordering::SeqCst), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_worker_takes_the_next_event_while_another_is_slow() {
    let pool = pool(2, 1_000, Overflow::Wait);
    // A burst: the slow event first, the fast ones right behind it, so a
    // worker that took several at once would hold some behind the slow one.
    pool.bus.publish(event("job.slow")).await.unwrap();
    for _ in 0..50 {
        pool.bus.publish(event("job.fast")).await.unwrap();
    }
    let all_handled = tokio::time::timeout(Duration::from_secs(20), async {
        while pool.handled.load(Ordering::SeqCst) < 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        all_handled.is_ok(),
        "only {} of 50 fast events handled while one worker was held by a slow handler",
        pool.handled.load(Ordering::SeqCst)
    );
    assert_eq!(pool.started.load(Ordering::SeqCst), 1);
    assert_eq!(pool.bus.in_flight(), 1, "only the slow event is left");
    pool.gate.add_permits(1);
    pool.bus.wait_idle().await;
}
