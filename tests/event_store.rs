//! The event store on every database: appends with expected versions,
//! idempotent retries, reads in a global order no out-of-order commit can
//! make a reader skip, catch-up subscriptions with transactional
//! checkpoints, projections (inline, async, rebuilt), model streams,
//! upcasters, snapshots and retention.

mod common;
#[path = "support/store.rs"]
mod store_support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{each_backend, each_backend_on_files, fresh};
use earn::prelude::*;
use earn::store::{Aggregate, EventStore, Expected, Projection, Recorded};
use futures_util::TryStreamExt;
use serde_json::json;
use store_support::{Applied, Apply, applied, fresh_store};

const PATIENCE: Duration = Duration::from_secs(30);

fn event(name: &str, payload: serde_json::Value) -> Event {
    Event::new(name, &payload).expect("event")
}

fn line(price: i64) -> Event {
    event("order.line_added", json!({ "price": price }))
}

async fn all(store: &EventStore) -> Vec<Recorded> {
    store
        .read_all(0, usize::MAX)
        .try_collect()
        .await
        .expect("read_all")
}

async fn stream(store: &EventStore, name: &str) -> Vec<Recorded> {
    store
        .read_stream(name, 0)
        .try_collect()
        .await
        .expect("read_stream")
}

#[tokio::test]
async fn appends_are_read_back_by_stream_and_in_the_global_order() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        let placed = event("order.placed", json!({ "customer": "ada" }));
        let first = store
            .append("order-1", Expected::NoStream, vec![placed.clone()])
            .await
            .expect("append to a new stream");
        assert_eq!(first.version, 1);
        assert!(first.written);
        let lines = store
            .append("order-1", Expected::Exact(1), vec![line(5), line(7)])
            .await
            .expect("append at the right version");
        assert_eq!(lines.version, 3);
        assert_eq!(lines.positions.len(), 2);
        assert!(lines.positions[0] < lines.positions[1]);
        assert!(first.positions[0] < lines.positions[0]);
        store
            .append("order-2", Expected::Any, vec![line(1)])
            .await
            .expect("append with any version");
        let many = store
            .append("order-3", Expected::Any, vec![line(1), line(2)])
            .await
            .unwrap();
        let more = store
            .append("order-3", Expected::Any, vec![line(3), line(4)])
            .await
            .unwrap();
        assert_eq!((many.version, more.version), (2, 4));
        assert!(many.positions[1] < more.positions[0]);
        let three = stream(&store, "order-3").await;
        assert_eq!(
            three
                .iter()
                .map(|e| (e.version, e.position))
                .collect::<Vec<_>>(),
            [
                (1, many.positions[0]),
                (2, many.positions[1]),
                (3, more.positions[0]),
                (4, more.positions[1])
            ]
        );

        let order = stream(&store, "order-1").await;
        assert_eq!(
            order.iter().map(|e| e.version).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(order[0].event, placed, "the event comes back as appended");
        assert_eq!(order[1].event.payload_json()["price"], 5);
        let from_two: Vec<Recorded> = store.read_stream("order-1", 2).try_collect().await.unwrap();
        assert_eq!(from_two.len(), 2);

        let every = all(&store).await;
        assert_eq!(every.len(), 8);
        assert!(every.windows(2).all(|w| w[0].position < w[1].position));
        assert_eq!(every[3].stream, "order-2");
        let after: Vec<Recorded> = store
            .read_all(every[1].position, 2)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            after.iter().map(|e| e.position).collect::<Vec<_>>(),
            [every[2].position, every[3].position]
        );
        assert_eq!(store.head().await.unwrap(), every[7].position);
        assert!(stream(&store, "order-404").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_append_at_the_wrong_version_is_refused_with_expected_and_actual() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        store
            .append("cart-1", Expected::NoStream, vec![line(1), line(2)])
            .await
            .unwrap();
        for (expected, actual) in [
            (Expected::Exact(1), Some(2)),
            (Expected::NoStream, Some(2)),
            (Expected::Exact(0), Some(2)),
        ] {
            let refused = store.append("cart-1", expected, vec![line(3)]).await;
            match refused {
                Err(Error::WrongExpectedVersion {
                    stream,
                    expected: e,
                    actual: a,
                }) => {
                    assert_eq!(stream, "cart-1");
                    assert_eq!(e, if expected == Expected::Exact(0) { Expected::NoStream } else { expected });
                    assert_eq!(a, actual);
                }
                other => panic!("expected a version conflict, got {other:?}"),
            }
        }
        let missing = store
            .append("cart-404", Expected::Exact(3), vec![line(3)])
            .await
            .unwrap_err();
        assert!(
            matches!(missing, Error::WrongExpectedVersion { actual: None, .. }),
            "{missing:?}"
        );
        assert_eq!(
            missing.to_string(),
            "append to stream `cart-404` refused: expected version 3, but it does not exist; read the stream again and retry"
        );
        assert_eq!(stream(&store, "cart-1").await.len(), 2, "nothing written");
        assert!(stream(&store, "cart-404").await.is_empty());
        // An empty append checks the version too.
        assert!(store.append("cart-1", Expected::Exact(2), vec![]).await.is_ok());
        assert!(store.append("cart-1", Expected::Exact(5), vec![]).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_retried_append_is_stored_once() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        let events = vec![line(1), line(2)];
        let first = store
            .append("retry-1", Expected::NoStream, events.clone())
            .await
            .unwrap();
        for expected in [Expected::NoStream, Expected::Any, Expected::Exact(0)] {
            let again = store
                .append("retry-1", expected, events.clone())
                .await
                .unwrap_or_else(|e| panic!("retry with {expected:?}: {e}"));
            assert!(!again.written);
            assert_eq!(again.positions, first.positions);
            assert_eq!(again.version, 2);
        }
        assert_eq!(stream(&store, "retry-1").await.len(), 2);
        // Partly stored: refused, nothing written.
        let mixed = vec![events[1].clone(), line(3)];
        let refused = store
            .append("retry-1", Expected::Any, mixed)
            .await
            .unwrap_err();
        match refused {
            Error::DuplicateEvent { id, stored_in, .. } => {
                assert_eq!(id, events[1].id());
                assert_eq!(stored_in, "retry-1");
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
        // The first event new, a later one stored: the unique index on
        // event ids refuses it, whatever the expected version.
        for expected in [Expected::Any, Expected::Exact(2)] {
            let later = vec![line(9), events[0].clone()];
            match store.append("retry-1", expected, later).await {
                Err(Error::DuplicateEvent {
                    id,
                    stored_in,
                    stream,
                }) => {
                    assert_eq!(
                        (id, stored_in.as_str(), stream.as_str()),
                        (events[0].id(), "retry-1", "retry-1")
                    );
                }
                other => panic!("{expected:?}: expected a duplicate, got {other:?}"),
            }
        }
        // One event stored in another stream is not a retry of this append.
        for expected in [Expected::NoStream, Expected::Any, Expected::Exact(0)] {
            match store
                .append("retry-2", expected, vec![events[0].clone()])
                .await
            {
                Err(Error::DuplicateEvent { id, stored_in, .. }) => {
                    assert_eq!((id, stored_in.as_str()), (events[0].id(), "retry-1"));
                }
                other => panic!("{expected:?}: expected a duplicate, got {other:?}"),
            }
        }
        assert!(stream(&store, "retry-2").await.is_empty());
        // In the caller's transaction the refusal leaves it unable to commit.
        let mut tx = db.begin().await.unwrap();
        let later = vec![line(9), events[1].clone()];
        assert!(
            store
                .append_in(&mut tx, "retry-1", Expected::Exact(2), later)
                .await
                .is_err()
        );
        assert!(matches!(
            tx.commit().await,
            Err(Error::TransactionAborted { .. })
        ));
        assert_eq!(all(&store).await.len(), 2);
        let next = store
            .append("retry-1", Expected::Exact(2), vec![line(4)])
            .await
            .unwrap();
        assert_eq!(next.version, 3, "the stream did not move");
    })
    .await;
}

#[tokio::test]
async fn of_two_appenders_at_the_same_version_exactly_one_wins() {
    each_backend_on_files("store-race", |db| async move {
        let store = fresh_store(&db).await;
        store
            .append("race-1", Expected::NoStream, vec![line(0)])
            .await
            .unwrap();
        // The first holds its transaction open with the stream moved; the
        // second, at the same expected version, waits for it, then loses.
        let mut first = db.begin().await.unwrap();
        store
            .append_in(&mut first, "race-1", Expected::Exact(1), vec![line(1)])
            .await
            .unwrap();
        let second = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .append("race-1", Expected::Exact(1), vec![line(2)])
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second waits for the first");
        first.commit().await.unwrap();
        let lost = second.await.unwrap().unwrap_err();
        assert!(
            matches!(
                lost,
                Error::WrongExpectedVersion {
                    actual: Some(2),
                    expected: Expected::Exact(1),
                    ..
                }
            ),
            "{lost:?}"
        );

        // Many writers, each reading the version and appending after it:
        // every success is a new version, with no gap and no duplicate.
        let tasks: Vec<_> = (0..8)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut won = 0;
                    for round in 0..10 {
                        let version = stream_version(&store, "race-2").await;
                        let expected = if version == 0 {
                            Expected::NoStream
                        } else {
                            Expected::Exact(version)
                        };
                        let e = event("race.step", json!({ "writer": writer, "round": round }));
                        match store.append("race-2", expected, vec![e]).await {
                            Ok(_) => won += 1,
                            Err(Error::WrongExpectedVersion { .. }) => {}
                            Err(other) => panic!("writer {writer}: {other}"),
                        }
                    }
                    won
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            won += task.await.unwrap();
        }
        let versions: Vec<u64> = stream(&store, "race-2")
            .await
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, (1..=won).collect::<Vec<u64>>());
        assert!(won >= 10, "at least one writer wins each round: {won}");
    })
    .await;
}

