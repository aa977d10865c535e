//! Hook dispatch without SQL: five no-op hooks of one phase.
//!
//! `cargo bench --bench hooks`

use std::hint::black_box;

mod support;

use support::poll_ready;

use criterion::{Criterion, criterion_group, criterion_main};
use earn::prelude::*;
use earn::{HookPhase, Operation};

/// A model with five no-op `before_save` hooks, sync, and five async.
#[derive(Debug, Clone, Model)]
#[model(table = "bench_hooked")]
struct Hooked {
    #[model(primary_key, auto)]
    id: Option<i64>,
    name: String,
}

#[hooks]
impl Hooked {
    #[before_save]
    fn one(&mut self) {}
    #[before_save(priority = 1)]
    fn two(&self) {}
    #[before_save]
    fn three(&self, _ctx: &mut HookContext<'_>) {}
    #[before_save]
    fn four(&self) -> Result<(), HookError> {
        Ok(())
    }
    #[before_save(priority = -1)]
    fn five(&mut self, _ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        Ok(())
    }

    #[before_update]
    async fn a1(&self) {}
    #[before_update]
    async fn a2(&self) {}
    #[before_update]
    async fn a3(&self, _ctx: &mut HookContext<'_>) {}
    #[before_update]
    async fn a4(&self) -> Result<(), HookError> {
        Ok(())
    }
    #[before_update]
    async fn a5(&mut self) {}
}

fn hooks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(Db::connect("sqlite::memory:")).unwrap();
    let mut tx = rt.block_on(db.begin()).unwrap();
    let mut model = Hooked {
        id: None,
        name: "n".into(),
    };

    let mut group = c.benchmark_group("hooks");
    group.bench_function("five_sync_noop_hooks_one_phase", |b| {
        b.iter(|| {
            poll_ready(earn::__private::run_phase(
                HookPhase::BeforeSave,
                Operation::Create,
                black_box(&mut model),
                &mut tx,
            ))
            .unwrap()
        })
    });
    group.bench_function("five_async_noop_hooks_one_phase", |b| {
        b.iter(|| {
            poll_ready(earn::__private::run_phase(
                HookPhase::BeforeUpdate,
                Operation::Update,
                black_box(&mut model),
                &mut tx,
            ))
            .unwrap()
        })
    });
    group.bench_function("phase_without_hooks", |b| {
        b.iter(|| {
            poll_ready(earn::__private::run_phase(
                HookPhase::AfterDelete,
                Operation::Delete,
                black_box(&mut model),
                &mut tx,
            ))
            .unwrap()
        })
    });
    group.finish();
    // A pooled connection must be released inside the runtime.
    rt.block_on(tx.rollback()).unwrap();
}

criterion_group!(benches, hooks);
criterion_main!(benches);
