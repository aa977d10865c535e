//! The transactional outbox: events are rows written with the data, handled
//! after the commit, recovered by the relay, never delivered for a rollback.

mod common;

use std::time::Duration;

use common::{each_backend, fresh};
use earn::prelude::*;
use earn::testing::Recorder;
use earn::{
    DeadLetterFilter, DeadLetters, Dialect, EventSink, Outbox, OutboxMode, OutboxRelay,
    PageRequest, SinkFuture,
};

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "outbox_orders", events = "order")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    item: String,
}

#[hooks]
impl Order {
    #[after_save]
    fn refuse(&self) -> Result<(), HookError> {
        if self.item == "refused" {
            Err(HookError::abort("refused"))
        } else {
            Ok(())
        }
    }
}

fn order(item: &str) -> Order {
    Order {
        id: None,
        item: item.into(),
    }
}

async fn setup(db: Db, mode: OutboxMode) -> (Db, EventBus, Recorder) {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .build()
        .unwrap();
    let recorder = Recorder::attach(&bus, "order.**").unwrap();
    let db = db.with_bus(bus.clone()).with_outbox(Outbox {
        mode,
        ..Outbox::default()
    });
    fresh::<Order>(&db).await;
    db.install_outbox().await.unwrap();
    db.execute_unprepared("DELETE FROM earn_outbox")
        .await
        .unwrap();
    (db, bus, recorder)
}

/// Waits until the outbox is empty (rows go once their event is handled).
async fn drained(db: &Db) {
    for _ in 0..500 {
        if db.outbox_backlog().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the outbox still holds {} rows",
        db.outbox_backlog().await.unwrap()
    );
}

