//! Request/reply: `EventBus::request` in one process, and the `request`
//! of Redis Streams and NATS across processes (one body for both, through
//! `each_broker`): the reply is the one correlated with its request, a
//! request nobody answers times out with a clear error, and many requests
//! at once each get their own reply.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use earn::nats::{NatsSettings, NatsStreams};
use earn::redis::{RedisSettings, RedisStreams};
use earn::{BusError, Error, Event, EventBus, HandlerError};
use futures_util::future::join_all;

fn bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .workers(2)
        .build()
        .unwrap()
}

/// A bus that answers `math.double` with twice its number, ignores
/// `math.ignored`, and counts what it was asked.
fn responder() -> (EventBus, Arc<AtomicUsize>) {
    let bus = bus();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    bus.subscribe("math.double", 0, move |request: Event| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let n: i64 = request.payload()?;
            earn::reply::send(&request, &(n * 2)).await?;
            Ok::<_, HandlerError>(())
        }
    })
    .unwrap();
    let count = asked.clone();
    bus.subscribe_sync("math.ignored", 0, move |_: &Event| {
        count.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    (bus, asked)
}

fn check_reply(request: &Event, reply: &Event, expected: i64) {
    assert_eq!(reply.name().as_str(), "math.double.reply");
    assert_eq!(reply.payload::<i64>().unwrap(), expected);
    assert_eq!(reply.causation_id(), Some(request.id()));
    assert_eq!(reply.correlation_id(), request.correlation_id());
    assert_eq!(
        reply.meta(earn::reply::IN_REPLY_TO),
        Some(request.id().to_string().as_str())
    );
}

#[tokio::test]
async fn a_request_gets_the_reply_correlated_with_it() {
    let (bus, _) = responder();
    let request = Event::new("math.double", &21).unwrap();
    let reply = bus
        .request(request.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    check_reply(&request, &reply, 42);

    // Many at once: each its own.
    let requests: Vec<Event> = (0..100)
        .map(|n| Event::new("math.double", &n).unwrap())
        .collect();
    let replies = join_all(
        requests
            .iter()
            .map(|request| bus.request(request.clone(), Duration::from_secs(5))),
    )
    .await;
    for (n, (request, reply)) in requests.iter().zip(replies).enumerate() {
        check_reply(request, &reply.unwrap(), 2 * n as i64);
    }
}

#[tokio::test]
async fn a_request_nobody_answers_times_out_and_one_nobody_hears_fails_at_once() {
    let (bus, asked) = responder();
    let request = Event::new("math.ignored", &1).unwrap();
    let started = tokio::time::Instant::now();
    let error = bus
        .request(request.clone(), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        matches!(&error, BusError::NoReply { event, id, timeout }
            if event == "math.ignored" && *id == request.id() && *timeout == Duration::from_millis(200)),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("no reply to request `math.ignored`")
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the request was handled");

    let error = bus
        .request(
            Event::new("math.unknown", &1).unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BusError::NoResponder { event } if event == "math.unknown"),
        "{error:?}"
    );
}

#[tokio::test]
async fn replying_to_what_is_not_a_request_is_an_error_and_a_late_reply_is_dropped() {
    let bus = bus();
    let error = earn::reply::send(&Event::new("math.double", &1).unwrap(), &2)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Bus(BusError::NotARequest { event, .. }) if event == "math.double"),
        "{error:?}"
    );
    // A slow responder answers after the requester gave up: nothing fails.
    let replied = Arc::new(AtomicUsize::new(0));
    let done = replied.clone();
    bus.subscribe("math.slow", 0, move |request: Event| {
        let done = done.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            earn::reply::send(&request, &0).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    let error = bus
        .request(
            Event::new("math.slow", &1).unwrap(),
            Duration::from_millis(20),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, BusError::NoReply { .. }));
    bus.wait_idle().await;
    assert_eq!(replied.load(Ordering::SeqCst), 1);
}

// ------------------------------------------------------ across processes

/// A broker under test: a requester in one "process", a consumer whose
/// bus answers in another.
enum Broker {
    Redis(String),
    Nats(String),
}

enum Requester {
    Redis(RedisStreams),
    Nats(NatsStreams),
}

impl Requester {
    async fn request(&self, event: &Event, timeout: Duration) -> Result<Event, Error> {
        match self {
            Requester::Redis(streams) => streams.request(event, timeout).await,
            Requester::Nats(streams) => streams.request(event, timeout).await,
        }
    }
}

async fn each_broker<F, Fut>(body: F)
where
    F: Fn(Requester) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _serial = common::serial().await;
    let mut brokers = Vec::new();
    brokers.extend(common::redis_url().map(Broker::Redis));
    brokers.extend(common::nats_url().map(Broker::Nats));
    for broker in brokers {
        let stream = format!("earn-reply-{}", uuid::Uuid::new_v4().simple());
        let (bus, _) = responder();
        match &broker {
            Broker::Redis(url) => {
                eprintln!("--- on redis streams");
                let settings = RedisSettings::new(stream.as_str(), "responders")
                    .block(Duration::from_millis(100));
                let consuming = RedisStreams::connect(url, settings).await.unwrap();
                let consumer = consuming.consume(bus.clone()).await.unwrap();
                let requester =
                    RedisStreams::connect(url, RedisSettings::new(stream.as_str(), "requesters"))
                        .await
                        .unwrap();
                body(Requester::Redis(requester)).await;
                consumer.shutdown(Duration::from_secs(10)).await;
            }
            Broker::Nats(url) => {
                eprintln!("--- on nats jetstream");
                let consuming =
                    NatsStreams::connect(url, NatsSettings::new(stream.as_str(), "responders"))
                        .await
                        .unwrap();
                let consumer = consuming.consume(bus.clone()).await.unwrap();
                let requester =
                    NatsStreams::connect(url, NatsSettings::new(stream.as_str(), "requesters"))
                        .await
                        .unwrap();
                body(Requester::Nats(requester)).await;
                consumer.shutdown(Duration::from_secs(10)).await;
                common::delete_nats_streams(url, &stream).await;
            }
        }
        bus.shutdown(Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_processes_a_request_gets_its_reply_and_silence_times_out() {
    each_broker(|requester| async move {
        let request = Event::new("math.double", &21).unwrap();
        let reply = requester
            .request(&request, Duration::from_secs(10))
            .await
            .unwrap();
        check_reply(&request, &reply, 42);

        let requests: Vec<Event> = (0..20)
            .map(|n| Event::new("math.double", &n).unwrap())
            .collect();
        let replies = join_all(
            requests
                .iter()
                .map(|request| requester.request(request, Duration::from_secs(10))),
        )
        .await;
        for (n, (request, reply)) in requests.iter().zip(replies).enumerate() {
            check_reply(request, &reply.unwrap(), 2 * n as i64);
        }

        let ignored = Event::new("math.ignored", &1).unwrap();
        let error = requester
            .request(&ignored, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::Bus(BusError::NoReply { id, .. }) if *id == ignored.id()),
            "{error:?}"
        );
    })
    .await;
}

/// An `#[event_handler]` function answers without a handle on the bus.
#[earn::event_handler("stock.level")]
async fn stock_level(request: &Event) -> Result<(), HandlerError> {
    let sku: String = request.payload()?;
    earn::reply::send(request, &format!("{sku}: 3 left")).await?;
    Ok(())
}

#[tokio::test]
async fn an_event_handler_function_replies_with_reply_send() {
    let bus = EventBus::builder().build().unwrap();
    let reply = bus
        .request(
            Event::new("stock.level", "BOOK-1").unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(reply.payload::<String>().unwrap(), "BOOK-1: 3 left");
}
