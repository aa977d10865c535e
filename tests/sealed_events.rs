//! Sealed events (feature `encryption`): payloads encrypted with
//! AES-256-GCM and events signed with HMAC-SHA256, by pattern.
//!
//! The durable bodies run on every transport that stores events through
//! one helper (`each_route`): the outbox on SQLite, PostgreSQL and
//! MariaDB, Redis Streams and NATS JetStream. Each checks what is stored
//! (no plain text), what the handlers get (plain text), and what a
//! consumer does with an event it cannot open (a dead letter with the
//! reason, still sealed). The in-memory bus has tests of its own below.
//!
//! No test prints a payload or a key: assertions on them say what went
//! wrong without quoting them, and every test checks the log too.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::nats::{NatsSettings, NatsStreams};
use earn::redis::{RedisSettings, RedisStreams};
use earn::{
    Db, DeadLetter, DeadLetterFilter, DeadLetters, Envelope, EnvelopeProblem, Event, EventBus,
    HandlerError, KeyRing, Outbox, OutboxMode, OutboxRelay, PageRequest, RetryPolicy,
};

/// What must never be seen outside a handler.
const SECRET: &str = "4111-1111-1111-1111";

fn k1() -> KeyRing {
    KeyRing::new("k1", &[1u8; 32]).unwrap()
}

/// `k2` current, `k1` kept to open what it sealed.
fn k2_then_k1() -> KeyRing {
    KeyRing::new("k2", &[2u8; 32])
        .unwrap()
        .with_old("k1", &[1u8; 32])
        .unwrap()
}

fn payment(name: &str) -> Event {
    Event::new(name, &serde_json::json!({ "card": SECRET, "cents": 1250 })).unwrap()
}

fn envelope(keys: &KeyRing) -> Envelope {
    Envelope::new()
        .encrypt("payment.*", keys)
        .unwrap()
        .sign("**", keys)
        .unwrap()
}

fn no_secret_in(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "{what} holds the plain-text card number ({} bytes checked)",
        text.len()
    );
    for key in [[1u8; 32], [2u8; 32], [3u8; 32]] {
        assert!(
            !text.contains(&format!("{key:?}")),
            "{what} holds a key's bytes"
        );
    }
}

fn bus(envelope: Envelope) -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .workers(2)
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
            jitter: 0.0,
        })
        .envelope(envelope)
        .build()
        .unwrap()
}

/// A consumer bus whose one handler records what it is given.
fn recording_bus(envelope: Envelope) -> (EventBus, Arc<Mutex<Vec<Event>>>) {
    let bus = bus(envelope);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = seen.clone();
    bus.subscribe_sync("**", 0, move |event: &Event| {
        into.lock().unwrap().push(event.clone());
    })
    .unwrap();
    (bus, seen)
}

// ------------------------------------------------------------ the helper

