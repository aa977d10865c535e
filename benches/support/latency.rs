//! Commit → handler latency through the transactional outbox and a
//! broker, at a steady 1,000 events/s for 5 s: each event is committed in
//! its own SQLite transaction with the outbox on, handed to the broker
//! after the commit, read by a consumer of a group and handled; the
//! handler records how long after the commit started it ran. The broker
//! benches (`redis_latency`, `nats_latency`) connect their transport and
//! run [`drive`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earn::{Db, Event, EventBus, EventSink, Outbox};

pub(crate) const RATE: u64 = 1_000;
pub(crate) const SECONDS: u64 = 5;

/// When each event's commit started, and each handled event's latency.
#[derive(Clone, Default)]
pub(crate) struct Clock {
    started: Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl Clock {
    /// A bus whose handler of `tick` records the latency of each event.
    pub(crate) fn bus(&self) -> Result<EventBus, Box<dyn std::error::Error>> {
        let bus = EventBus::builder().without_registered_handlers().build()?;
        let clock = self.clone();
        bus.subscribe_sync("tick", 0, move |event: &Event| {
            let at = clock.started.lock().unwrap().remove(&event.id());
            if let Some(at) = at {
                clock.latencies.lock().unwrap().push(at.elapsed());
            }
        })?;
        Ok(bus)
    }

    /// Commits `RATE × SECONDS` events through an outbox handing them to
    /// `sink`, waits for them to be handled, and prints the percentiles.
    pub(crate) async fn drive(
        &self,
        label: &str,
        sink: impl EventSink,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let db = Db::connect("sqlite::memory:")
            .await?
            .with_outbox(Outbox::default())
            .with_outbox_sink(sink);
        db.install_outbox().await?;
        let total = RATE * SECONDS;
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for n in 0..total {
            ticker.tick().await;
            let event = Event::new("tick", &n)?;
            self.started
                .lock()
                .unwrap()
                .insert(event.id(), Instant::now());
            let mut tx = db.begin().await?;
            tx.raise(event)?;
            tx.commit().await?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.latencies.lock().unwrap().len() < total as usize && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut latencies = self.latencies.lock().unwrap().clone();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "commit → handler through outbox + {label} at {RATE}/s for {SECONDS} s: \
             {} of {total} handled; p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            latencies.len(),
            at(0.50),
            at(0.90),
            at(0.99),
            latencies[latencies.len() - 1],
        );
        Ok(())
    }
}
