//! The event bus: order, propagation, isolation, filters, registered
//! handlers, retries, dead letters, delays, overflow, wait_for, shutdown,
//! correlation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::prelude::*;
use earn::{BusError, DeadLetterFilter, DeadLetters, Failure, Overflow, PageRequest, RetryPolicy};

fn bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            jitter: 0.0,
        })
        .build()
        .unwrap()
}

fn event(name: &str) -> Event {
    Event::new(name, &serde_json::json!({ "n": 1 })).unwrap()
}

type Log = Arc<Mutex<Vec<String>>>;

fn logger(log: &Log, entry: &'static str) -> impl Fn(&Event) + Send + Sync + 'static {
    let log = log.clone();
    move |_event: &Event| log.lock().unwrap().push(entry.to_owned())
}

#[tokio::test]
async fn emit_runs_matching_handlers_by_priority_then_registration() {
    let bus = bus();
    let log: Log = Log::default();
    bus.subscribe_sync("user.*", 0, logger(&log, "user.* first"))
        .unwrap();
    bus.subscribe_sync("user.created", 10, logger(&log, "exact, priority 10"))
        .unwrap();
    bus.subscribe_sync("user.*", 0, logger(&log, "user.* second"))
        .unwrap();
    bus.subscribe_sync("**", -1, logger(&log, "everything, last"))
        .unwrap();
    bus.subscribe_sync("order.*", 100, logger(&log, "never"))
        .unwrap();
    let report = bus.emit(event("user.created")).await;
    assert_eq!(
        *log.lock().unwrap(),
        [
            "exact, priority 10",
            "user.* first",
            "user.* second",
            "everything, last"
        ]
    );
    assert_eq!(report.ran(), 4);
    assert!(report.is_ok() && !report.stopped());
}

#[tokio::test]
async fn a_handler_can_stop_propagation_to_lower_priorities() {
    let bus = bus();
    let log: Log = Log::default();
    let l = log.clone();
    bus.subscribe_sync("a.b", 5, move |_: &Event| {
        l.lock().unwrap().push("stopper".into());
        Propagation::Stop
    })
    .unwrap();
    bus.subscribe_sync("a.b", 1, logger(&log, "lower")).unwrap();
    let report = bus.emit(event("a.b")).await;
    assert!(report.stopped());
    assert_eq!(*log.lock().unwrap(), ["stopper"]);
}

#[tokio::test]
async fn failing_panicking_and_slow_handlers_never_stop_the_others() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .handler_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let log: Log = Log::default();
    bus.subscribe_sync("x", 4, |_: &Event| {
        Err::<(), _>(HandlerError::msg("broken"))
    })
    .unwrap();
    bus.subscribe_sync("x", 3, |_: &Event| -> () { panic!("handler panicked") })
        .unwrap();
    bus.subscribe("x", 2, |_: Event| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .unwrap();
    bus.subscribe_sync("x", 1, logger(&log, "still runs"))
        .unwrap();
    let report = bus.emit(event("x")).await;
    assert_eq!(*log.lock().unwrap(), ["still runs"]);
    let failures: Vec<String> = report.failed().iter().map(|(_, f)| f.to_string()).collect();
    assert_eq!(
        failures,
        [
            "failed: broken",
            "panicked: handler panicked",
            "timed out after 50ms"
        ]
    );
    assert_eq!(report.succeeded().len(), 1);
}

#[tokio::test]
async fn unsubscribe_removes_a_handler() {
    let bus = bus();
    let log: Log = Log::default();
    let id = bus.subscribe_sync("a", 0, logger(&log, "a")).unwrap();
    assert_eq!(bus.emit(event("a")).await.ran(), 1);
    assert!(bus.unsubscribe(id));
    assert!(!bus.unsubscribe(id));
    assert_eq!(bus.emit(event("a")).await.ran(), 0);
}

#[tokio::test]
async fn invalid_names_and_patterns_are_errors() {
    let error = Event::new("User.Created", &1).unwrap_err();
    assert!(error.to_string().contains("User.Created"), "{error}");
    let error = bus()
        .subscribe_sync("user.*x", 0, |_: &Event| ())
        .unwrap_err();
    assert!(matches!(error, BusError::Pattern(_)), "{error}");
}

// ---- handlers registered with #[event_handler] ----

static REGISTERED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(serde::Serialize, serde::Deserialize)]
struct Signup {
    email: String,
}

#[event_handler("signup.created", priority = 10)]
async fn welcome(event: &Event) -> Result<(), HandlerError> {
    let signup: Signup = event.payload()?;
    REGISTERED
        .lock()
        .unwrap()
        .push(format!("welcome {}", signup.email));
    Ok(())
}