/// A transport under test: a producer sealing with one envelope, and a
/// consumer whose bus opens with another.
enum Route {
    Outbox { name: &'static str, url: String },
    Redis(String),
    Nats(String),
}

enum Producer {
    Outbox(Db),
    Redis(RedisStreams),
    Nats(NatsStreams),
}

enum Consuming {
    Outbox(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    Redis(earn::redis::Consumer),
    Nats(earn::nats::Consumer),
}

struct Pipe {
    route: Route,
    stream: String,
    db: Option<Db>,
    producer: Producer,
    bus: EventBus,
    seen: Arc<Mutex<Vec<Event>>>,
    consuming: Option<Consuming>,
    /// NATS: the sequences of what was published, to read it back.
    sequences: Mutex<Vec<u64>>,
}

async fn each_route<F, Fut>(body: F)
where
    F: Fn(Route) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _serial = common::serial().await;
    let mut routes = Vec::new();
    for (name, url) in common::backends() {
        let url = if name == "sqlite" {
            common::sqlite_file("sealed")
        } else {
            url
        };
        routes.push(Route::Outbox { name, url });
    }
    routes.extend(common::redis_url().map(Route::Redis));
    routes.extend(common::nats_url().map(Route::Nats));
    for route in routes {
        eprintln!("--- on {}", route.name());
        body(route).await;
    }
}

impl Route {
    fn name(&self) -> String {
        match self {
            Route::Outbox { name, .. } => format!("the outbox on {name}"),
            Route::Redis(_) => "redis streams".into(),
            Route::Nats(_) => "nats jetstream".into(),
        }
    }
}

impl Pipe {
    /// Producer sealing with `sealing`; consumer opening with `opening`
    /// (not yet consuming).
    async fn open(route: Route, sealing: Envelope, opening: Envelope) -> Pipe {
        let (bus, seen) = recording_bus(opening);
        let stream = format!("earn-sealed-{}", uuid::Uuid::new_v4().simple());
        let db = match &route {
            Route::Outbox { name, url } => {
                let db = common::connect(name, url).await.with_outbox(Outbox {
                    mode: OutboxMode::Relay,
                    ..Outbox::default()
                });
                db.install_outbox().await.unwrap();
                db.execute_unprepared("DELETE FROM earn_outbox")
                    .await
                    .unwrap();
                Some(db)
            }
            _ => None,
        };
        let producer = producer(&route, &stream, db.as_ref(), sealing).await;
        Pipe {
            route,
            stream,
            db,
            producer,
            bus,
            seen,
            consuming: None,
            sequences: Mutex::new(Vec::new()),
        }
    }

    /// From now on events are sealed with `sealing`.
    async fn reseal(&mut self, sealing: Envelope) {
        self.producer = producer(&self.route, &self.stream, self.db.as_ref(), sealing).await;
    }

    async fn publish(&self, event: Event) {
        match &self.producer {
            Producer::Outbox(db) => {
                let mut tx = db.begin().await.unwrap();
                tx.raise(event).unwrap();
                tx.commit().await.unwrap();
            }
            Producer::Redis(streams) => {
                streams.publish(&event).await.unwrap();
            }
            Producer::Nats(streams) => {
                let sequence = streams.publish(&event).await.unwrap();
                self.sequences.lock().unwrap().push(sequence);
            }
        }
    }

    /// Everything stored for the events published so far, as text (call
    /// before `consume`: the outbox deletes handled rows).
    async fn stored(&self) -> String {
        match &self.producer {
            Producer::Outbox(db) => common::outbox_rows(db).await.join("\n"),
            Producer::Redis(_) => {
                let Route::Redis(url) = &self.route else {
                    unreachable!()
                };
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let reply: redis::Value = redis::cmd("XRANGE")
                    .arg(&self.stream)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let mut text = String::new();
                collect(&reply, &mut text);
                text
            }
            Producer::Nats(streams) => {
                let js = async_nats::jetstream::new(streams.client().clone());
                let stream = js.get_stream(self.stream.as_str()).await.unwrap();
                let mut text = String::new();
                let sequences = self.sequences.lock().unwrap().clone();
                for sequence in sequences {
                    let stored = stream.get_raw_message(sequence).await.unwrap();
                    text.push_str(&String::from_utf8_lossy(&stored.payload));
                    for (name, values) in stored.headers.iter() {
                        for value in values {
                            text.push_str(&format!("{name}: {value}\n"));
                        }
                    }
                }
                text
            }
        }
    }

    async fn consume(&mut self) {
        self.consuming = Some(match &self.route {
            Route::Outbox { .. } => {
                let relay = OutboxRelay::new(self.db.clone().unwrap(), self.bus.clone())
                    .poll_interval(Duration::from_millis(20));
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                Consuming::Outbox(
                    stop,
                    tokio::spawn(async move { relay.run_until(stopped).await }),
                )
            }
            Route::Redis(url) => {
                let settings = RedisSettings::new(self.stream.as_str(), "consumers")
                    .block(Duration::from_millis(100));
                let streams = RedisStreams::connect(url, settings).await.unwrap();
                Consuming::Redis(streams.consume(self.bus.clone()).await.unwrap())
            }
            Route::Nats(url) => {
                let settings = NatsSettings::new(self.stream.as_str(), "consumers");
                let streams = NatsStreams::connect(url, settings).await.unwrap();
                Consuming::Nats(streams.consume(self.bus.clone()).await.unwrap())
            }
        });
    }