async fn stream_version(store: &EventStore, name: &str) -> u64 {
    stream(store, name).await.last().map_or(0, |e| e.version)
}

/// Records the positions it is handed, in order, in memory: for tests
/// where nothing is retried.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<u64>>>);

impl Seen {
    fn positions(&self) -> Vec<u64> {
        self.0.lock().unwrap().clone()
    }
}

impl Projection for Seen {
    async fn apply(&self, _tx: &mut Tx, event: &Recorded) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(event.position);
        Ok(())
    }
}

#[tokio::test]
async fn a_live_subscription_skips_nothing_when_commits_come_out_of_order() {
    each_backend_on_files("store-order", |db| async move {
        let store = fresh_store(&db).await;
        fresh::<Applied>(&db).await;
        let subscription = store
            .subscription("watcher")
            .poll_interval(Duration::from_millis(10))
            .start(Apply::default())
            .await
            .unwrap();
        subscription.caught_up(PATIENCE).await.unwrap();

        // A takes a position and keeps its transaction open; B appends
        // after it and commits first (on PostgreSQL; elsewhere B waits for
        // A). The subscription must not pass A's position.
        let mut a = db.begin().await.unwrap();
        let a_at = store
            .append_in(&mut a, "slow-1", Expected::NoStream, vec![line(1)])
            .await
            .unwrap();
        let b = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .append("fast-1", Expected::NoStream, vec![line(2)])
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            applied(&db).await,
            Vec::<u64>::new(),
            "nothing is delivered while a lower position may still commit"
        );
        a.commit().await.unwrap();
        let b_at = b.await.unwrap().unwrap();
        let last = a_at.positions[0].max(b_at.positions[0]);
        subscription.reached(last, PATIENCE).await.unwrap();
        let mut expected = vec![a_at.positions[0], b_at.positions[0]];
        expected.sort_unstable();
        assert_eq!(applied(&db).await, expected);

        // Many appenders, each holding its transaction a random while,
        // some rolling back: the subscription sees every committed event
        // once, in rising positions.
        let appenders: Vec<_> = (0..6u64)
            .map(|writer| {
                let store = store.clone();
                let db = db.clone();
                tokio::spawn(async move {
                    let mut committed = Vec::new();
                    for round in 0..8u64 {
                        let mut tx = db.begin().await.unwrap();
                        let at = store
                            .append_in(
                                &mut tx,
                                &format!("w{writer}-{round}"),
                                Expected::NoStream,
                                vec![line(1)],
                            )
                            .await
                            .unwrap();
                        let hold = (writer * 7 + round * 13) % 25;
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                        if (writer + round) % 5 == 0 {
                            tx.rollback().await.unwrap();
                        } else {
                            tx.commit().await.unwrap();
                            committed.push(at.positions[0]);
                        }
                    }
                    committed
                })
            })
            .collect();
        let mut committed: Vec<u64> = expected.clone();
        for appender in appenders {
            committed.extend(appender.await.unwrap());
        }
        committed.sort_unstable();
        subscription
            .reached(*committed.last().unwrap(), PATIENCE)
            .await
            .unwrap();
        let delivered = applied(&db).await;
        assert_eq!(delivered, committed, "every committed event once, in order");
        subscription.shutdown().await;
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "store_order_totals")]
struct OrderTotal {
    #[model(primary_key)]
    order: String,
    lines: i64,
    total: i64,
}

