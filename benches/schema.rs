//! `check_schema` of 20 models at start-up, on PostgreSQL (set
//! `EARN_POSTGRES_URL`; SQLite in memory otherwise).
//!
//! `cargo bench --bench schema`

use criterion::{Criterion, criterion_group, criterion_main};
use earn::prelude::*;

macro_rules! models {
    ($($name:ident => $table:literal),* $(,)?) => {
        $(
            #[derive(Debug, Clone, Model)]
            #[model(table = $table)]
            struct $name {
                #[model(primary_key, auto)]
                id: Option<i64>,
                name: String,
                count: i64,
                note: Option<String>,
            }
        )*

        async fn create_all(db: &Db) {
            $(db.create_table::<$name>().await.unwrap();)*
        }

        async fn check_all(db: &Db) {
            $(db.check_schema::<$name>().await.unwrap();)*
        }
    };
}

models!(
    M01 => "bench_schema_01", M02 => "bench_schema_02", M03 => "bench_schema_03",
    M04 => "bench_schema_04", M05 => "bench_schema_05", M06 => "bench_schema_06",
    M07 => "bench_schema_07", M08 => "bench_schema_08", M09 => "bench_schema_09",
    M10 => "bench_schema_10", M11 => "bench_schema_11", M12 => "bench_schema_12",
    M13 => "bench_schema_13", M14 => "bench_schema_14", M15 => "bench_schema_15",
    M16 => "bench_schema_16", M17 => "bench_schema_17", M18 => "bench_schema_18",
    M19 => "bench_schema_19", M20 => "bench_schema_20",
);

fn schema(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = std::env::var("EARN_POSTGRES_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let db = rt.block_on(Db::connect(&url)).unwrap();
    rt.block_on(create_all(&db));
    let mut group = c.benchmark_group(format!("check_schema_{:?}", db.dialect()));
    group.sample_size(20);
    group.bench_function("20_models", |b| b.to_async(&rt).iter(|| check_all(&db)));
    group.finish();
}

criterion_group!(benches, schema);
criterion_main!(benches);
