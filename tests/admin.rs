//! One dead-letter API over every store: a conformance body run against
//! the bus's dead letters, the outbox's (on SQLite, PostgreSQL and
//! MariaDB) and a Redis stream's; then the operator status across them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use common::each_backend;
use earn::admin::Admin;
use earn::nats::{NatsSettings, NatsStreams};
use earn::redis::{RedisSettings, RedisStreams};
use earn::{
    DeadLetter, DeadLetterFilter, DeadLetters, Event, EventBus, HandlerError, PageRequest,
    RetryPolicy,
};
use redis::AsyncCommands as _;

/// The names the conformance body expects, seeded oldest first.
const NAMES: [&str; 3] = ["conf.order.created", "conf.order.paid", "conf.user.created"];

async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

fn all() -> DeadLetterFilter {
    DeadLetterFilter::default()
}

async fn ids(source: &dyn DeadLetters, filter: &DeadLetterFilter) -> Vec<String> {
    source
        .list(filter, PageRequest::first(100))
        .await
        .unwrap()
        .into_iter()
        .map(|letter| letter.id)
        .collect()
}

/// What every source promises, on a source seeded with one dead letter per
/// name of [`NAMES`], in that order. `heal` makes a requeued event
/// deliverable; `redelivered` says when it was.
async fn conformance(
    source: &dyn DeadLetters,
    heal: impl Fn(),
    redelivered: impl AsyncFn() -> bool,
) {
    let name = source.source();
    // Counts and lists agree, oldest first, every record naming its source.
    assert_eq!(source.count(&all()).await.unwrap(), 3, "{name}");
    let letters = source.list(&all(), PageRequest::first(10)).await.unwrap();
    let names: Vec<&str> = letters.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, NAMES, "{name}: oldest first");
    for letter in &letters {
        assert_eq!(letter.source, name);
        assert!(letter.attempts >= 1, "{letter}");
        assert!(!letter.reason.is_empty(), "{letter}");
        assert!(letter.first_failed_at <= letter.last_failed_at, "{letter}");
        assert!(letter.last_failed_at <= SystemTime::now(), "{letter}");
        assert_eq!(letter.event.is_some(), letter.raw.is_none(), "{letter}");
    }
    assert!(
        letters
            .windows(2)
            .all(|w| w[0].last_failed_at <= w[1].last_failed_at)
    );

    // Pages cover the list without overlap.
    let first = source.list(&all(), PageRequest::page(1, 2)).await.unwrap();
    let second = source.list(&all(), PageRequest::page(2, 2)).await.unwrap();
    let third = source.list(&all(), PageRequest::page(3, 2)).await.unwrap();
    assert_eq!(
        (first.len(), second.len(), third.len()),
        (2, 1, 0),
        "{name}"
    );
    let paged: Vec<&DeadLetter> = first.iter().chain(&second).collect();
    assert_eq!(paged, letters.iter().collect::<Vec<_>>(), "{name}");

    // Filters: a name, a prefix, a handler, an age; counts agree with lists.
    let filters = [
        (all().event("conf.order.paid"), vec![1]),
        (all().event("conf.order.**"), vec![0, 1]),
        (all().event("conf.**"), vec![0, 1, 2]),
        (all().event("other.**"), vec![]),
        (all().handler("nobody"), vec![]),
        (
            all().failed_before(SystemTime::now() - Duration::from_secs(3600)),
            vec![],
        ),
        (
            all().failed_after(SystemTime::now() - Duration::from_secs(3600)),
            vec![0, 1, 2],
        ),
    ];
    for (filter, expected) in &filters {
        let wanted: Vec<String> = expected.iter().map(|&i| letters[i].id.clone()).collect();
        assert_eq!(ids(source, filter).await, wanted, "{name}: {filter:?}");
        assert_eq!(
            source.count(filter).await.unwrap(),
            wanted.len() as u64,
            "{name}: {filter:?}"
        );
    }
    for letter in &letters {
        if let Some(handler) = &letter.handler {
            let first_handler = handler.split(", ").next().unwrap();
            let with = ids(source, &all().handler(first_handler)).await;
            assert!(with.contains(&letter.id), "{name}: handler {first_handler}");
        }
    }
    let bad = source.count(&all().event("*.paid")).await.unwrap_err();
    assert!(matches!(bad, earn::Error::InvalidFilter { .. }), "{bad}");

    // One by id.
    assert_eq!(
        source.get(&letters[1].id).await.unwrap().as_ref(),
        Some(&letters[1])
    );
    assert_eq!(source.get("no-such-id").await.unwrap(), None);

    // Delete one: gone, and a second delete says so.
    source.delete(&letters[2].id).await.unwrap();
    assert_eq!(source.count(&all()).await.unwrap(), 2);
    let gone = source.delete(&letters[2].id).await.unwrap_err();
    assert!(matches!(gone, earn::Error::NoDeadLetter { .. }), "{gone}");

    // Requeue one: back for delivery, no longer a dead letter.
    heal();
    source.requeue(&letters[0].id).await.unwrap();
    eventually(&format!("{name}: the requeued event"), async || {
        redelivered().await
    })
    .await;
    assert_eq!(ids(source, &all()).await, [letters[1].id.clone()]);
    let again = source.requeue(&letters[0].id).await.unwrap_err();
    assert!(matches!(again, earn::Error::NoDeadLetter { .. }), "{again}");

    // Purge by filter, then all.
    assert_eq!(source.purge(&all().event("other.**")).await.unwrap(), 0);
    assert_eq!(
        source.purge(&all().event("conf.order.**")).await.unwrap(),
        1
    );
    assert_eq!(source.purge(&all()).await.unwrap(), 0);
    assert_eq!(source.count(&all()).await.unwrap(), 0);
}