#[event_handler("signup.*")]
fn typed(signup: Signup) {
    REGISTERED
        .lock()
        .unwrap()
        .push(format!("typed {}", signup.email));
}

fn only_vip(event: &Event) -> bool {
    event.meta("vip") == Some("yes")
}

#[event_handler("signup.created", priority = -1, filter = only_vip)]
fn vip(_event: Event) {
    REGISTERED.lock().unwrap().push("vip".into());
}

#[tokio::test]
async fn event_handler_functions_are_on_every_default_bus() {
    let bus = EventBus::builder().build().unwrap();
    let signup = Event::new(
        "signup.created",
        &Signup {
            email: "ada@example.com".into(),
        },
    )
    .unwrap();
    let report = bus.emit(signup.clone()).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.filtered().len(), 1);
    bus.emit(signup.with_meta("vip", "yes")).await;
    // A malformed payload is a permanent failure of the typed handlers only.
    let report = bus
        .emit(Event::new("signup.created", &"not an object").unwrap())
        .await;
    assert_eq!(report.failed().len(), 2);
    assert!(
        matches!(
            report.failed()[0].1,
            Failure::Error {
                permanent: true,
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(
        *REGISTERED.lock().unwrap(),
        [
            "welcome ada@example.com",
            "typed ada@example.com",
            "welcome ada@example.com",
            "typed ada@example.com",
            "vip"
        ]
    );
    assert!(
        report.failed()[0].0.ends_with("events::welcome"),
        "{}",
        report.failed()[0].0
    );
}

// ---- publish ----

#[tokio::test]
async fn publish_retries_only_the_failing_handler_until_it_succeeds() {
    let bus = bus();
    let ok_calls = Arc::new(AtomicU32::new(0));
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let ok = ok_calls.clone();
    bus.subscribe_sync("job.run", 1, move |_: &Event| {
        ok.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let flaky = flaky_calls.clone();
    bus.subscribe_sync("job.run", 0, move |event: &Event| {
        flaky.fetch_add(1, Ordering::SeqCst);
        if event.attempt() < 3 {
            Err(HandlerError::msg("not yet"))
        } else {
            Ok(())
        }
    })
    .unwrap();
    bus.publish(event("job.run")).await.unwrap();
    assert!(bus.shutdown(Duration::from_secs(5)).await.drained);
    assert_eq!(flaky_calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        ok_calls.load(Ordering::SeqCst),
        1,
        "a handler that succeeded is not run again"
    );
    assert!(dead_letters(&bus).await.is_empty());
}

/// Every dead letter of the bus, through the one dead-letter API.
async fn dead_letters(bus: &EventBus) -> Vec<earn::DeadLetter> {
    bus.dead_letter_source()
        .list(&DeadLetterFilter::default(), PageRequest::first(1000))
        .await
        .unwrap()
}

#[tokio::test]
async fn after_the_last_attempt_an_event_is_dead_lettered_and_can_be_requeued() {
    let bus = bus();
    let healthy = Arc::new(AtomicU32::new(0));
    let h = healthy.clone();
    bus.subscribe_sync("pay.charge", 0, move |_: &Event| {
        if h.load(Ordering::SeqCst) == 0 {
            Err(HandlerError::msg("gateway down"))
        } else {
            Ok(())
        }
    })
    .unwrap();
    bus.subscribe_sync("pay.permanent", 0, |_: &Event| {
        Err::<(), _>(HandlerError::permanent("card refused"))
    })
    .unwrap();
    bus.publish(event("pay.charge")).await.unwrap();
    bus.publish(event("pay.permanent")).await.unwrap();
    bus.wait_idle().await;
    let letters = dead_letters(&bus).await;
    assert_eq!(letters.len(), 2);
    let charge = letters.iter().find(|l| l.name == "pay.charge").unwrap();
    assert_eq!(
        (charge.attempts, charge.reason.as_str()),
        (3, "failed: gateway down")
    );
    assert_eq!(charge.source, "bus");
    assert_eq!(charge.event.as_ref().unwrap().name().as_str(), "pay.charge");
    let permanent = letters.iter().find(|l| l.name == "pay.permanent").unwrap();
    assert_eq!(permanent.attempts, 1, "permanent errors skip retries");
    assert!(
        permanent
            .handler
            .as_deref()
            .unwrap()
            .starts_with("subscription#")
    );

    healthy.store(1, Ordering::SeqCst);
    let source = bus.dead_letter_source();
    source.requeue(&charge.id).await.unwrap();
    bus.wait_idle().await;
    assert_eq!(dead_letters(&bus).await.len(), 1);
    assert!(matches!(
        source.requeue(&charge.id).await,
        Err(earn::Error::NoDeadLetter { .. })
    ));
    assert_eq!(source.purge(&DeadLetterFilter::default()).await.unwrap(), 1);
    assert!(dead_letters(&bus).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn delayed_events_wait_without_real_time_passing() {
    let bus = bus();
    let started = std::time::Instant::now();
    let seen = bus.wait_for("reminder.due", Duration::from_secs(7200));
    bus.publish_delayed(event("reminder.due"), Duration::from_secs(3600))
        .unwrap();
    let before = tokio::time::Instant::now();
    let got = seen.await.unwrap();
    assert_eq!(got.name().as_str(), "reminder.due");
    assert!(tokio::time::Instant::now() - before >= Duration::from_secs(3600));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "paused time: no real hour passed"
    );
}

#[tokio::test]
async fn a_full_queue_with_the_error_policy_refuses_instead_of_dropping() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .queue_capacity(2)
        .overflow(Overflow::Error)
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    bus.subscribe("slow", 0, move |_: Event| {
        let (g, h) = (g.clone(), h.clone());
        async move {
            let _permit = g.acquire().await;
            h.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..10 {
        match bus.publish(event("slow")).await {
            Ok(()) => accepted += 1,
            Err(BusError::QueueFull { capacity: 2, .. }) => refused += 1,
            Err(other) => panic!("{other}"),
        }
        tokio::task::yield_now().await;
    }
    assert!(refused > 0, "the queue filled up");
    assert_eq!(accepted + refused, 10);
    gate.add_permits(100);
    assert!(bus.shutdown(Duration::from_secs(5)).await.drained);
    assert_eq!(
        handled.load(Ordering::SeqCst),
        accepted,
        "every accepted event was handled"
    );
}

#[tokio::test]
async fn wait_for_times_out_with_an_error() {
    let bus = bus();
    let error = bus
        .wait_for("never.*", Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "no event matching `never.*` within 20ms");
}

#[tokio::test]
async fn shutdown_drains_and_refuses_new_events() {
    let bus = bus();
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    bus.subscribe("work", 0, move |_: Event| {
        let h = h.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            h.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    for _ in 0..20 {
        bus.publish(event("work")).await.unwrap();
    }
    let report = bus.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.drained, report.left), (true, 0));
    assert_eq!(handled.load(Ordering::SeqCst), 20);
    assert!(matches!(
        bus.publish(event("work")).await,
        Err(BusError::Closed { .. })
    ));
}

#[tokio::test]
async fn events_emitted_while_handling_carry_correlation_and_causation() {
    let bus = bus();
    let inner = bus.clone();
    bus.subscribe("order.placed", 0, move |_: Event| {
        let bus = inner.clone();
        async move {
            bus.publish(event("invoice.created")).await.unwrap();
        }
    })
    .unwrap();
    let invoice = bus.wait_for("invoice.created", Duration::from_secs(5));
    let order = event("order.placed");
    bus.publish(order.clone()).await.unwrap();
    let invoice = invoice.await.unwrap();
    assert_eq!(invoice.causation_id(), Some(order.id()));
    assert_eq!(invoice.correlation_id(), order.correlation_id());
    assert_ne!(invoice.id(), order.id());
}

// ---- services attached at run time ----

struct Counter {
    seen: AtomicU32,
    typed: Mutex<Vec<String>>,
}

#[service]
impl Counter {
    #[event_handler("count.*", priority = 1)]
    fn count(&self, _event: &Event) {
        self.seen.fetch_add(1, Ordering::SeqCst);
    }

    #[event_handler("count.named", retries = 0)]
    async fn named(&self, signup: Signup) -> Result<(), HandlerError> {
        self.typed.lock().unwrap().push(signup.email);
        Ok(())
    }

    /// Not a handler: left alone.
    fn total(&self) -> u32 {
        self.seen.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn an_attached_service_handles_events_until_it_is_detached() {
    let bus = bus();
    let service = Arc::new(Counter {
        seen: AtomicU32::new(0),
        typed: Mutex::default(),
    });
    let attachment = bus.attach(service.clone()).unwrap();
    assert_eq!(attachment.len(), 2);
    let report = bus.emit(event("count.one")).await;
    assert!(
        report.succeeded()[0].ends_with("Counter::count"),
        "{report:?}"
    );
    bus.emit(
        Event::new(
            "count.named",
            &Signup {
                email: "bob@example.com".into(),
            },
        )
        .unwrap(),
    )
    .await;
    assert_eq!(service.total(), 2);
    assert_eq!(*service.typed.lock().unwrap(), ["bob@example.com"]);

    assert_eq!(bus.detach(attachment), 2);
    assert_eq!(bus.emit(event("count.one")).await.ran(), 0);
    assert_eq!(service.total(), 2);
    assert_eq!(
        Arc::strong_count(&service),
        1,
        "the bus let go of the service"
    );
}
