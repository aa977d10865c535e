//! Subscriptions that end with their scope: a guard that unsubscribes when
//! dropped, an attachment scoped the same way, and a service held weakly
//! whose handlers end when it is dropped. Events delivered by the bus's
//! workers (`publish`, the path Redis and NATS consumers use) and run now
//! (`emit`) alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use earn::prelude::*;

fn new_bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap()
}

fn ping() -> Event {
    Event::new("session.ping", &()).unwrap()
}

/// Counts the events its handler saw.
#[derive(Default)]
struct Session {
    seen: AtomicUsize,
}

#[service]
impl Session {
    #[event_handler("session.ping")]
    async fn ping(&self, _event: &Event) {
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_dropped_guard_unsubscribes_for_emit_and_publish() {
    let bus = new_bus();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = |seen: &Arc<AtomicUsize>| {
        let seen = seen.clone();
        move |_: Event| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    };
    let guard = bus.subscribe_scoped("session.*", 0, count(&seen)).unwrap();
    assert_eq!(guard.ids().len(), 1);
    assert_eq!(bus.emit(ping()).await.ran(), 1);
    bus.publish(ping()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    drop(guard);
    assert_eq!(bus.emit(ping()).await.ran(), 0, "no handler left");
    bus.publish(ping()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "a published event no longer reaches it"
    );

    // `forget` keeps the subscription past the guard.
    let kept = bus
        .subscribe_scoped("session.*", 0, count(&seen))
        .unwrap()
        .forget();
    assert_eq!(bus.emit(ping()).await.ran(), 1);
    assert!(bus.unsubscribe(kept[0]));

    // A guard does not keep its bus alive, and outliving it is harmless.
    let short = new_bus();
    let guard = short
        .subscribe_scoped("session.*", 0, count(&seen))
        .unwrap();
    drop(short);
    drop(guard);
}

#[tokio::test]
async fn a_scoped_attachment_detaches_its_service_when_dropped() {
    let bus = new_bus();
    let session = Arc::new(Session::default());
    {
        let _scope = bus.scope_attachment(bus.attach(session.clone()).unwrap());
        bus.emit(ping()).await;
        assert_eq!(session.seen.load(Ordering::SeqCst), 1);
    }
    assert_eq!(bus.emit(ping()).await.ran(), 0);
    assert_eq!(session.seen.load(Ordering::SeqCst), 1);
    assert_eq!(
        Arc::strong_count(&session),
        1,
        "the bus let go of the service"
    );
}

#[tokio::test]
async fn a_weakly_attached_service_ends_when_it_is_dropped() {
    let bus = new_bus();
    let session = Arc::new(Session::default());
    let attachment = bus.attach_weak(&session).unwrap();
    assert_eq!(attachment.len(), 1);
    assert_eq!(Arc::strong_count(&session), 1, "the bus holds it weakly");
    bus.emit(ping()).await;
    bus.publish(ping()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .unwrap();
    assert_eq!(session.seen.load(Ordering::SeqCst), 2);

    let handlers = format!("{bus:?}");
    drop(session);
    // The first event after the drop finds the service gone: nothing runs
    // and its handlers remove themselves.
    bus.publish(ping()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), bus.wait_idle())
        .await
        .unwrap();
    assert_eq!(bus.emit(ping()).await.ran(), 0);
    assert_ne!(
        format!("{bus:?}"),
        handlers,
        "the handler was removed: {bus:?}"
    );
    // Detaching it by hand afterwards finds nothing left to remove.
    assert_eq!(bus.detach(attachment), 0);
}