#[tokio::test]
async fn the_bus_keeps_the_dead_letter_promises() {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let healthy = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(AtomicU32::new(0));
    let (h, n) = (healthy.clone(), handled.clone());
    bus.subscribe_sync("conf.**", 0, move |_: &Event| {
        if h.load(Ordering::SeqCst) {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        } else {
            Err(HandlerError::msg("gateway down"))
        }
    })
    .unwrap();
    for name in NAMES {
        bus.publish(Event::new(name, &1).unwrap()).await.unwrap();
        bus.wait_idle().await;
    }
    let source = bus.dead_letter_source();
    conformance(
        &source,
        || healthy.store(true, Ordering::SeqCst),
        async || handled.load(Ordering::SeqCst) == 1,
    )
    .await;
}

/// Dead letters written as the relay writes them, one millisecond apart;
/// the last one is not an event at all.
async fn seed_outbox(db: &earn::Db) {
    let rows: Vec<(String, &str, String)> = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let stored = if i < 2 {
                common::stored_event(name, i)
            } else {
                "not json".to_owned()
            };
            (format!("conf-{i}"), *name, stored)
        })
        .collect();
    let rows: Vec<(&str, &str, String)> = rows
        .iter()
        .map(|(id, name, stored)| (id.as_str(), *name, stored.clone()))
        .collect();
    common::seed_outbox_dead_letters(db, &rows, Duration::from_secs(1), Duration::from_millis(1))
        .await;
}