/// Sums each order's lines into `store_order_totals`; fails on a price
/// of -1 while `refuse` is set.
#[derive(Clone, Default)]
struct OrderTotals {
    refuse: Arc<std::sync::atomic::AtomicBool>,
}

impl Projection for OrderTotals {
    async fn apply(&self, tx: &mut Tx, event: &Recorded) -> Result<(), HandlerError> {
        if event.event.name().as_str() != "order.line_added" {
            return Ok(());
        }
        let price = event.event.payload_json()["price"].as_i64().unwrap_or(0);
        if price == -1 && self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(HandlerError::msg("a price of -1 is refused"));
        }
        let mut row = OrderTotal::find_in(tx, event.stream.clone())
            .await?
            .unwrap_or(OrderTotal {
                order: event.stream.clone(),
                lines: 0,
                total: 0,
            });
        row.lines += 1;
        row.total += price;
        row.save_in(tx).await?;
        Ok(())
    }

    async fn reset(&self, tx: &mut Tx) -> Result<(), HandlerError> {
        OrderTotal::query().delete_all_in(tx).await?;
        Ok(())
    }
}

async fn totals(db: &Db) -> Vec<OrderTotal> {
    OrderTotal::query()
        .order_by(OrderTotal::ORDER.asc())
        .all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_subscription_catches_up_then_follows_and_resumes_from_its_checkpoint() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        fresh::<OrderTotal>(&db).await;
        for order in 0..12 {
            let events = (0..100).map(|i| line(i % 10)).collect();
            store
                .append(&format!("order-{order}"), Expected::NoStream, events)
                .await
                .unwrap();
        }
        let projection = OrderTotals::default();
        let subscription = store
            .subscription("totals")
            .batch(250)
            .start(projection.clone())
            .await
            .unwrap();
        let progress = subscription.caught_up(PATIENCE).await.unwrap();
        assert_eq!(progress.position, store.head().await.unwrap());
        assert_eq!(progress.applied, 1_200);
        assert!(progress.live);
        assert_eq!(totals(&db).await.len(), 12);
        assert!(
            totals(&db)
                .await
                .iter()
                .all(|t| t.lines == 100 && t.total == 450)
        );

        // Live: appended now, applied soon.
        let at = store
            .append("order-0", Expected::Exact(100), vec![line(50)])
            .await
            .unwrap();
        subscription
            .reached(at.positions[0], PATIENCE)
            .await
            .unwrap();
        assert_eq!(totals(&db).await[0].total, 500);
        subscription.shutdown().await;

        // Appended while it was stopped; started again, it resumes from
        // its checkpoint: nothing twice, nothing missed.
        let at = store
            .append("order-1", Expected::Exact(100), vec![line(10)])
            .await
            .unwrap();
        let again = store
            .subscription("totals")
            .start(projection)
            .await
            .unwrap();
        let progress = again.reached(at.positions[0], PATIENCE).await.unwrap();
        assert_eq!(progress.applied, 1, "only the event appended since");
        let now = totals(&db).await;
        assert_eq!((now[0].lines, now[0].total), (101, 500));
        assert_eq!((now[1].lines, now[1].total), (101, 460));
        let checkpoints = store.checkpoints().await.unwrap();
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(checkpoints[0].name, "totals");
        assert_eq!(checkpoints[0].position, at.positions[0]);
        again.shutdown().await;

        // Operators see how far behind each subscription is.
        store
            .append("order-2", Expected::Exact(100), vec![line(1), line(1)])
            .await
            .unwrap();
        let status = earn::admin::Admin::new()
            .store(store.clone())
            .status()
            .await
            .unwrap();
        let head = store.head().await.unwrap();
        assert_eq!(status.store.as_ref().unwrap().head, head);
        assert!(
            status.to_string().contains(&format!(
                "subscription totals: at {}, 2 behind",
                at.positions[0]
            )),
            "{status}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_event_is_retried_alone_and_never_skipped() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        fresh::<OrderTotal>(&db).await;
        store
            .append(
                "order-1",
                Expected::NoStream,
                vec![line(1), line(2), line(-1), line(4)],
            )
            .await
            .unwrap();
        let projection = OrderTotals::default();
        projection
            .refuse
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let subscription = store
            .subscription("totals")
            .retry(earn::Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(20),
            ))
            .start(projection.clone())
            .await
            .unwrap();
        let all_events = all(&store).await;
        // The two events before the failing one are committed on their own.
        subscription
            .reached(all_events[1].position, PATIENCE)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stuck = subscription.progress();
        assert_eq!(
            stuck.position, all_events[1].position,
            "stopped at the failing event"
        );
        let error = stuck.last_error.expect("the failure is reported");
        assert!(error.contains("a price of -1 is refused"), "{error}");
        assert!(
            error.contains(&format!("position {}", all_events[2].position)),
            "{error}"
        );
        assert_eq!(totals(&db).await[0].total, 3);

        projection
            .refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let done = subscription
            .reached(all_events[3].position, PATIENCE)
            .await
            .unwrap();
        assert_eq!(done.last_error, None);
        let total = &totals(&db).await[0];
        assert_eq!(
            (total.lines, total.total),
            (4, 6),
            "each event applied once"
        );
        subscription.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn subscriptions_side_by_side_keep_their_own_checkpoints_and_can_feed_the_bus() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        store
            .append("order-1", Expected::NoStream, vec![line(1), line(2)])
            .await
            .unwrap();
        let one = Seen::default();
        let first = store.subscription("one").start(one.clone()).await.unwrap();
        first.caught_up(PATIENCE).await.unwrap();
        let bus = EventBus::builder()
            .without_registered_handlers()
            .build()
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        bus.subscribe("order.*", 0, {
            let received = received.clone();
            move |event: Event| {
                let received = received.clone();
                async move {
                    received.lock().unwrap().push(event.id());
                    Ok::<(), HandlerError>(())
                }
            }
        })
        .unwrap();
        let to_bus = store
            .subscription("to-bus")
            .start(bus.clone())
            .await
            .unwrap();
        let at = store
            .append("order-1", Expected::Exact(2), vec![line(3)])
            .await
            .unwrap();
        first.reached(at.positions[0], PATIENCE).await.unwrap();
        to_bus.reached(at.positions[0], PATIENCE).await.unwrap();
        bus.shutdown(PATIENCE).await;
        assert_eq!(one.positions().len(), 3);
        let ids: BTreeSet<_> = received.lock().unwrap().iter().copied().collect();
        let stored: BTreeSet<_> = all(&store).await.iter().map(|e| e.event.id()).collect();
        assert_eq!(ids, stored, "the bus got every stored event");
        let names: Vec<String> = store
            .checkpoints()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["one", "to-bus"]);
        first.shutdown().await;
        to_bus.shutdown().await;
        assert!(store.delete_checkpoint("one").await.unwrap());
        assert_eq!(store.checkpoints().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_projection_rebuilt_by_replay_equals_the_one_built_live() {
    each_backend(|db| async move {
        let _ = fresh_store(&db).await;
        fresh::<OrderTotal>(&db).await;
        let projection = OrderTotals::default();
        let store = EventStore::builder(&db).inline(projection.clone()).build();
        // Appends in a pseudo-random mix of orders, sizes and prices.
        let mut seed = 7u64;
        let mut versions = std::collections::HashMap::<u64, u64>::new();
        for _ in 0..60 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let order = (seed >> 33) % 9;
            let count = 1 + (seed >> 40) % 4;
            let events = (0..count)
                .map(|i| line(((seed >> 20) % 50 + i) as i64))
                .collect();
            let version = versions.entry(order).or_default();
            let expected = if *version == 0 {
                Expected::NoStream
            } else {
                Expected::Exact(*version)
            };
            let appended = store
                .append(&format!("order-{order}"), expected, events)
                .await
                .unwrap();
            *version = appended.version;
        }
        let live = totals(&db).await;
        assert!(!live.is_empty());

        // The inline projection is the source; an async one built from
        // scratch and a rebuild must both give the same table.
        let progress = store.rebuild("totals", &projection).await.unwrap();
        assert_eq!(progress.position, store.head().await.unwrap());
        assert!(progress.applied > 60);
        assert!(progress.rate > 0.0);
        assert_eq!(totals(&db).await, live, "rebuilt == live");
        let checkpoints = store.checkpoints().await.unwrap();
        assert_eq!(
            checkpoints[0].position, progress.position,
            "progress is visible"
        );
    })
    .await;
}