    fn seen(&self) -> Vec<Event> {
        self.seen.lock().unwrap().clone()
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        let all = DeadLetterFilter::default();
        let page = PageRequest::first(100);
        match &self.producer {
            Producer::Outbox(_) => self.bus.dead_letter_source().list(&all, page).await,
            Producer::Redis(streams) => streams.dead_letter_source().list(&all, page).await,
            Producer::Nats(streams) => streams.dead_letter_source().list(&all, page).await,
        }
        .unwrap()
    }

    async fn wait_for(&self, handled: usize, dead: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (got, lost) = (self.seen().len(), self.dead_letters().await.len());
            if got >= handled && lost >= dead {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "on {}: {got} of {handled} events handled and {lost} of {dead} dead letters after 30 s",
                self.route.name()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn close(self) {
        match self.consuming {
            Some(Consuming::Outbox(stop, relay)) => {
                let _ = stop.send(());
                relay.await.unwrap();
            }
            Some(Consuming::Redis(consumer)) => {
                consumer.shutdown(Duration::from_secs(10)).await;
            }
            Some(Consuming::Nats(consumer)) => {
                consumer.shutdown(Duration::from_secs(10)).await;
            }
            None => {}
        }
        self.bus.shutdown(Duration::from_secs(10)).await;
        if let (Route::Nats(url), Producer::Nats(_)) = (&self.route, &self.producer) {
            common::delete_nats_streams(url, &self.stream).await;
        }
    }
}

async fn producer(route: &Route, stream: &str, db: Option<&Db>, sealing: Envelope) -> Producer {
    match route {
        Route::Outbox { .. } => {
            // The outbox seals with its destination's envelope.
            Producer::Outbox(db.cloned().unwrap().with_bus(bus(sealing)))
        }
        Route::Redis(url) => Producer::Redis(
            RedisStreams::connect(
                url,
                RedisSettings::new(stream, "producer").envelope(sealing),
            )
            .await
            .unwrap(),
        ),
        Route::Nats(url) => Producer::Nats(
            NatsStreams::connect(url, NatsSettings::new(stream, "producer").envelope(sealing))
                .await
                .unwrap(),
        ),
    }
}

fn collect(value: &redis::Value, into: &mut String) {
    match value {
        redis::Value::BulkString(bytes) => {
            into.push_str(&String::from_utf8_lossy(bytes));
            into.push('\n');
        }
        redis::Value::Array(items) => items.iter().for_each(|item| collect(item, into)),
        redis::Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            collect(k, into);
            collect(v, into);
        }),
        _ => {}
    }
}

fn by_name(events: &[Event], name: &str) -> Event {
    events
        .iter()
        .find(|event| event.name().as_str() == name)
        .cloned()
        .unwrap_or_else(|| panic!("no `{name}` event was handled"))
}

// ------------------------------------------------------- durable bodies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_where_stored_and_plain_for_the_handlers() {
    let log = common::capture();
    each_route(|route| async {
        let keys = k2_then_k1();
        let mut pipe = Pipe::open(route, envelope(&keys), envelope(&keys)).await;
        pipe.publish(payment("payment.captured").with_source("billing"))
            .await;
        pipe.publish(Event::new("order.placed", &serde_json::json!({"order": 7})).unwrap())
            .await;

        let stored = pipe.stored().await;
        no_secret_in("what the transport stores", &stored);
        assert!(
            stored.contains("earn-enc-key") && stored.contains("earn-sig"),
            "on {}: the stored events carry their key ids and signatures",
            pipe.route.name()
        );

        pipe.consume().await;
        pipe.wait_for(2, 0).await;
        let seen = pipe.seen();
        let paid = by_name(&seen, "payment.captured");
        assert!(
            paid.payload_json()["card"] == SECRET && paid.payload_json()["cents"] == 1250,
            "the handler gets the plain payload"
        );
        assert_eq!(paid.source(), Some("billing"));
        assert_eq!(paid.meta(earn::envelope::DECRYPTED), Some("k2"));
        assert_eq!(paid.meta(earn::envelope::ENCRYPTION_KEY), None);
        let placed = by_name(&seen, "order.placed");
        assert_eq!(placed.payload_json()["order"], 7, "a signed-only event");
        assert!(pipe.dead_letters().await.is_empty());
        pipe.close().await;
    })
    .await;
    no_secret_in("the log", &log.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_the_old_key_still_opens_what_it_sealed() {
    each_route(|route| async {
        let mut pipe = Pipe::open(route, envelope(&k1()), envelope(&k2_then_k1())).await;
        pipe.publish(payment("payment.before")).await;
        pipe.reseal(envelope(&k2_then_k1())).await;
        pipe.publish(payment("payment.after")).await;
        let stored = pipe.stored().await;
        for id in ["k1", "k2"] {
            assert!(
                stored.contains(&format!("\"earn-enc-key\":\"{id}\"")),
                "on {}: an event sealed with {id} is stored",
                pipe.route.name()
            );
        }
        pipe.consume().await;
        pipe.wait_for(2, 0).await;
        for name in ["payment.before", "payment.after"] {
            let event = by_name(&pipe.seen(), name);
            assert_eq!(event.payload_json()["cents"], 1250, "{name} opened");
        }
        assert_eq!(
            by_name(&pipe.seen(), "payment.before").meta(earn::envelope::DECRYPTED),
            Some("k1")
        );
        assert_eq!(
            by_name(&pipe.seen(), "payment.after").meta(earn::envelope::DECRYPTED),
            Some("k2")
        );
        pipe.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_opened_is_dead_lettered_sealed_with_the_reason() {
    let log = common::capture();
    each_route(|route| async {
        let keys = k1();
        let opening = Envelope::new()
            .encrypt("payment.*", &keys)
            .unwrap()
            .sign("audit.*", &keys)
            .unwrap();
        let mut pipe = Pipe::open(route, Envelope::new(), opening).await;

        // Sealed with another key under the same id.
        let impostor = KeyRing::new("k1", &[3u8; 32]).unwrap();
        pipe.reseal(Envelope::new().encrypt("**", &impostor).unwrap())
            .await;
        pipe.publish(payment("payment.captured")).await;
        // Sealed with a key this consumer never had.
        let unknown = KeyRing::new("k9", &[3u8; 32]).unwrap();
        pipe.reseal(Envelope::new().encrypt("**", &unknown).unwrap())
            .await;
        pipe.publish(payment("payment.refunded")).await;
        // Plain text where encryption is required; unsigned where a
        // signature is.
        pipe.reseal(Envelope::new()).await;
        pipe.publish(payment("payment.voided")).await;
        pipe.publish(Event::new("audit.logout", &1).unwrap()).await;
        // Signed by the key holder, then altered: the source is forged.
        let signing = Envelope::new().sign("**", &keys).unwrap();
        let forged = signing
            .seal(Event::new("audit.login", &1).unwrap().with_source("intern"))
            .unwrap()
            .with_source("billing");
        pipe.publish(forged).await;
        let genuine = signing
            .seal(Event::new("audit.ok", &1).unwrap().with_source("billing"))
            .unwrap();
        pipe.publish(genuine).await;

        pipe.consume().await;
        pipe.wait_for(1, 5).await;
        let seen = pipe.seen();
        assert_eq!(
            seen.iter()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>(),
            ["audit.ok"],
            "on {}: only the genuine event reaches the handler",
            pipe.route.name()
        );
        let dead = pipe.dead_letters().await;
        let reason = |name: &str| {
            dead.iter()
                .find(|letter| letter.name == name)
                .map(|letter| letter.reason.clone())
                .unwrap_or_else(|| panic!("no dead letter for `{name}` on {}", pipe.route.name()))
        };
        let expected = [
            (
                "payment.captured",
                EnvelopeProblem::Undecryptable("k1".into()),
            ),
            ("payment.refunded", EnvelopeProblem::UnknownKey("k9".into())),
            (
                "payment.voided",
                EnvelopeProblem::NotEncrypted("payment.*".into()),
            ),
            ("audit.logout", EnvelopeProblem::Unsigned("audit.*".into())),
            ("audit.login", EnvelopeProblem::BadSignature("k1".into())),
        ];
        for (name, problem) in expected {
            let reason = reason(name);
            assert!(
                reason.contains(&problem.to_string()),
                "on {}: `{name}` was dead-lettered for {reason:?}, expected {problem}",
                pipe.route.name()
            );
        }
        for letter in &dead {
            no_secret_in("a dead letter's reason", &letter.reason);
            // `payment.voided` was sent in plain text: there is nothing to
            // keep secret in it.
            if let Some(event) = &letter.event
                && event.name().as_str() != "payment.voided"
            {
                no_secret_in(
                    "a dead letter's event",
                    &serde_json::to_string(event).unwrap(),
                );
            }
            if let Some(raw) = &letter.raw
                && !raw.contains("payment.voided")
            {
                no_secret_in("a dead letter's stored form", raw);
            }
        }
        pipe.close().await;
    })
    .await;
    no_secret_in("the log", &log.text());
}

// ------------------------------------------------------- in-memory bus

#[tokio::test]
async fn the_bus_queues_sealed_events_and_dead_letters_them_sealed() {
    let log = common::capture();
    let keys = k1();
    let bus = bus(envelope(&keys));
    let opened = Arc::new(Mutex::new(Vec::new()));
    let into = opened.clone();
    bus.subscribe("payment.*", 0, move |event: Event| {
        let into = into.clone();
        async move {
            into.lock()
                .unwrap()
                .push(event.payload_json()["card"] == SECRET);
            Err::<(), _>(HandlerError::msg("the ledger is down"))
        }
    })
    .unwrap();
    bus.publish(payment("payment.captured")).await.unwrap();
    bus.wait_idle().await;
    assert_eq!(
        *opened.lock().unwrap(),
        [true, true],
        "two attempts, each opened"
    );
    let dead = bus
        .dead_letter_source()
        .list(&DeadLetterFilter::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let event = dead[0].event.clone().unwrap();
    assert_eq!(event.meta(earn::envelope::ENCRYPTION_KEY), Some("k1"));
    no_secret_in("the dead letter", &serde_json::to_string(&event).unwrap());
    no_secret_in("the dead letter's Debug", &format!("{:?}", dead[0]));

    no_secret_in("the log", &log.text());
}

#[tokio::test]
async fn emit_opens_what_is_sealed_and_requires_nothing_of_local_events() {
    let keys = k1();
    let (bus, seen) = recording_bus(envelope(&keys));
    let plain = bus.emit(payment("payment.local")).await;
    assert!(plain.is_ok(), "{plain:?}");
    let sealed = envelope(&keys).seal(payment("payment.sealed")).unwrap();
    assert!(bus.emit(sealed).await.is_ok());
    let impostor = Envelope::new()
        .encrypt("**", &KeyRing::new("k1", &[3u8; 32]).unwrap())
        .unwrap();
    let refused = bus
        .emit(impostor.seal(payment("payment.forged")).unwrap())
        .await;
    let [(handler, failure)] = refused.failed() else {
        panic!("one handler should have refused it: {refused:?}")
    };
    assert!(handler.starts_with("subscription#"));
    assert!(!failure.is_retryable());
    assert!(
        failure
            .to_string()
            .contains(&EnvelopeProblem::Undecryptable("k1".into()).to_string()),
        "{failure}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|event| event.payload_json()["cents"] == 1250)
    );
}

#[tokio::test]
async fn a_delivered_event_that_cannot_be_opened_fails_permanently_for_each_handler() {
    let keys = k1();
    let (bus, seen) = recording_bus(envelope(&keys));
    bus.subscribe_sync("payment.*", 5, |_: &Event| ()).unwrap();
    let delivery = bus.deliver(payment("payment.plain")).await.unwrap();
    assert_eq!(
        delivery.failures().len(),
        2,
        "both matching handlers gave up"
    );
    assert!(delivery.is_permanent());
    assert!(seen.lock().unwrap().is_empty());
    let delivery = bus
        .deliver(envelope(&keys).seal(payment("payment.sealed")).unwrap())
        .await
        .unwrap();
    assert!(delivery.is_ok());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_payload_of_the_wrong_type_is_reported_without_quoting_it() {
    let log = common::capture();
    let keys = k1();
    let bus = bus(envelope(&keys));
    bus.subscribe_sync("payment.*", 0, |event: &Event| {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Payment {
            card: u64,
        }
        event.payload::<Payment>().map(|_| ())
    })
    .unwrap();
    let delivery = bus
        .deliver(envelope(&keys).seal(payment("payment.captured")).unwrap())
        .await
        .unwrap();
    let [(_, failure)] = delivery.failures() else {
        panic!("the handler should have failed")
    };
    assert!(failure.to_string().contains("withheld"), "{failure}");
    no_secret_in("the failure", &failure.to_string());
    no_secret_in("the log", &log.text());
    // Without encryption, serde's words are kept: they help.
    let plain = Event::new("x.y", &serde_json::json!({"card": "abc"})).unwrap();
    let error = plain
        .payload::<std::collections::HashMap<String, u64>>()
        .unwrap_err();
    assert!(error.to_string().contains("invalid type"), "{error}");
}

#[test]
fn a_ciphertext_is_bound_to_its_event_and_tampering_is_caught() {
    let keys = k1();
    let envelope = envelope(&keys);
    let sealed = envelope.seal(payment("payment.a")).unwrap();
    let other = envelope.seal(payment("payment.b")).unwrap();
    // The ciphertext of `a` moved into `b` (re-signed by a key holder, so
    // only the encryption can tell).
    let mut moved = other.data().clone();
    moved.payload = sealed.payload_json().clone();
    moved.metadata.remove(earn::envelope::SIGNATURE);
    let moved = envelope.seal(Event::from_data(moved)).unwrap();
    assert_eq!(
        envelope.open(&moved).unwrap_err().problem,
        EnvelopeProblem::Undecryptable("k1".into())
    );
    // One character of the ciphertext changed.
    let mut altered = sealed.data().clone();
    let text = altered.payload.as_str().unwrap().to_owned();
    let flipped = if text.starts_with('A') { "B" } else { "A" };
    altered.payload = serde_json::Value::String(format!("{flipped}{}", &text[1..]));
    altered.metadata.remove(earn::envelope::SIGNATURE);
    let altered = envelope.seal(Event::from_data(altered)).unwrap();
    assert!(matches!(
        envelope.open(&altered).unwrap_err().problem,
        EnvelopeProblem::Undecryptable(_) | EnvelopeProblem::Malformed(_)
    ));
    // Sealing twice changes nothing; two seals of one payload differ.
    assert_eq!(envelope.seal(sealed.clone()).unwrap(), sealed);
    let again = envelope.seal(payment("payment.a")).unwrap();
    assert_ne!(
        again.payload_json(),
        sealed.payload_json(),
        "a fresh nonce each time"
    );
}

#[test]
fn bad_keys_are_refused_with_what_is_wrong_and_never_shown() {
    let short = KeyRing::new("k1", &[1u8; 16]).unwrap_err().to_string();
    assert!(
        short.contains("32 bytes") && short.contains("16"),
        "{short}"
    );
    let unnamed = KeyRing::new("", &[1u8; 32]).unwrap_err().to_string();
    assert!(unnamed.contains("1 to 64 characters"), "{unnamed}");
    let twice = k1().with_old("k1", &[2u8; 32]).unwrap_err().to_string();
    assert!(twice.contains("already holds"), "{twice}");
    let parsed = KeyRing::parse("k1=not base64!").unwrap_err().to_string();
    assert!(
        parsed.contains("k1") && parsed.contains("base64"),
        "{parsed}"
    );
    no_secret_in("a key ring's Debug", &format!("{:?}", k2_then_k1()));
    no_secret_in("an envelope's Debug", &format!("{:?}", envelope(&k1())));
    // Without `encryption` an envelope cannot be built, and a bus refuses
    // what is encrypted: covered by earn-core's own tests.
}
