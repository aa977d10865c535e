//! One conformance suite, written once and run against every transport:
//! the in-memory bus, the transactional outbox on SQLite, PostgreSQL and
//! MariaDB, Redis Streams (a consumer group per handler group, a
//! consumer per process) and NATS JetStream (a durable consumer per
//! handler group). Every assertion checks that no event id is
//! missing; duplicates are counted and reported, and allowed only where
//! the transport says it is at-least-once.

#[path = "../common/mod.rs"]
mod common;
#[allow(unreachable_pub, dead_code)]
mod harness;
#[allow(unreachable_pub, dead_code)]
mod transports;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::HandlerError;
use harness::{Seen, Transport, event, publish_many};

/// How long any test waits for its events before failing.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `body` on every transport, one after the other.
async fn each_transport<F, Fut>(ordered: bool, body: F)
where
    F: Fn(Arc<dyn Transport>) -> Fut,
    Fut: Future<Output = ()>,
{
    let _serial = common::serial().await;
    let mut all: Vec<Arc<dyn Transport>> = vec![Arc::new(transports::Memory::new(ordered))];
    for (name, url) in common::backends() {
        let url = if name == "sqlite" {
            // Relays and publishers on several connections share one file.
            common::sqlite_file("conformance")
        } else {
            url
        };
        let db = common::connect(name, &url).await;
        all.push(Arc::new(transports::OutboxTransport::new(name, db).await));
    }
    if let Some(url) = common::redis_url() {
        all.push(Arc::new(transports::RedisTransport::new(&url).await));
    }
    if let Some(url) = common::nats_url() {
        all.push(Arc::new(transports::NatsTransport::new(&url).await));
    }
    for transport in all {
        eprintln!("--- on {}", transport.name());
        body(transport).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_receive() {
    each_transport(false, |t| async move {
        let seen = Seen::default();
        let process = t
            .start("p1", vec![("g", seen.recorder("g", "p1"))], false)
            .await;
        let ids = publish_many(&*t, 20).await;
        seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        for delivery in seen.of_group("g") {
            let n = ids.iter().position(|id| *id == delivery.id).unwrap();
            assert_eq!(
                delivery.payload,
                serde_json::json!({ "n": n }),
                "{}",
                t.name()
            );
        }
        process.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_published_at_once_arrives_whole_and_once() {
    each_transport(false, |t| async move {
        let seen = Seen::default();
        let process = t
            .start("p1", vec![("g", seen.recorder("g", "p1"))], false)
            .await;
        let batch: Vec<earn::Event> = (0..300).map(event).collect();
        let ids: Vec<_> = batch.iter().map(earn::Event::id).collect();
        t.publish_all(batch).await;
        seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        assert_eq!(seen.of_group("g").len(), 300, "each once: {}", t.name());
        process.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_publishers() {
    each_transport(false, |t| async move {
        let seen = Seen::default();
        let process = t
            .start("p1", vec![("g", seen.recorder("g", "p1"))], false)
            .await;
        let mut publishers = tokio::task::JoinSet::new();
        for publisher in 0..50 {
            let t = t.clone();
            publishers.spawn(async move {
                let mut ids = Vec::with_capacity(100);
                for n in 0..100 {
                    let event = event(publisher * 100 + n);
                    ids.push(event.id());
                    t.publish(event).await;
                }
                ids
            });
        }
        let mut ids = Vec::with_capacity(5000);
        while let Some(published) = publishers.join_next().await {
            ids.extend(published.unwrap());
        }
        assert_eq!(ids.len(), 5000);
        seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        process.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_after_a_handler_error() {
    each_transport(false, |t| async move {
        let seen = Seen::default();
        let failed_once = Arc::new(Mutex::new(HashSet::new()));
        let failed = failed_once.clone();
        let handler = seen.handler("g", "p1", move |event| {
            let first = failed.lock().unwrap().insert(event.id());
            async move {
                if first {
                    Err(HandlerError::retryable(std::io::Error::other("flaky")))
                } else {
                    Ok(())
                }
            }
        });
        let process = t.start("p1", vec![("g", handler)], false).await;
        let ids = publish_many(&*t, 10).await;
        seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        let failed = failed_once.lock().unwrap().clone();
        assert_eq!(
            failed.len(),
            ids.len(),
            "{}: every event failed once first",
            t.name()
        );
        process.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_second_delivery_before_the_first_is_acknowledged() {
    each_transport(false, |t| async move {
        let seen = Seen::default();
        let in_handler = Arc::new(Mutex::new(HashSet::new()));
        let slow = |process: &'static str| {
            let in_handler = in_handler.clone();
            seen.handler("g", process, move |event| {
                let fresh = in_handler.lock().unwrap().insert(event.id());
                assert!(
                    fresh,
                    "event {} delivered again while being handled",
                    event.id()
                );
                async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(())
                }
            })
        };
        let p1 = t.start("p1", vec![("g", slow("p1"))], false).await;
        let p2 = t.start("p2", vec![("g", slow("p2"))], false).await;
        let ids = publish_many(&*t, 10).await;
        let duplicates = seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        assert_eq!(duplicates, 0, "{}: redelivered before the ack", t.name());
        p1.close().await;
        p2.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_carries_on_after_a_consumer_closes() {
    each_transport(false, |t| async move {
        let seen = Seen::default();
        let p1 = t
            .start("p1", vec![("g", seen.recorder("g", "p1"))], false)
            .await;
        let p2 = t
            .start("p2", vec![("g", seen.recorder("g", "p2"))], false)
            .await;
        let mut ids = publish_many(&*t, 20).await;
        seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        p1.close().await;
        let later = publish_many(&*t, 20).await;
        ids.extend(&later);
        seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        for delivery in seen.of_group("g") {
            if later.contains(&delivery.id) {
                assert_eq!(
                    delivery.process,
                    "p2",
                    "{}: a closed consumer got an event",
                    t.name()
                );
            }
        }
        p2.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_consumer_sees_publish_order() {
    each_transport(true, |t| async move {
        let seen = Seen::default();
        let process = t
            .start("p1", vec![("g", seen.recorder("g", "p1"))], true)
            .await;
        let ids = publish_many(&*t, 50).await;
        seen.expect_all(&*t, "g", &ids, PATIENCE).await;
        let mut order = Vec::new();
        for delivery in seen.of_group("g") {
            if !order.contains(&delivery.id) {
                order.push(delivery.id);
            }
        }
        assert_eq!(order, ids, "{}: handled out of publish order", t.name());
        process.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_gets_everything_and_its_consumers_share() {
    each_transport(false, |t| async move {
        let seen = Seen::default();
        let pace = |group: &'static str, process: &'static str| {
            seen.handler(group, process, |_| async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            })
        };
        let p1 = t
            .start(
                "p1",
                vec![
                    ("billing", pace("billing", "p1")),
                    ("mail", pace("mail", "p1")),
                ],
                false,
            )
            .await;
        let p2 = t
            .start(
                "p2",
                vec![
                    ("billing", pace("billing", "p2")),
                    ("mail", pace("mail", "p2")),
                ],
                false,
            )
            .await;
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.extend(publish_many(&*t, 20).await);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        for group in ["billing", "mail"] {
            seen.expect_all(&*t, group, &ids, PATIENCE).await;
            let by: HashSet<String> = seen
                .of_group(group)
                .into_iter()
                .map(|d| d.process)
                .collect();
            assert_eq!(
                by.len(),
                2,
                "{}: group {group} was not shared by its consumers: {by:?}",
                t.name()
            );
        }
        p1.close().await;
        p2.close().await;
    })
    .await;
}