#[tokio::test]
async fn an_inline_projection_changes_with_the_append_or_not_at_all() {
    each_backend(|db| async move {
        let _ = fresh_store(&db).await;
        fresh::<OrderTotal>(&db).await;
        let projection = OrderTotals::default();
        projection
            .refuse
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let store = EventStore::builder(&db).inline(projection).build();
        store
            .append("order-1", Expected::NoStream, vec![line(4)])
            .await
            .unwrap();
        assert_eq!(totals(&db).await[0].total, 4);
        let refused = store
            .append("order-1", Expected::Exact(1), vec![line(5), line(-1)])
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::Apply { .. }), "{refused:?}");
        assert!(
            refused.to_string().contains("a price of -1 is refused"),
            "{refused}"
        );
        assert_eq!(totals(&db).await[0].total, 4, "the read model did not move");
        assert_eq!(
            stream(&store, "order-1").await.len(),
            1,
            "the events were not stored"
        );

        // In the caller's transaction: a failed inline projection leaves
        // it unable to commit.
        let mut tx = db.begin().await.unwrap();
        assert!(
            store
                .append_in(&mut tx, "order-1", Expected::Exact(1), vec![line(-1)])
                .await
                .is_err()
        );
        assert!(matches!(
            tx.commit().await,
            Err(Error::TransactionAborted { .. })
        ));
        assert_eq!(stream(&store, "order-1").await.len(), 1);
    })
    .await;
}

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "store_accounts", events = "account")]
struct Account {
    #[model(primary_key, auto)]
    id: Option<i64>,
    owner: String,
}