fn items(recorder: &Recorder) -> Vec<String> {
    let mut items: Vec<String> = recorder
        .events()
        .iter()
        .map(|e| e.payload::<Order>().unwrap().item)
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn committed_events_are_handled_and_their_rows_removed() {
    each_backend(|db| async move {
        let (db, bus, recorder) = setup(db, OutboxMode::Inline).await;
        order("book").save(&db).await.unwrap();
        order("refused").save(&db).await.unwrap_err();
        let mut tx = db.begin().await.unwrap();
        order("rolled back").save_in(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        bus.wait_idle().await;
        drained(&db).await;
        assert_eq!(items(&recorder), ["book"]);
    })
    .await;
}

#[tokio::test]
async fn the_relay_delivers_what_nobody_published() {
    each_backend(|db| async move {
        // Relay mode stands for a producer that died right after
        // its commit: the rows are there, nothing was published.
        let (db, bus, recorder) = setup(db, OutboxMode::Relay).await;
        order("a").save(&db).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        order("b").save_in(&mut tx).await.unwrap();
        {
            let mut sp = tx.begin().await.unwrap();
            order("undone").save_in(&mut sp).await.unwrap();
            sp.rollback().await.unwrap();
        }
        tx.commit().await.unwrap();
        bus.wait_idle().await;
        assert!(recorder.events().is_empty());
        assert_eq!(db.outbox_backlog().await.unwrap(), 2);

        let relay = OutboxRelay::new(db.clone(), bus.clone()).batch(10);
        assert_eq!(relay.run_once().await.unwrap(), 2);
        assert_eq!(
            relay.run_once().await.unwrap(),
            0,
            "claimed rows are leased, not taken twice"
        );
        bus.wait_idle().await;
        drained(&db).await;
        assert_eq!(items(&recorder), ["a", "b"]);
    })
    .await;
}

#[tokio::test]
async fn transactions_committing_out_of_order_are_all_delivered_and_rollbacks_never() {
    each_backend(|db| async move {
        if db.dialect() == Dialect::Sqlite {
            // One writer at a time: SQLite cannot interleave transactions.
            return;
        }
        let (db, bus, recorder) = setup(db, OutboxMode::Relay).await;
        let relay = OutboxRelay::new(db.clone(), bus.clone());
        let mut first = db.begin().await.unwrap();
        order("first").save_in(&mut first).await.unwrap();
        let mut second = db.begin().await.unwrap();
        order("second").save_in(&mut second).await.unwrap();
        let mut third = db.begin().await.unwrap();
        order("third").save_in(&mut third).await.unwrap();

        // The last row written commits first: a cursor past it would skip the others.
        third.commit().await.unwrap();
        assert_eq!(relay.run_once().await.unwrap(), 1);
        first.commit().await.unwrap();
        second.rollback().await.unwrap();
        assert_eq!(relay.run_once().await.unwrap(), 1);
        bus.wait_idle().await;
        drained(&db).await;
        assert_eq!(items(&recorder), ["first", "third"]);
    })
    .await;
}

/// Whether the recorder holds `item` within `within`.
async fn seen_within(recorder: &Recorder, item: &str, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        while !items(recorder).iter().any(|seen| seen == item) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_running_relay_on_postgres_wakes_at_a_commit_not_at_its_next_poll() {
    each_backend(|db| async move {
        if db.dialect() != Dialect::Postgres {
            // Only PostgreSQL has LISTEN / NOTIFY: elsewhere the relay polls.
            return;
        }
        let (db, bus, recorder) = setup(db, OutboxMode::Relay).await;
        // A poll interval far beyond the test's patience: only a notification
        // can make the relay claim in time.
        let relay =
            OutboxRelay::new(db.clone(), bus.clone()).poll_interval(Duration::from_secs(30));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move { relay.run_until(stopped).await });
        // Past the relay's first (empty) claim and its LISTEN.
        tokio::time::sleep(Duration::from_millis(300)).await;

        order("woken").save(&db).await.unwrap();
        assert!(
            seen_within(&recorder, "woken", Duration::from_secs(2)).await,
            "the relay did not wake at the commit"
        );

        // A lost listening connection comes back, and the relay still wakes.
        let pool = db.as_postgres().unwrap();
        let terminated: i64 = sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'earn_outbox_relay'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(
            terminated >= 1,
            "the relay's listening connection was not found"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        order("after reconnect").save(&db).await.unwrap();
        assert!(
            seen_within(&recorder, "after reconnect", Duration::from_secs(2)).await,
            "the relay did not wake at a commit after its connection was lost"
        );

        // Several events of one transaction go in one multi-row insert,
        // which wakes the relay too.
        let mut tx = db.begin().await.unwrap();
        for n in 0..3 {
            order(&format!("batch {n}")).save_in(&mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        for n in 0..3 {
            assert!(
                seen_within(&recorder, &format!("batch {n}"), Duration::from_secs(2)).await,
                "a multi-row insert did not wake the relay"
            );
        }

        stop.send(()).unwrap();
        running.await.unwrap();
        bus.wait_idle().await;
        drained(&db).await;
    })
    .await;
}

/// A broker that is down: refuses every event.
struct Refusing;

impl EventSink for Refusing {
    fn hand_over(&self, _event: Event, _accepted: Box<dyn FnOnce() + Send>) -> SinkFuture<'_> {
        Box::pin(async { Err("the broker is down".into()) })
    }
}

/// Writes a row by hand, as a buggy producer or a botched migration would.
async fn insert_raw(db: &Db, id: &str, event: &str) {
    db.execute_unprepared(&format!(
        "INSERT INTO earn_outbox (id, name, event, created_at, claimed_until) \
         VALUES ('{id}', 'order.created', '{event}', 0, 0)"
    ))
    .await
    .unwrap();
}

async fn fresh_dead_letters(db: &Db) {
    purge(db).await;
}

/// The first `limit` outbox dead letters, through the one dead-letter API.
async fn dead_letters(db: &Db, limit: u64) -> Vec<earn::DeadLetter> {
    db.outbox_dead_letters()
        .list(&DeadLetterFilter::default(), PageRequest::first(limit))
        .await
        .unwrap()
}

async fn purge(db: &Db) -> u64 {
    db.outbox_dead_letters()
        .purge(&DeadLetterFilter::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_without_a_valid_event_move_to_the_dead_letters_and_the_others_are_delivered() {
    each_backend(|db| async move {
        let (db, bus, recorder) = setup(db, OutboxMode::Relay).await;
        fresh_dead_letters(&db).await;
        insert_raw(&db, "not-json", "{oops").await;
        insert_raw(&db, "not-an-event", r#"{"name": "Not A Name!"}"#).await;
        order("good").save(&db).await.unwrap();

        let relay = OutboxRelay::new(db.clone(), bus.clone());
        assert_eq!(relay.run_once().await.unwrap(), 3);
        bus.wait_idle().await;
        drained(&db).await;
        assert_eq!(items(&recorder), ["good"]);

        let dead = dead_letters(&db, 10).await;
        let mut ids: Vec<&str> = dead.iter().map(|letter| letter.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["not-an-event", "not-json"]);
        for letter in &dead {
            assert!(letter.event.is_none());
            assert_eq!(letter.name, "order.created");
            assert_eq!(letter.attempts, 1);
            assert!(
                letter.reason.contains("does not hold a valid event"),
                "{}",
                letter.reason
            );
        }
        let raw = dead.iter().find(|letter| letter.id == "not-json").unwrap();
        assert_eq!(raw.raw.as_deref(), Some("{oops"));
        assert_eq!(
            relay.run_once().await.unwrap(),
            0,
            "dead letters are not claimed"
        );
        assert_eq!(dead_letters(&db, 1).await.len(), 1, "limit");
        assert_eq!(purge(&db).await, 2);
        assert_eq!(purge(&db).await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_row_claimed_more_than_max_attempts_times_is_dead_lettered_and_can_be_requeued() {
    each_backend(|db| async move {
        let (db, bus, recorder) = setup(db, OutboxMode::Relay).await;
        fresh_dead_letters(&db).await;
        order("stuck").save(&db).await.unwrap();

        // Each claim's lease ends at once, and the sink refuses every time.
        let refused = OutboxRelay::new(db.clone(), Refusing)
            .lease(Duration::ZERO)
            .max_attempts(2);
        for attempt in 1..=3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(refused.run_once().await.unwrap(), 1, "claim {attempt}");
            let dead = dead_letters(&db, 10).await;
            assert_eq!(
                dead.len(),
                usize::from(attempt == 3),
                "after claim {attempt}"
            );
        }
        assert_eq!(db.outbox_backlog().await.unwrap(), 0);
        let dead = dead_letters(&db, 10).await;
        let letter = &dead[0];
        assert_eq!(letter.attempts, 3);
        assert!(
            letter.reason.contains("max_attempts (2)"),
            "{}",
            letter.reason
        );
        let event = letter.event.as_ref().expect("a valid event");
        assert_eq!(event.name().as_str(), "order.created");
        assert_eq!(event.id().to_string(), letter.id);
        assert!(letter.last_failed_at <= std::time::SystemTime::now());

        // Requeued: claimable at once, attempts reset (a relay allowing a
        // single claim still delivers it).
        db.outbox_dead_letters().requeue(&letter.id).await.unwrap();
        assert!(dead_letters(&db, 10).await.is_empty());
        assert_eq!(db.outbox_backlog().await.unwrap(), 1);
        let relay = OutboxRelay::new(db.clone(), bus.clone()).max_attempts(1);
        assert_eq!(relay.run_once().await.unwrap(), 1);
        bus.wait_idle().await;
        drained(&db).await;
        assert_eq!(items(&recorder), ["stuck"]);
        assert!(dead_letters(&db, 10).await.is_empty());

        let missing = db
            .outbox_dead_letters()
            .requeue(&letter.id)
            .await
            .unwrap_err();
        assert!(
            matches!(&missing, earn::Error::NoDeadLetter { id, .. } if *id == letter.id),
            "{missing}"
        );
        assert!(
            missing.to_string().contains("earn_outbox_dead"),
            "{missing}"
        );
    })
    .await;
}

type Accepted = Box<dyn FnOnce() + Send>;

/// A sink that takes events and holds on to them, like a slow broker.
#[derive(Clone, Default)]
struct Holding(std::sync::Arc<std::sync::Mutex<Vec<Accepted>>>);

impl Holding {
    fn accept_all(&self) -> usize {
        let held = std::mem::take(&mut *self.0.lock().unwrap());
        let count = held.len();
        held.into_iter().for_each(|accepted| accepted());
        count
    }
}

impl EventSink for Holding {
    fn hand_over(&self, _event: Event, accepted: Accepted) -> SinkFuture<'_> {
        self.0.lock().unwrap().push(accepted);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn the_relay_stops_claiming_while_the_sink_is_behind() {
    each_backend(|db| async move {
        let (db, _bus, _recorder) = setup(db, OutboxMode::Relay).await;
        for item in ["a", "b", "c", "d", "e"] {
            order(item).save(&db).await.unwrap();
        }
        let sink = Holding::default();
        let relay = OutboxRelay::new(db.clone(), sink.clone())
            .batch(10)
            .max_in_flight(2);
        assert_eq!(relay.run_once().await.unwrap(), 2);
        let waiting = tokio::time::timeout(Duration::from_millis(200), relay.run_once()).await;
        assert!(waiting.is_err(), "claimed beyond max_in_flight");
        assert_eq!(sink.accept_all(), 2);
        assert_eq!(relay.run_once().await.unwrap(), 2);
        assert_eq!(sink.accept_all(), 2);
        assert_eq!(relay.run_once().await.unwrap(), 1);
        assert_eq!(sink.accept_all(), 1);
        drained(&db).await;
    })
    .await;
}

/// The names of the events whose rows the outbox holds, sorted.
async fn rows(db: &Db) -> Vec<String> {
    let pending: Vec<Event> = common::outbox_rows(db)
        .await
        .iter()
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    let mut names: Vec<String> = pending.iter().map(|e| e.name().to_string()).collect();
    names.sort();
    names
}

/// The issue's case: an event raised before a savepoint and one raised in
/// it, the savepoint rolled back. The rows written are exactly those of
/// the committed events, at the level that raised them.
async fn raise_around_a_rolled_back_savepoint(db: &Db) {
    let mut tx = db.begin().await.unwrap();
    order("a").save_in(&mut tx).await.unwrap();
    tx.raise(Event::new("sp.kept", &1).unwrap()).unwrap();
    {
        let mut sp = tx.begin().await.unwrap();
        order("b").save_in(&mut sp).await.unwrap();
        sp.raise(Event::new("sp.dropped", &2).unwrap()).unwrap();
        sp.rollback().await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_rolled_back_savepoint_takes_its_own_events_and_keeps_the_outer_ones() {
    each_backend(|db| async move {
        // Relay: the rows are what a relay will ever deliver.
        let (relay_db, bus, recorder) = setup(db.clone(), OutboxMode::Relay).await;
        let recorded = Recorder::attach(&bus, "sp.*").unwrap();
        raise_around_a_rolled_back_savepoint(&relay_db).await;
        assert_eq!(rows(&relay_db).await, ["order.created", "sp.kept"]);
        let relay = OutboxRelay::new(relay_db.clone(), bus.clone());
        while relay.run_once().await.unwrap() > 0 {}
        bus.wait_idle().await;
        drained(&relay_db).await;
        assert_eq!(items(&recorder), ["a"]);
        assert_eq!(recorded.names(), ["sp.kept"]);

        // Inline, with the sink down (a crash right after the commit): the
        // rows left for the relay are again exactly the committed events.
        let inline_db = db
            .with_bus(bus.clone())
            .with_outbox(Outbox::default())
            .with_outbox_sink(Refusing);
        raise_around_a_rolled_back_savepoint(&inline_db).await;
        assert_eq!(rows(&inline_db).await, ["order.created", "sp.kept"]);
    })
    .await;
}

/// A broker that takes events of at most 200 bytes.
struct Small;

impl EventSink for Small {
    fn hand_over(&self, _event: Event, accepted: Accepted) -> SinkFuture<'_> {
        accepted();
        Box::pin(async { Ok(()) })
    }

    fn max_payload(&self) -> Option<usize> {
        Some(200)
    }
}

#[tokio::test]
async fn an_event_too_large_for_the_sink_is_refused_before_the_commit() {
    each_backend(|db| async move {
        let (db, _bus, _recorder) = setup(db, OutboxMode::Relay).await;
        let db = db.with_outbox_sink(Small);
        let large = "x".repeat(500);

        let mut tx = db.begin().await.unwrap();
        let refused = tx.raise(Event::new("doc.large", &large).unwrap()).unwrap_err();
        assert!(
            matches!(&refused, earn::Error::PayloadTooLarge { event, max: 200, .. } if event == "doc.large"),
            "{refused}"
        );
        tx.raise(Event::new("doc.small", &1).unwrap()).unwrap();
        tx.commit().await.unwrap();

        // A model event too large fails the write, which is rolled back.
        let error = order(&large).save(&db).await.unwrap_err();
        assert!(matches!(error, earn::Error::PayloadTooLarge { .. }), "{error}");
        assert!(Order::all(&db).await.unwrap().is_empty());
        assert_eq!(rows(&db).await, ["doc.small"]);
    })
    .await;
}

#[tokio::test]
async fn bulk_writes_stage_one_row_per_event_and_none_for_a_failed_one() {
    each_backend(|db| async move {
        let (db, bus, recorder) = setup(db, OutboxMode::Relay).await;
        let mut orders: Vec<Order> = (0..300).map(|i| order(&format!("o{i:03}"))).collect();
        Order::insert_many(&db, &mut orders).await.unwrap();
        let updated = Order::query()
            .filter(Order::ITEM.lt("o100"))
            .update_all(&db, [Order::ITEM.set("cheap")])
            .await
            .unwrap();
        assert_eq!(updated, 100);
        let deleted = Order::query()
            .filter(Order::ITEM.eq("cheap"))
            .delete_all(&db)
            .await
            .unwrap();
        assert_eq!(deleted, 100);
        assert_eq!(db.outbox_backlog().await.unwrap(), 500);

        // A row whose after hook fails rolls the whole bulk write back: its
        // events' rows go with it.
        let mut batch = vec![order("fine"), order("refused")];
        assert!(Order::insert_many(&db, &mut batch).await.is_err());
        assert_eq!(db.outbox_backlog().await.unwrap(), 500);

        let relay = OutboxRelay::new(db.clone(), bus.clone());
        let mut relayed = 0;
        while relayed < 500 {
            let claimed = relay.run_once().await.unwrap();
            assert!(claimed > 0, "every staged event is relayed");
            relayed += claimed;
        }
        bus.wait_idle().await;
        drained(&db).await;
        let mut names = recorder.names();
        names.sort();
        names.dedup_by(|a, b| a == b);
        assert_eq!(names, ["order.created", "order.deleted", "order.updated"]);
        assert_eq!(recorder.events().len(), 500);
    })
    .await;
}
