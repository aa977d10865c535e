//! A model-based property test of transactions: random sequences of
//! transactions, savepoints (released, rolled back, dropped), writes whose
//! hooks may veto or fail, and events raised with `tx.raise` and
//! `ctx.raise`, run on every database with no outbox, the inline outbox and
//! the relay-only outbox. A reference model says what must hold:
//!
//! - the rows are exactly those of committed work;
//! - the events handled are exactly the committed ones, in the order they
//!   were raised (no phantom, none lost);
//! - `after_commit` ran for exactly the committed writes and
//!   `after_rollback` for every other write;
//! - a transaction's `after_commit` hooks all ran before its first event
//!   was handled.
//!
//! `cargo test --test transaction_model` runs 48 cases per database and
//! outbox mode; `EARN_MODEL_CASES=2000` runs more.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use earn::prelude::*;
use earn::{Outbox, OutboxMode, OutboxRelay};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Everything hooks and handlers did, in order.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(entry: String) {
    LOG.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
}

fn take_log() -> Vec<String> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "model_items", events = "item")]
struct Item {
    #[model(primary_key, auto)]
    id: Option<i64>,
    /// `{kind}-{op number}`: the kind says what the hooks do.
    tag: String,
}

#[hooks]
impl Item {
    #[before_save]
    fn veto(&self) -> Result<(), HookError> {
        if self.tag.starts_with("veto") {
            return Err(HookError::abort("vetoed"));
        }
        Ok(())
    }

    #[before_delete]
    fn keep(&self) -> Result<(), HookError> {
        if self.tag.starts_with("keep") {
            return Err(HookError::abort("kept"));
        }
        Ok(())
    }

    #[after_save]
    fn after(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        if self.tag.starts_with("emit") {
            ctx.raise(Event::new("item.noted", &self.tag)?)?;
        }
        if self.tag.ends_with("fail") || self.tag.contains("fail-") {
            return Err(HookError::msg("after_save failed"));
        }
        Ok(())
    }

    #[after_commit(on = "create")]
    fn committed_create(&self) {
        log(format!("commit:create:{}", self.tag));
    }
    #[after_commit(on = "update")]
    fn committed_update(&self) {
        log(format!("commit:update:{}", self.tag));
    }
    #[after_commit(on = "delete")]
    fn committed_delete(&self) {
        log(format!("commit:delete:{}", self.tag));
    }
    #[after_rollback(on = "create")]
    fn rolled_back_create(&self) {
        log(format!("rollback:create:{}", self.tag));
    }
    #[after_rollback(on = "update")]
    fn rolled_back_update(&self) {
        log(format!("rollback:update:{}", self.tag));
    }
    #[after_rollback(on = "delete")]
    fn rolled_back_delete(&self) {
        log(format!("rollback:delete:{}", self.tag));
    }
}

/// What the hooks of a write do.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Ok,
    /// `before_save` vetoes: nothing written, the transaction goes on.
    Veto,
    /// `after_save` fails after the write: the transaction cannot commit
    /// (unless a savepoint around the write rolls back).
    Fail,
    /// `after_save` raises `item.noted` with `ctx.raise`.
    Emit,
    /// `ctx.raise`, then `after_save` fails.
    EmitFail,
    /// Like `Ok`, but `before_delete` vetoes deleting the row.
    Keep,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Veto => "veto",
            Kind::Fail => "fail",
            Kind::Emit => "emit",
            Kind::EmitFail => "emit-fail",
            Kind::Keep => "keep",
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Outside a transaction: begin one. Inside: open a savepoint.
    Begin,
    /// Commit the transaction, or release the innermost savepoint.
    Commit,
    /// Roll back the transaction or the innermost savepoint.
    Rollback,
    /// Drop the transaction or the innermost savepoint.
    Drop,
    Insert(Kind),
    /// Update the n-th visible row (modulo their number).
    Update(usize, Kind),
    /// Delete the n-th visible row.
    Delete(usize),
    /// `tx.raise(tx.raised)`; outside a transaction, nothing.
    Raise,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Ok),
        1 => Just(Kind::Veto),
        1 => Just(Kind::Fail),
        2 => Just(Kind::Emit),
        1 => Just(Kind::EmitFail),
        1 => Just(Kind::Keep),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Begin),
        2 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Drop),
        4 => kind().prop_map(Op::Insert),
        2 => (any::<usize>(), kind()).prop_map(|(n, k)| Op::Update(n, k)),
        2 => any::<usize>().prop_map(Op::Delete),
        2 => Just(Op::Raise),
    ]
}