#[tokio::test]
async fn model_events_go_to_their_stream_in_the_writes_transaction() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        let db = db
            .with_bus(EventBus::builder().without_registered_handlers().build().unwrap())
            .with_model_streams(&store);
        fresh::<Account>(&db).await;
        let mut ada = Account { id: None, owner: "Ada".into() };
        ada.save(&db).await.unwrap();
        ada.owner = "Ada L.".into();
        ada.save(&db).await.unwrap();
        let key = ada.id.unwrap();
        let events = stream(&store, &format!("account-{key}")).await;
        assert_eq!(
            events.iter().map(|e| (e.version, e.event.name().to_string())).collect::<Vec<_>>(),
            [(1, "account.created".to_owned()), (2, "account.updated".to_owned())]
        );
        assert_eq!(events[1].event.payload_json()["owner"], "Ada L.");

        // A write that rolls back takes its event with it.
        let mut tx = db.begin().await.unwrap();
        ada.owner = "nobody".into();
        ada.save_in(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(stream(&store, &format!("account-{key}")).await.len(), 2);

        // A new row whose stream exists already (its key used before) is a
        // conflict, and the row is not written.
        store
            .append(&format!("account-{}", key + 1), Expected::NoStream, vec![line(0)])
            .await
            .unwrap();
        let mut bob = Account { id: None, owner: "Bob".into() };
        let refused = bob.save(&db).await.unwrap_err();
        assert!(
            matches!(&refused, Error::WrongExpectedVersion { stream, .. } if *stream == format!("account-{}", key + 1)),
            "{refused:?}"
        );
        assert_eq!(common::count::<Account>(&db).await, 1);

        ada.delete(&db).await.unwrap();
        let events = stream(&store, &format!("account-{key}")).await;
        assert_eq!(events.last().unwrap().event.name().as_str(), "account.deleted");
        assert_eq!(events.last().unwrap().version, 3);
    })
    .await;
}

