//! What `#[model(created_at)]` / `#[model(updated_at)]` and a behaviour
//! add to a `save`: a model with two hooks of its own that sets the same
//! two timestamps by hand in `before_save`, against the same model with
//! the attributes and its two (no-op) hooks from a `#[behaviour]`,
//! 100 inserts then 100 updates in one transaction per sample, the two
//! interleaved (see `paired!`). Prints the difference per save in µs.
//!
//! `cargo bench --bench timestamps`

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "bench_plain_posts")]
struct Plain {
    #[model(primary_key, auto)]
    id: Option<i64>,
    title: String,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

/// The same timestamps set by hand, as a user without the feature would.
#[hooks]
impl Plain {
    #[before_save]
    fn noop_before(&mut self) {
        let now = Utc::now();
        self.created_at.get_or_insert(now);
        self.updated_at = Some(now);
    }
    #[after_save]
    fn noop_after(&self) {}
}

/// The same two hooks, written once for any model.
#[behaviour]
trait Noop: Model {
    #[before_save]
    fn noop_before(&mut self) {}
    #[after_save]
    fn noop_after(&self) {}
}

#[derive(Debug, Clone, Model)]
#[model(table = "bench_stamped_posts", behaviours(Noop))]
struct Stamped {
    #[model(primary_key, auto)]
    id: Option<i64>,
    title: String,
    #[model(created_at)]
    created_at: Option<DateTime<Utc>>,
    #[model(updated_at)]
    updated_at: Option<DateTime<Utc>>,
}

const SAVES: u32 = 100;

macro_rules! saves {
    ($db:expr, $model:ident) => {{
        let started = Instant::now();
        let mut tx = $db.begin().await.unwrap();
        let mut rows = Vec::new();
        for i in 0..SAVES {
            let mut row = $model {
                id: None,
                title: format!("t{i}"),
                created_at: None,
                updated_at: None,
            };
            row.save_in(&mut tx).await.unwrap();
            rows.push(row);
        }
        for row in &mut rows {
            row.title.push('!');
            row.save_in(&mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        started.elapsed()
    }};
}

fn timestamps(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(Db::connect("sqlite::memory:")).unwrap();
    rt.block_on(async {
        db.create_table::<Plain>().await.unwrap();
        db.create_table::<Stamped>().await.unwrap();
    });
    let extra = Mutex::new(Vec::new());
    c.bench_function("timestamps/100_inserts_100_updates", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (db, extra) = (&db, &extra);
            async move {
                let (mut plain, mut stamped) = (Duration::ZERO, Duration::ZERO);
                for _ in 0..iters {
                    plain += saves!(db, Plain);
                    stamped += saves!(db, Stamped);
                }
                let per_save = (stamped.as_secs_f64() - plain.as_secs_f64())
                    / f64::from(2 * SAVES)
                    / iters as f64;
                extra.lock().unwrap().push(per_save * 1e6);
                stamped
            }
        })
    });
    let mut extra = std::mem::take(&mut *extra.lock().unwrap());
    extra.sort_by(f64::total_cmp);
    let at = |q: f64| extra[((extra.len() - 1) as f64 * q).round() as usize];
    println!(
        "timestamps and a behaviour add {:.3} µs per save (median of {} paired samples; p10 {:.3}, p90 {:.3})",
        at(0.5),
        extra.len(),
        at(0.1),
        at(0.9)
    );
}

criterion_group!(benches, timestamps);
criterion_main!(benches);
