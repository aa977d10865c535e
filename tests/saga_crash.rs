//! The seeds' order saga (examples/order_saga) with its worker killed
//! (SIGKILL) mid-saga, then started again: every saga resumes from its
//! stored state and finishes, each step taken once, no payment charged
//! twice, the failed one's payment refunded. The worker is this test
//! binary run again in the `worker` role: an outbox relay into a bus with
//! the saga and its services. Runs on every database.

mod common;
#[path = "support/sagas.rs"]
mod sagas_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{backends, connect, sqlite_file};
use earn::prelude::*;
use earn::saga::{SagaStatus, Sagas};
use earn::{Outbox, OutboxMode, OutboxRelay};
use sagas_support::saga::{self, OrderSaga};

const ROLE: &str = "EARN_SAGA_CRASH_ROLE";
const DB_URL: &str = "EARN_SAGA_CRASH_DB";
const STALL: &str = "EARN_SAGA_CRASH_STALL";
const PATIENCE: Duration = Duration::from_secs(60);

/// Rows a killed worker had claimed wait this long before another takes
/// them (the stalled worker claims its inventory requests again after it
/// too: each claim holds one more of its bus's workers).
const LEASE: Duration = Duration::from_secs(3);

fn outbox() -> Outbox {
    Outbox {
        mode: OutboxMode::Relay,
        lease: LEASE,
    }
}

/// The worker process: relays the outbox into a bus with the saga and its
/// services until it is killed.
#[tokio::test]
async fn worker_role() {
    if std::env::var(ROLE).as_deref() != Ok("worker") {
        return; // only in the child process
    }
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::var(DB_URL).expect("database URL");
    let stall = std::env::var(STALL).is_ok();
    // Stalled inventory requests hold workers: enough are left for the
    // other steps.
    let bus = EventBus::builder()
        .without_registered_handlers()
        .workers(16)
        .build()
        .unwrap();
    let db = Db::connect(&url)
        .await
        .expect("connect")
        .with_bus(bus.clone())
        .with_outbox(outbox());
    let sagas = Sagas::new(&db);
    sagas.register::<OrderSaga>(&bus).unwrap();
    saga::subscribe_services(&bus, &db, stall).unwrap();
    let _timeouts = sagas.start_timeouts(Duration::from_millis(100));
    let relay = OutboxRelay::new(db.clone(), bus.clone())
        .lease(LEASE)
        .poll_interval(Duration::from_millis(20));
    relay.run_until(std::future::pending::<()>()).await;
}

/// A worker process, killed (SIGKILL) when dropped: a failing test leaves
/// none behind.
struct Worker(Child);

impl Worker {
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker(url: &str, stall: bool) -> Worker {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "worker_role",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE, "worker")
        .env(DB_URL, url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if stall {
        command.env(STALL, "1");
    }
    Worker(command.spawn().expect("start the worker process"))
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    common::column::<i64>(db, sql).await[0]
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_worker_killed_mid_saga_resumes_each_saga_where_it_stood() {
    let _serial = common::serial().await;
    for (name, url) in backends() {
        let url = if name == "sqlite" {
            sqlite_file("saga-crash")
        } else {
            url
        };
        eprintln!("--- on {name}");
        let db = connect(name, &url).await.with_outbox(outbox());
        let sagas = sagas_support::fresh(&db).await;
        let orders = [
            saga::order_created(1, 250, &["book"]),
            saga::order_created(2, 5_000, &["piano"]),
            saga::order_created(3, 90, &["unobtainium"]),
            saga::order_created(4, 40, &["pen", "ink"]),
        ];
        let mut tx = db.begin().await.unwrap();
        for order in &orders {
            tx.raise(order.clone()).unwrap();
        }
        tx.commit().await.unwrap();

        // The first worker gets every saga to its inventory step (order 2
        // fails at payment), and dies there.
        let first = start_worker(&url, true);
        let at_inventory = |record: Option<earn::saga::SagaRecord<OrderSaga>>| {
            record.is_some_and(|r| r.state.current_step == "inventory")
        };
        wait_until("three sagas at their inventory step", || async {
            let mut at = 0;
            for order in [&orders[0], &orders[2], &orders[3]] {
                if at_inventory(
                    sagas
                        .get::<OrderSaga>(order.correlation_id())
                        .await
                        .unwrap(),
                ) {
                    at += 1;
                }
            }
            at == 3
        })
        .await;
        first.kill();
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM saga_reservations").await,
            0
        );
        let paid = count(&db, "SELECT COUNT(*) FROM saga_payments").await;
        assert_eq!(paid, 3, "orders 1, 3 and 4 were charged before the kill");

        // Started again, it finishes them all from where they stood.
        let second = start_worker(&url, false);
        wait_until("every saga finished", || async {
            let mut finished = 0;
            for order in &orders {
                if sagas
                    .get::<OrderSaga>(order.correlation_id())
                    .await
                    .unwrap()
                    .is_some_and(|r| r.status != SagaStatus::Running)
                {
                    finished += 1;
                }
            }
            finished == orders.len()
        })
        .await;
        // Refunds come after the saga's step: wait for the one expected.
        wait_until("the refund of order 3", || async {
            count(&db, "SELECT COUNT(*) FROM saga_payments WHERE refunded = 1").await == 1
        })
        .await;
        second.kill();

        let expected = [
            (SagaStatus::Completed, None, 3, vec!["payment", "inventory"]),
            (SagaStatus::Failed, Some("payment failed"), 2, vec![]),
            (
                SagaStatus::Failed,
                Some("inventory unavailable"),
                3,
                vec!["payment"],
            ),
            (SagaStatus::Completed, None, 3, vec!["payment", "inventory"]),
        ];
        for (order, (status, reason, steps, done)) in orders.iter().zip(expected) {
            let record = sagas
                .get::<OrderSaga>(order.correlation_id())
                .await
                .unwrap()
                .unwrap();
            let which = record.state.order_id;
            assert_eq!(record.status, status, "order {which} on {name}");
            assert_eq!(record.reason.as_deref(), reason, "order {which} on {name}");
            assert_eq!(
                record.version, steps,
                "order {which} on {name}: each step once"
            );
            assert_eq!(
                record.state.completed_steps, done,
                "order {which} on {name}"
            );
        }
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM saga_payments").await,
            3,
            "no payment twice"
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM saga_reservations").await,
            2,
            "orders 1 and 4 reserved, once each"
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM saga_payments WHERE refunded = 1 AND order_id = 3"
            )
            .await,
            1,
            "order 3's payment refunded"
        );
    }
}