#[tokio::test]
async fn upcasters_turn_old_payloads_into_the_current_shape_on_read() {
    each_backend(|db| async move {
        let old = fresh_store(&db).await;
        old.append(
            "order-1",
            Expected::NoStream,
            vec![event("order.placed", json!({ "amount": 1250 }))],
        )
        .await
        .unwrap();
        let store = EventStore::builder(&db)
            .upcast("order.placed", 1, |mut payload| {
                let cents = payload["amount"].as_i64().ok_or("no amount")?;
                payload["total"] = json!(cents as f64 / 100.0);
                Ok(payload)
            })
            .upcast("order.placed", 2, |mut payload| {
                payload["currency"] = json!("EUR");
                Ok(payload)
            })
            .build();
        store
            .append(
                "order-1",
                Expected::Exact(1),
                vec![event(
                    "order.placed",
                    json!({ "total": 3.0, "currency": "USD" }),
                )],
            )
            .await
            .unwrap();
        let events = stream(&store, "order-1").await;
        assert_eq!(events[0].schema_version, 1);
        assert_eq!(events[0].event.payload_json()["total"], 12.5);
        assert_eq!(events[0].event.payload_json()["currency"], "EUR");
        assert_eq!(
            events[1].schema_version, 3,
            "new events are stored in the current shape"
        );
        assert_eq!(events[1].event.payload_json()["currency"], "USD");
        let read_all = all(&store).await;
        assert_eq!(read_all[0].event.payload_json()["total"], 12.5);

        // An upcaster that refuses an old payload names the event.
        let strict = EventStore::builder(&db)
            .upcast("order.placed", 1, |_| Err("amounts are gone".into()))
            .build();
        let error = strict
            .read_stream("order-1", 1)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::StoredEvent { version: 1, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("amounts are gone"), "{error}");
    })
    .await;
}

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Order {
    lines: u64,
    total: i64,
}

