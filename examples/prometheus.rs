//! earn's metrics in Prometheus's text format, on embedded SQLite:
//! `cargo run --example prometheus`.
//!
//! `metrics-exporter-prometheus` is installed as the `metrics` recorder;
//! saves run hooks and publish model events, one handler fails once and is
//! retried, and the scrape text is printed. A server returns
//! `handle.render()` from its `/metrics` route (or enables the exporter's
//! `http-listener` feature). Every metric is described in `docs/metrics.md`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use earn::RetryPolicy;
use earn::prelude::*;
use metrics_exporter_prometheus::PrometheusBuilder;

/// An invoice; saving one publishes `invoice.created` / `invoice.updated`.
#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "invoices", events = "invoice")]
pub struct Invoice {
    /// Assigned by the database.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// Who pays.
    pub customer: String,
    /// Amount in cents.
    pub cents: i64,
}

#[hooks]
impl Invoice {
    #[before_save]
    fn positive(&self) -> Result<(), HookError> {
        if self.cents <= 0 {
            return Err(HookError::invalid("cents", "must be positive"));
        }
        Ok(())
    }
}

/// The mail server is busy the first time it is asked.
static MAIL_BUSY: AtomicBool = AtomicBool::new(true);

#[event_handler("invoice.created")]
async fn mail(event: &Event) -> Result<(), HandlerError> {
    let Invoice { customer, .. } = event.payload()?;
    let attempt = event.attempt();
    if MAIL_BUSY.swap(false, Ordering::SeqCst) {
        println!("[mail]  {customer}: refused on attempt {attempt}");
        return Err(HandlerError::msg("the mail server is busy"));
    }
    println!("[mail]  {customer}: invoice sent on attempt {attempt}");
    Ok(())
}

#[event_handler("invoice.*")]
fn audit(event: &Event) {
    println!("[audit] {}", event.name());
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before anything records: a metric recorded earlier went to the no-op
    // recorder and is not seen by this one.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    let bus = EventBus::builder()
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            jitter: 0.0,
        })
        .build()?;
    let db = Db::connect("sqlite::memory:").await?.with_bus(bus.clone());
    db.create_table::<Invoice>().await?;

    let mut first = None;
    for (customer, cents) in [("ada", 1200), ("grace", 800), ("alan", 450)] {
        let mut invoice = Invoice {
            id: None,
            customer: customer.into(),
            cents,
        };
        invoice.save(&db).await?;
        first.get_or_insert(invoice);
    }
    if let Some(mut invoice) = first {
        invoice.cents += 300;
        invoice.save(&db).await?;
    }
    let mut free = Invoice {
        id: None,
        customer: "nobody".into(),
        cents: 0,
    };
    let refused = free.save(&db).await.expect_err("the hook vetoes it");
    println!("[save]  refused: {refused}");
    bus.emit(Event::new("report.ready", &3)?).await;
    bus.wait_idle().await;

    println!("\n-- scrape (the earn_ lines)");
    for line in prometheus.render().lines() {
        if line.contains("earn_") {
            println!("{line}");
        }
    }
    bus.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