#[tokio::test]
async fn the_outbox_keeps_the_dead_letter_promises() {
    each_backend(|db| async move {
        seed_outbox(&db).await;
        let source = db.outbox_dead_letters();
        conformance(
            &source,
            || {},
            async || db.outbox_backlog().await.unwrap() == 1,
        )
        .await;
        db.execute_unprepared("DELETE FROM earn_outbox")
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_nats_stream_keeps_the_dead_letter_promises() {
    let Some(url) = common::nats_url() else {
        return;
    };
    let stream = format!("earn-conformance-{}", uuid::Uuid::new_v4().simple());
    let streams = NatsStreams::connect(&url, NatsSettings::new(stream.as_str(), "ops"))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(streams.client().clone());
    for (i, name) in NAMES.iter().enumerate() {
        let event = serde_json::to_vec(&Event::new(*name, &i).unwrap()).unwrap();
        let mut headers = async_nats::HeaderMap::new();
        // The last one is not an event: no version header.
        let payload = if i < 2 {
            headers.insert("Earn-Version", "1");
            event
        } else {
            b"{oops".to_vec()
        };
        headers.insert("Earn-Name", *name);
        headers.insert("Earn-Reason", "handler billing gave up");
        headers.insert("Earn-Deliveries", "3");
        headers.insert("Earn-Group", "ops");
        headers.insert("Earn-Gave-Up", "billing");
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        headers.insert("Earn-Failed-At", at.as_millis().to_string().as_str());
        js.publish_with_headers(format!("{stream}_dead.ops"), headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let source = streams.dead_letter_source();
    assert_eq!(source.source(), format!("nats:{stream}"));
    conformance(
        &source,
        || {},
        async || {
            let mut events = js.get_stream(&stream).await.unwrap();
            events.info().await.unwrap().state.messages == 1
        },
    )
    .await;
    common::delete_nats_streams(&url, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_a_nats_groups_lag() {
    let Some(url) = common::nats_url() else {
        return;
    };
    let stream = format!("earn-status-{}", uuid::Uuid::new_v4().simple());
    let streams = NatsStreams::connect(&url, NatsSettings::new(stream.as_str(), "ops"))
        .await
        .unwrap();
    for n in 0..2 {
        streams
            .publish(&Event::new("order.paid", &n).unwrap())
            .await
            .unwrap();
    }
    streams
        .publish_delayed(
            &Event::new("order.remind", &0).unwrap(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let admin = earn::admin::Admin::new().nats(streams.clone());
    let shown = admin.status().await.unwrap().to_string();
    assert!(
        shown.contains(&format!(
            "nats {stream} (group ops): 2 messages, 0 pending, unknown unread, 1 delayed"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("dead letters in nats:{stream}: 0")),
        "{shown}"
    );

    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    bus.subscribe_sync("order.*", 0, |_: &Event| {}).unwrap();
    let consumer = streams.consume(bus).await.unwrap();
    eventually("the group caught up", async || {
        let status = admin.status().await.unwrap();
        let lag = status.nats[0].lag;
        lag.unread == Some(0) && lag.pending == 0
    })
    .await;
    consumer.shutdown(Duration::from_secs(5)).await;
    common::delete_nats_streams(&url, &stream).await;
}

#[tokio::test]
async fn a_redis_stream_keeps_the_dead_letter_promises() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let _serial = common::serial().await;
    let stream = format!("earn:conformance:{}", uuid::Uuid::new_v4());
    let streams = RedisStreams::connect(&url, RedisSettings::new(stream.as_str(), "ops"))
        .await
        .unwrap();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let dead = format!("{stream}:dead");
    for (i, name) in NAMES.iter().enumerate() {
        let event = serde_json::to_string(&Event::new(*name, &i).unwrap()).unwrap();
        // The last one is not an event: no `v` field.
        let mut fields = vec![("name", name.to_string())];
        if i < 2 {
            fields.extend([("v", "1".to_owned()), ("event", event)]);
        } else {
            fields.push(("event", "{oops".to_owned()));
        }
        fields.extend([
            ("dead:reason", "handler billing gave up".to_owned()),
            ("dead:deliveries", "3".to_owned()),
            ("dead:group", "ops".to_owned()),
            ("dead:entry", format!("{}-0", i + 1)),
            ("dead:gave_up", "billing".to_owned()),
            ("dead:finished", String::new()),
        ]);
        let _: String = raw.xadd(&dead, "*", &fields).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let source = streams.dead_letter_source();
    assert_eq!(source.source(), format!("redis:{stream}"));
    conformance(
        &source,
        || {},
        async || {
            let length: u64 = redis::cmd("XLEN")
                .arg(&stream)
                .query_async(&mut raw.clone())
                .await
                .unwrap();
            length == 1
        },
    )
    .await;
    let _: () = raw
        .del(&[
            stream.clone(),
            dead,
            format!("{stream}:delayed"),
            format!("{stream}:marks"),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn the_status_counts_every_source_without_reading_the_letters() {
    let Some(redis_url) = common::redis_url() else {
        return;
    };
    each_backend(|db| {
        let redis_url = redis_url.clone();
        async move {
            let bus = EventBus::builder()
                .without_registered_handlers()
                .retry(RetryPolicy::none())
                .build()
                .unwrap();
            bus.subscribe_sync("job.fail", 0, |_: &Event| {
                Err::<(), _>(HandlerError::permanent(std::io::Error::other(
                    "gateway down",
                )))
            })
            .unwrap();
            let db = db.with_bus(bus.clone());
            seed_outbox(&db).await;
            db.execute_unprepared(
                "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) \
                 VALUES ('waiting', 'job.ok', 'x', 0, 4102444800000)",
            )
            .await
            .unwrap();
            bus.publish(Event::new("job.fail", &1).unwrap())
                .await
                .unwrap();
            bus.wait_idle().await;
            let stream = format!("earn:status:{}", uuid::Uuid::new_v4());
            let streams =
                RedisStreams::connect(&redis_url, RedisSettings::new(stream.as_str(), "ops"))
                    .await
                    .unwrap();

            let admin = Admin::new()
                .database(db.clone())
                .bus(bus.clone())
                .stream(streams.clone());
            let status = admin.status().await.unwrap();
            assert_eq!(status.bus_in_flight, Some(0));
            let outbox = status.outbox.expect("an outbox");
            assert_eq!(outbox.backlog, 1);
            assert!(outbox.oldest.expect("a waiting row") > Duration::from_secs(3600));
            let counts: Vec<(String, u64)> = status
                .dead_letters
                .iter()
                .map(|s| (s.source.clone(), s.dead_letters))
                .collect();
            assert_eq!(
                counts,
                [
                    ("outbox".to_owned(), 3),
                    ("bus".to_owned(), 1),
                    (format!("redis:{stream}"), 0)
                ]
            );
            assert_eq!(status.dead_letter_total(), 4);
            let shown = status.to_string();
            assert!(shown.contains("outbox: 1 waiting, oldest"), "{shown}");
            assert!(shown.contains("dead letters in outbox: 3"), "{shown}");
            assert!(
                shown.contains(&format!("redis {stream} (group ops)")),
                "{shown}"
            );

            // Sources by name, and a clear error for one that is not there.
            let outbox = admin.source_named("outbox").unwrap();
            assert_eq!(outbox.count(&all()).await.unwrap(), 3);
            let letter = admin.dead_letter("outbox", "conf-1").await.unwrap();
            assert_eq!(letter.name, "conf.order.paid");
            let missing = admin.source_named("kafka").unwrap_err();
            assert!(
                missing
                    .to_string()
                    .contains("the sources are: outbox, bus, redis:"),
                "{missing}"
            );
            db.execute_unprepared("DELETE FROM earn_outbox")
                .await
                .unwrap();
            db.execute_unprepared("DELETE FROM earn_outbox_dead")
                .await
                .unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn a_database_without_the_outbox_says_how_to_install_it() {
    each_backend(|db| async move {
        db.execute_unprepared("DROP TABLE IF EXISTS earn_outbox")
            .await
            .unwrap();
        db.execute_unprepared("DROP TABLE IF EXISTS earn_outbox_dead")
            .await
            .unwrap();
        let admin = Admin::new().database(db.clone());
        let error = admin.status().await.unwrap_err();
        assert!(
            matches!(
                error,
                earn::Error::MissingTable {
                    table: "earn_outbox",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("install_outbox"), "{error}");
        let dead = db.outbox_dead_letters().count(&all()).await.unwrap_err();
        assert!(
            matches!(
                dead,
                earn::Error::MissingTable {
                    table: "earn_outbox_dead",
                    ..
                }
            ),
            "{dead:?}"
        );
        db.install_outbox().await.unwrap();
        assert_eq!(admin.status().await.unwrap().dead_letter_total(), 0);
    })
    .await;
}