impl Aggregate for Order {
    fn apply(&mut self, event: &Recorded) -> Result<(), HandlerError> {
        self.lines += 1;
        self.total += event.event.payload_json()["price"].as_i64().unwrap_or(0);
        Ok(())
    }
}

#[tokio::test]
async fn a_snapshot_spares_replaying_what_it_holds() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        store
            .append("order-9", Expected::NoStream, (1..=50).map(line).collect())
            .await
            .unwrap();
        let full = store.load::<Order>("order-9").await.unwrap();
        assert_eq!((full.version, full.replayed, full.snapshot), (50, 50, None));
        assert_eq!(
            full.state,
            Order {
                lines: 50,
                total: 1275
            }
        );
        store
            .save_snapshot("order-9", full.version, &full.state)
            .await
            .unwrap();
        store
            .append("order-9", Expected::Exact(50), vec![line(100)])
            .await
            .unwrap();
        let loaded = store.load::<Order>("order-9").await.unwrap();
        assert_eq!(
            (loaded.version, loaded.replayed, loaded.snapshot),
            (51, 1, Some(50))
        );
        assert_eq!(
            loaded.state,
            Order {
                lines: 51,
                total: 1375
            }
        );
        // An older snapshot does not replace a newer one.
        store
            .save_snapshot(
                "order-9",
                10,
                &Order {
                    lines: 10,
                    total: 55,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .snapshot::<Order>("order-9")
                .await
                .unwrap()
                .unwrap()
                .version,
            50
        );
        // A snapshot that no longer fits the type is ignored: full replay.
        store
            .save_snapshot("order-9", 51, &json!({ "shape": "old" }))
            .await
            .unwrap();
        let replayed = store.load::<Order>("order-9").await.unwrap();
        assert_eq!((replayed.replayed, replayed.snapshot), (51, None));
        assert_eq!(replayed.state, loaded.state);
        let empty = store.load::<Order>("order-404").await.unwrap();
        assert_eq!((empty.version, empty.state), (0, Order::default()));
    })
    .await;
}

