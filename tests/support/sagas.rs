//! The order saga of `examples/order_saga` with fresh tables, for the
//! saga tests.

#![allow(dead_code, unreachable_pub)]

#[path = "../../examples/order_saga/saga.rs"]
pub mod saga;

use earn::Db;
use earn::saga::Sagas;

/// Installs the outbox, the sagas' tables and the services' tables of
/// `db`, and empties them all.
pub async fn fresh(db: &Db) -> Sagas {
    db.install_outbox().await.unwrap();
    let sagas = Sagas::new(db);
    sagas.install().await.unwrap();
    saga::install_services(db).await.unwrap();
    for table in [
        "earn_outbox",
        "earn_sagas",
        "earn_inbox",
        "saga_payments",
        "saga_reservations",
    ] {
        db.execute_unprepared(&format!("DELETE FROM {table}"))
            .await
            .unwrap();
    }
    sagas
}