/// Deferred work the reference model expects, in the order it was queued.
#[derive(Debug, Clone)]
enum Expect {
    /// A write: its `after_commit` entry if committed, `after_rollback`
    /// entry otherwise; `written: false` for a write that failed (only
    /// `after_rollback` applies).
    Outcome {
        commit: String,
        rollback: String,
        written: bool,
    },
    /// An event raised: the handler's log entry.
    Event(String),
    /// A row written: `Some(tag)` inserted or updated, `None` deleted.
    Row(i64, Option<String>),
}

/// The reference model of one transaction.
#[derive(Default)]
struct Reference {
    /// Committed rows: id → tag.
    rows: BTreeMap<i64, String>,
    /// The open transaction's queue and one mark per savepoint.
    queue: Vec<Expect>,
    marks: Vec<usize>,
    /// Savepoint depth at which a write failed after writing.
    poison: Option<usize>,
    /// What hooks and handlers must have logged, ordered events apart from
    /// the (unordered) hook entries.
    hooks: Vec<String>,
    events: Vec<String>,
    /// Per committed transaction: the hook entries that must precede its
    /// first event.
    before_events: Vec<(Vec<String>, Option<String>)>,
}

impl Reference {
    fn visible(&self) -> BTreeMap<i64, String> {
        let mut rows = self.rows.clone();
        for entry in &self.queue {
            if let Expect::Row(id, tag) = entry {
                match tag {
                    Some(tag) => rows.insert(*id, tag.clone()),
                    None => rows.remove(id),
                };
            }
        }
        rows
    }

    fn rolled_back(&mut self, undone: Vec<Expect>) {
        for entry in undone {
            if let Expect::Outcome { rollback, .. } = entry {
                self.hooks.push(rollback);
            }
        }
    }

    fn commit(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        let mut committed_hooks = Vec::new();
        let mut first_event = None;
        for entry in queue {
            match entry {
                Expect::Outcome {
                    commit,
                    rollback,
                    written,
                } => {
                    if written {
                        committed_hooks.push(commit.clone());
                        self.hooks.push(commit);
                    } else {
                        self.hooks.push(rollback);
                    }
                }
                Expect::Event(event) => {
                    first_event.get_or_insert_with(|| event.clone());
                    self.events.push(event);
                }
                Expect::Row(id, Some(tag)) => {
                    self.rows.insert(id, tag);
                }
                Expect::Row(id, None) => {
                    self.rows.remove(&id);
                }
            }
        }
        self.before_events.push((committed_hooks, first_event));
    }

    fn rollback(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        self.rolled_back(queue);
    }
}

/// One database in one outbox mode.
struct Setup {
    db: Db,
    bus: EventBus,
    relay: Option<OutboxRelay>,
    outbox: bool,
}

impl Setup {
    /// Waits until everything committed so far has been handled.
    async fn settle(&self) {
        if let Some(relay) = &self.relay {
            while relay.run_once().await.expect("relay") > 0 {}
        }
        self.bus.wait_idle().await;
    }

    async fn reset(&self) {
        self.settle().await;
        self.db
            .execute_unprepared("DELETE FROM model_items")
            .await
            .unwrap();
        if self.outbox {
            self.db
                .execute_unprepared("DELETE FROM earn_outbox")
                .await
                .unwrap();
        }
        take_log();
    }
}