#[tokio::test]
async fn retention_prunes_old_events_every_subscription_has_read() {
    each_backend(|db| async move {
        let _ = fresh_store(&db).await;
        let store = EventStore::builder(&db)
            .retention(Duration::from_millis(1))
            .build();
        store
            .append("log-1", Expected::NoStream, vec![line(1), line(2), line(3)])
            .await
            .unwrap();
        let seen = Seen::default();
        let subscription = store
            .subscription("reader")
            .batch(2)
            .start(seen.clone())
            .await
            .unwrap();
        let every = all(&store).await;
        subscription
            .reached(every[2].position, PATIENCE)
            .await
            .unwrap();
        subscription.shutdown().await;
        // A second reader that stopped half way holds the rest back.
        let slow = store
            .subscription("slow")
            .batch(1)
            .start(Seen::default())
            .await
            .unwrap();
        slow.reached(every[0].position, PATIENCE).await.unwrap();
        slow.shutdown().await;
        let kept_for_slow = store
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .find(|c| c.name == "slow")
            .unwrap()
            .position;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let pruned = store.prune().await.unwrap();
        let left = all(&store).await;
        assert_eq!(pruned as usize + left.len(), 3);
        assert!(
            left.iter().all(|e| e.position > kept_for_slow),
            "only what every reader applied"
        );
        store.delete_checkpoint("slow").await.unwrap();
        store.prune().await.unwrap();
        assert!(all(&store).await.is_empty());
        // The stream keeps its version.
        let next = store
            .append("log-1", Expected::Exact(3), vec![line(4)])
            .await
            .unwrap();
        assert_eq!(next.version, 4);
        assert_eq!(
            EventStore::new(&db).prune().await.unwrap(),
            0,
            "no retention, nothing pruned"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_a_clear_error() {
    each_backend(|db| async move {
        let store = fresh_store(&db).await;
        for (name, reason) in [("", "it is empty"), (&*"x".repeat(256), "longer than 255")] {
            let error = store
                .append(name, Expected::Any, vec![line(1)])
                .await
                .unwrap_err();
            assert!(matches!(error, Error::InvalidStream { .. }), "{error:?}");
            assert!(error.to_string().contains(reason), "{error}");
        }
        let error = store
            .read_stream("", 0)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidStream { .. }));
        let longest = "é".repeat(255);
        store
            .append(&longest, Expected::NoStream, vec![line(1)])
            .await
            .unwrap();
        assert_eq!(stream(&store, &longest).await.len(), 1);

        db.execute_unprepared("DROP TABLE earn_events")
            .await
            .unwrap();
        let error = store
            .append("order-1", Expected::Any, vec![line(1)])
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("EventStore::install"),
            "a store that is not installed says how to install it: {error}"
        );
    })
    .await;
}
