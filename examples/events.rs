//! Events: `#[event_handler]` functions, a service attached at run time,
//! model events after commit, publish with retries and a dead letter.
//!
//! `cargo run --example events`

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use earn::prelude::*;
use earn::{DeadLetterFilter, DeadLetters, PageRequest, RetryPolicy, testing::Recorder};

/// A customer; saving one emits `customer.created` / `updated` / `deleted`.
#[derive(Debug, Clone, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "customers", events = "customer")]
pub struct Customer {
    /// Assigned by the database.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// Display name.
    pub name: String,
}

/// Registered at link time: on every bus built with the default builder.
#[event_handler("customer.created", priority = 10)]
async fn welcome(customer: Customer) {
    println!("[welcome]  hello {} (id {:?})", customer.name, customer.id);
}

/// A wildcard: every customer event, after the more specific handlers.
#[event_handler("customer.*")]
fn audit(event: &Event) {
    println!("[audit]    {} {}", event.name(), event.payload_json());
}

/// A service with state, attached at run time.
struct Billing {
    invoices: AtomicU32,
}

#[service]
impl Billing {
    #[event_handler("customer.created")]
    async fn open_account(&self, event: &Event) -> Result<(), HandlerError> {
        let n = self.invoices.fetch_add(1, Ordering::SeqCst) + 1;
        println!("[billing]  account #{n} for event {}", event.id());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::builder()
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            jitter: 0.2,
        })
        .build()?;
    let billing = bus.attach(Arc::new(Billing {
        invoices: AtomicU32::new(0),
    }))?;
    let recorder = Recorder::attach(&bus, "**")?;

    let db = Db::connect("sqlite::memory:").await?.with_bus(bus.clone());
    db.create_table::<Customer>().await?;

    println!("-- a save: events wait for the commit");
    let mut ada = Customer {
        id: None,
        name: "Ada".into(),
    };
    ada.save(&db).await?;
    bus.wait_idle().await;

    println!("-- detach the service: billing no longer runs");
    bus.detach(billing);
    ada.name = "Ada Lovelace".into();
    ada.save(&db).await?;
    bus.wait_idle().await;

    println!("-- a flaky handler is retried, then dead-lettered");
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    bus.subscribe_sync("mail.send", 0, move |event: &Event| {
        counter.fetch_add(1, Ordering::SeqCst);
        println!("[mailer]   attempt {} failed", event.attempt());
        Err::<(), _>(HandlerError::msg("smtp is down"))
    })?;
    bus.publish(Event::new("mail.send", &"ada@example.com")?)
        .await?;
    bus.wait_idle().await;
    let dead = bus.dead_letter_source();
    for letter in dead
        .list(&DeadLetterFilter::default(), PageRequest::first(10))
        .await?
    {
        println!(
            "[dead]     {} by {} after {} attempts: {}",
            letter.name,
            letter.handler.as_deref().unwrap_or("-"),
            letter.attempts,
            letter.reason
        );
    }
    println!("recorded: {:?}", recorder.names());
    let report = bus.shutdown(Duration::from_secs(1)).await;
    println!(
        "shutdown: drained = {}, left = {}",
        report.drained, report.left
    );
    Ok(())
}
