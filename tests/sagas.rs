//! Sagas on every database: the seeds' order flow (examples/order_saga)
//! with its compensation, a redelivered event that moves a saga once, an
//! event of no saga ignored, a failing step rolled back and retried, and
//! a timeout that fails a saga and runs its compensations. (A worker
//! killed mid-saga: tests/saga_crash.rs.)

mod common;
#[path = "support/sagas.rs"]
mod sagas_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::each_backend_on_files;
use earn::prelude::*;
use earn::saga::{Saga, SagaContext, SagaRecord, SagaStatus, Sagas};
use earn::{Outbox, RetryPolicy};
use sagas_support::saga::{self, OrderSaga};

fn bus() -> EventBus {
    EventBus::builder()
        .without_registered_handlers()
        .retry(RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            jitter: 0.0,
        })
        .build()
        .unwrap()
}

async fn setup(db: Db, bus: &EventBus) -> (Db, Sagas) {
    let db = db.with_bus(bus.clone()).with_outbox(Outbox::default());
    let sagas = sagas_support::fresh(&db).await;
    (db, sagas)
}

async fn raise(db: &Db, event: &Event) {
    let mut tx = db.begin().await.unwrap();
    tx.raise(event.clone()).unwrap();
    tx.commit().await.unwrap();
}

async fn finished<S: Saga>(sagas: &Sagas, id: uuid::Uuid) -> SagaRecord<S> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(record) = sagas.get::<S>(id).await.unwrap()
            && record.status != SagaStatus::Running
        {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "saga {id} still running after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_saga_completes_declines_and_compensates() {
    each_backend_on_files("sagas", |db| async move {
        let bus = bus();
        let (db, sagas) = setup(db, &bus).await;
        sagas.register::<OrderSaga>(&bus).unwrap();
        saga::subscribe_services(&bus, &db, false).unwrap();
        let cancelled = bus.wait_for("order.cancelled", Duration::from_secs(20));

        let paid = saga::order_created(1, 250, &["book"]);
        let declined = saga::order_created(2, 5_000, &["piano"]);
        let missing = saga::order_created(3, 90, &["unobtainium"]);
        for order in [&paid, &declined, &missing] {
            raise(&db, order).await;
        }
        let record = finished::<OrderSaga>(&sagas, paid.correlation_id()).await;
        assert_eq!(record.status, SagaStatus::Completed);
        assert_eq!(record.state.completed_steps, ["payment", "inventory"]);
        assert_eq!(record.version, 3);
        let record = finished::<OrderSaga>(&sagas, declined.correlation_id()).await;
        assert_eq!(
            (record.status, record.reason.as_deref()),
            (SagaStatus::Failed, Some("payment failed"))
        );
        let record = finished::<OrderSaga>(&sagas, missing.correlation_id()).await;
        assert_eq!(
            (record.status, record.reason.as_deref()),
            (SagaStatus::Failed, Some("inventory unavailable"))
        );
        assert_eq!(record.state.completed_steps, ["payment"]);
        // The cancellation is in the saga's correlation: the chain is one.
        let cancelled = cancelled.await.unwrap();
        assert!(
            [declined.correlation_id(), missing.correlation_id()]
                .contains(&cancelled.correlation_id())
        );
        bus.wait_idle().await;
        let refunded: Vec<i64> =
            common::column(&db, "SELECT order_id FROM saga_payments WHERE refunded = 1").await;
        assert_eq!(
            refunded,
            [3],
            "only the order whose items were missing is refunded"
        );

        // The same answer delivered again moves nothing; an answer of no
        // saga is ignored.
        let answer = Event::new("inventory.reserved", &serde_json::json!({"order_id": 1}))
            .unwrap()
            .caused_by(&paid);
        let delivery = bus.deliver(answer.clone()).await.unwrap();
        assert!(delivery.is_ok(), "{}", delivery.reason());
        bus.deliver(answer).await.unwrap();
        assert_eq!(
            sagas
                .get::<OrderSaga>(paid.correlation_id())
                .await
                .unwrap()
                .unwrap()
                .version,
            3
        );
        let stray = Event::new("payment.completed", &serde_json::json!({"order_id": 9})).unwrap();
        assert!(bus.deliver(stray.clone()).await.unwrap().is_ok());
        assert!(
            sagas
                .get::<OrderSaga>(stray.correlation_id())
                .await
                .unwrap()
                .is_none()
        );
        bus.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// A saga that books a hotel, gives up waiting for the flight after a
/// moment, and fails its first steps twice before they commit.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Trip {
    hotel: bool,
}

static TRIP_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

impl Saga for Trip {
    const NAME: &'static str = "trip";
    const STARTS: &'static [&'static str] = &["trip.booked"];
    const HANDLES: &'static [&'static str] = &["flight.confirmed"];

    async fn handle(
        &mut self,
        event: &Event,
        saga: &mut SagaContext<'_>,
    ) -> Result<(), HandlerError> {
        match event.name().as_str() {
            "trip.booked" => {
                self.hotel = true;
                saga.compensate_with(Event::new("hotel.cancel", &1)?);
                saga.send(Event::new("flight.request", &1)?);
                saga.timeout_after(Duration::from_millis(200));
                // Everything above is rolled back twice.
                if TRIP_ATTEMPTS.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(HandlerError::msg("the hotel's API is busy"));
                }
            }
            _ => saga.complete(),
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_rolls_back_and_a_timeout_fails_the_saga_with_its_compensations() {
    each_backend_on_files("trips", |db| async move {
        TRIP_ATTEMPTS.store(0, Ordering::SeqCst);
        let bus = bus();
        let (db, sagas) = setup(db, &bus).await;
        sagas.register::<Trip>(&bus).unwrap();
        let requests = Arc::new(AtomicU32::new(0));
        let counted = requests.clone();
        bus.subscribe_sync("flight.request", 0, move |_: &Event| {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let cancel = bus.wait_for("hotel.cancel", Duration::from_secs(20));
        let _timeouts = sagas.start_timeouts(Duration::from_millis(20));

        let trip = Event::new("trip.booked", &1).unwrap();
        raise(&db, &trip).await;
        let record = finished::<Trip>(&sagas, trip.correlation_id()).await;
        assert_eq!(
            (record.status, record.reason.as_deref()),
            (SagaStatus::Failed, Some("timed out"))
        );
        assert!(record.state.hotel);
        assert_eq!(record.version, 2, "the committed start, then the timeout");
        assert_eq!(TRIP_ATTEMPTS.load(Ordering::SeqCst), 3);
        let cancel = cancel.await.unwrap();
        assert_eq!(cancel.correlation_id(), trip.correlation_id());
        bus.wait_idle().await;
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "what failed steps sent was never sent"
        );
        // A late answer finds the saga finished.
        let late = Event::new("flight.confirmed", &1).unwrap().caused_by(&trip);
        assert!(bus.deliver(late).await.unwrap().is_ok());
        assert_eq!(
            sagas
                .get::<Trip>(trip.correlation_id())
                .await
                .unwrap()
                .unwrap()
                .status,
            SagaStatus::Failed
        );
        bus.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}