struct Run<'a> {
    setup: &'a Setup,
    model: Reference,
    ops: std::vec::IntoIter<Op>,
    counter: usize,
}

/// Where a write runs.
enum Target<'t> {
    Tx(&'t mut Tx),
    Db(&'t Db),
}

/// How a level of the transaction ended.
enum End {
    Commit,
    Rollback,
    Drop,
}

impl Run<'_> {
    fn tag(&mut self, kind: Kind) -> String {
        self.counter += 1;
        format!("{}-{}", kind.prefix(), self.counter)
    }

    /// Runs ops in `tx` (a savepoint when `depth > 0`) until one ends it.
    fn level<'t>(
        &'t mut self,
        tx: &'t mut Tx,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<End, TestCaseError>> + 't>> {
        Box::pin(async move {
            while let Some(op) = self.ops.next() {
                match op {
                    Op::Begin => {
                        let mut sp = tx.begin().await.expect("savepoint");
                        self.model.marks.push(self.model.queue.len());
                        let end = self.level(&mut sp, depth + 1).await?;
                        let mark = self.model.marks.pop().unwrap();
                        let released = matches!(end, End::Commit);
                        match end {
                            End::Commit => sp.commit().await.expect("release"),
                            End::Rollback => sp.rollback().await.expect("rollback to savepoint"),
                            End::Drop => drop(sp),
                        }
                        if released {
                            if let Some(at) = &mut self.model.poison {
                                *at = (*at).min(depth);
                            }
                        } else {
                            let undone = self.model.queue.split_off(mark);
                            self.model.rolled_back(undone);
                            if self.model.poison.is_some_and(|at| at > depth) {
                                self.model.poison = None;
                            }
                        }
                    }
                    Op::Commit => return Ok(End::Commit),
                    Op::Rollback => return Ok(End::Rollback),
                    Op::Drop => return Ok(End::Drop),
                    Op::Raise => {
                        self.counter += 1;
                        let n = self.counter;
                        tx.raise(Event::new("tx.raised", &n).unwrap()).unwrap();
                        self.model
                            .queue
                            .push(Expect::Event(format!("tx.raised:{n}")));
                    }
                    op @ (Op::Insert(_) | Op::Update(..) | Op::Delete(_)) => {
                        self.write(op, Target::Tx(tx), depth).await?;
                    }
                }
            }
            Ok(if depth == 0 { End::Commit } else { End::Drop })
        })
    }

    /// Runs a write in `target` and checks it against the model.
    async fn write(
        &mut self,
        op: Op,
        target: Target<'_>,
        depth: usize,
    ) -> Result<(), TestCaseError> {
        let visible = self.model.visible();
        let pick = |n: usize| {
            visible
                .iter()
                .nth(n % visible.len())
                .map(|(&id, tag)| (id, tag.clone()))
        };
        let (mut item, operation, kind) = match op {
            Op::Insert(kind) => (
                Item {
                    id: None,
                    tag: self.tag(kind),
                },
                Operation::Create,
                kind,
            ),
            Op::Update(n, kind) if !visible.is_empty() => {
                let (id, _) = pick(n).unwrap();
                (
                    Item {
                        id: Some(id),
                        tag: self.tag(kind),
                    },
                    Operation::Update,
                    kind,
                )
            }
            Op::Delete(n) if !visible.is_empty() => {
                let (id, tag) = pick(n).unwrap();
                let kind = if tag.starts_with("keep") {
                    Kind::Veto
                } else {
                    Kind::Ok
                };
                (Item { id: Some(id), tag }, Operation::Delete, kind)
            }
            _ => return Ok(()),
        };
        let result = match (operation, target) {
            (Operation::Delete, Target::Tx(tx)) => item.delete_in(tx).await,
            (Operation::Delete, Target::Db(db)) => item.delete(db).await,
            (_, Target::Tx(tx)) => item.save_in(tx).await,
            (_, Target::Db(db)) => item.save(db).await,
        };
        self.written(result, &item, operation, kind, depth)
    }

    /// Checks a write's result against the model and records what it queued.
    fn written(
        &mut self,
        result: Result<(), earn::Error>,
        item: &Item,
        operation: Operation,
        kind: Kind,
        depth: usize,
    ) -> Result<(), TestCaseError> {
        let entry = |phase: &str| format!("{phase}:{operation}:{}", item.tag);
        if self.model.poison.is_some() {
            prop_assert!(
                matches!(result, Err(earn::Error::TransactionAborted { .. })),
                "a write in a transaction that cannot commit must be refused, got {result:?}"
            );
            return Ok(());
        }
        match kind {
            Kind::Ok | Kind::Keep | Kind::Emit => {
                prop_assert!(
                    result.is_ok(),
                    "{operation} of {} failed: {result:?}",
                    item.tag
                );
                let id = item.id.expect("a written item has a key");
                if matches!(kind, Kind::Emit) {
                    self.model
                        .queue
                        .push(Expect::Event(format!("item.noted:{}", item.tag)));
                }
                let (row, verb) = match operation {
                    Operation::Create => (Some(item.tag.clone()), "created"),
                    Operation::Update => (Some(item.tag.clone()), "updated"),
                    Operation::Delete => (None, "deleted"),
                    Operation::Restore => unreachable!("the model has no soft delete"),
                };
                self.model.queue.push(Expect::Row(id, row));
                self.model.queue.push(Expect::Outcome {
                    commit: entry("commit"),
                    rollback: entry("rollback"),
                    written: true,
                });
                self.model
                    .queue
                    .push(Expect::Event(format!("item.{verb}:{}", item.tag)));
            }
            Kind::Veto | Kind::Fail | Kind::EmitFail => {
                prop_assert!(result.is_err(), "{operation} of {} succeeded", item.tag);
                self.model.queue.push(Expect::Outcome {
                    commit: entry("commit"),
                    rollback: entry("rollback"),
                    written: false,
                });
                if !matches!(kind, Kind::Veto) {
                    self.model.poison.get_or_insert(depth);
                }
            }
        }
        Ok(())
    }

    async fn run(&mut self) -> Result<(), TestCaseError> {
        while let Some(op) = self.ops.as_slice().first().cloned() {
            match op {
                Op::Begin => {
                    self.ops.next();
                    let mut tx = self.setup.db.begin().await.expect("begin");
                    let end = self.level(&mut tx, 0).await?;
                    let poisoned = self.model.poison.take().is_some();
                    match end {
                        End::Commit => {
                            let committed = tx.commit().await;
                            if poisoned {
                                prop_assert!(
                                    matches!(
                                        committed,
                                        Err(earn::Error::TransactionAborted { .. })
                                    ),
                                    "a poisoned transaction committed: {committed:?}"
                                );
                                self.model.rollback();
                            } else {
                                prop_assert!(committed.is_ok(), "commit failed: {committed:?}");
                                self.model.commit();
                            }
                        }
                        End::Rollback => {
                            tx.rollback().await.expect("rollback");
                            self.model.rollback();
                        }
                        End::Drop => {
                            drop(tx);
                            self.model.rollback();
                        }
                    }
                }
                // A write outside a transaction runs in one of its own.
                Op::Insert(_) | Op::Update(..) | Op::Delete(_) => {
                    self.ops.next();
                    let db = self.setup.db.clone();
                    self.write(op, Target::Db(&db), 0).await?;
                    if self.model.poison.take().is_some()
                        || !matches!(self.model.queue.last(), Some(Expect::Event(_)))
                    {
                        self.model.rollback();
                    } else {
                        self.model.commit();
                    }
                }
                Op::Commit | Op::Rollback | Op::Drop | Op::Raise => {
                    self.ops.next();
                }
            }
            self.setup.settle().await;
        }
        self.check().await
    }

    async fn check(&mut self) -> Result<(), TestCaseError> {
        let setup = self.setup;
        setup.settle().await;
        // Hooks of dropped transactions run in a task of their own.
        let mut logged = Vec::new();
        for _ in 0..200 {
            logged.extend(take_log());
            let hooks = logged.iter().filter(|e| !e.starts_with("event:")).count();
            if hooks >= self.model.hooks.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let rows: BTreeMap<i64, String> = Item::all(&setup.db)
            .await
            .unwrap()
            .into_iter()
            .map(|item| (item.id.unwrap(), item.tag))
            .collect();
        prop_assert_eq!(&rows, &self.model.rows, "rows");

        let events: Vec<String> = logged
            .iter()
            .filter_map(|e| e.strip_prefix("event:").map(str::to_owned))
            .collect();
        prop_assert_eq!(&events, &self.model.events, "events handled, in order");

        let mut hooks: Vec<String> = logged
            .iter()
            .filter(|e| !e.starts_with("event:"))
            .cloned()
            .collect();
        hooks.sort();
        let mut expected = self.model.hooks.clone();
        expected.sort();
        prop_assert_eq!(hooks, expected, "outcome hooks");

        for (committed, first_event) in &self.model.before_events {
            let Some(first_event) = first_event else {
                continue;
            };
            let event_at = logged
                .iter()
                .position(|e| e == &format!("event:{first_event}"))
                .unwrap();
            for hook in committed {
                let hook_at = logged.iter().position(|e| e == hook).unwrap();
                prop_assert!(
                    hook_at < event_at,
                    "after_commit `{hook}` ran after the transaction's event `{first_event}`: {logged:?}"
                );
            }
        }
        if setup.outbox {
            // Every row of a committed event goes once it is handled; one
            // left behind is an event nobody will deliver (or a phantom).
            let mut backlog = 0;
            for _ in 0..200 {
                backlog = setup.db.outbox_backlog().await.unwrap();
                if backlog == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            prop_assert_eq!(backlog, 0, "outbox rows left");
        }
        Ok(())
    }
}

async fn setup(db: Db, mode: Option<OutboxMode>) -> Setup {
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(1)
        .build()
        .unwrap();
    bus.subscribe_sync("*", 0, |event: &Event| {
        let payload = match event.payload::<Item>() {
            Ok(item) => item.tag,
            Err(_) => event
                .payload_json()
                .to_string()
                .trim_matches('"')
                .to_owned(),
        };
        log(format!("event:{}:{payload}", event.name()));
    })
    .unwrap();
    let mut db = db.with_bus(bus.clone());
    if let Some(mode) = mode {
        db = db.with_outbox(Outbox {
            mode,
            ..Outbox::default()
        });
        db.install_outbox().await.unwrap();
    }
    common::fresh::<Item>(&db).await;
    let relay =
        (mode == Some(OutboxMode::Relay)).then(|| OutboxRelay::new(db.clone(), bus.clone()));
    Setup {
        db,
        bus,
        relay,
        outbox: mode.is_some(),
    }
}

fn cases() -> u32 {
    std::env::var("EARN_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48)
}

#[test]
fn transactions_keep_their_promises_on_every_database_and_outbox_mode() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (name, url) in common::backends() {
        for mode in [None, Some(OutboxMode::Inline), Some(OutboxMode::Relay)] {
            eprintln!("--- on {name}, outbox {mode:?}");
            let setup = runtime.block_on(async {
                let db = common::connect(name, &url).await;
                setup(db, mode).await
            });
            let setup = Arc::new(setup);
            let mut runner = TestRunner::new(Config {
                cases: cases(),
                failure_persistence: None,
                ..Config::default()
            });
            let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
                runtime.block_on(async {
                    setup.reset().await;
                    let mut run = Run {
                        setup: &setup,
                        model: Reference::default(),
                        ops: ops.into_iter(),
                        counter: 0,
                    };
                    run.run().await
                })
            });
            if let Err(failure) = result {
                panic!("on {name}, outbox {mode:?}: {failure}");
            }
        }
    }
}
