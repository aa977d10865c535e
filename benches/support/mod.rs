//! Shared by the benches.

/// Runs `earn` and `raw` in turn `iters` times; returns the time of
/// `earn` and keeps the sample's earn / raw ratio in
/// `ratios`. Both sides are measured interleaved, one step apart, so a slow
/// spell of the machine (a server checkpoint, another process) weighs on
/// both alike: the ratios are what the target is about.
#[allow(unused_macros)]
macro_rules! paired {
    ($iters:expr, $ratios:expr, earn: $earn:expr, raw: $raw:expr) => {{
        let (mut earn, mut raw) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        for _ in 0..$iters {
            let started = std::time::Instant::now();
            $raw;
            raw += started.elapsed();
            let started = std::time::Instant::now();
            $earn;
            earn += started.elapsed();
        }
        $ratios
            .lock()
            .unwrap()
            .push(earn.as_secs_f64() / raw.as_secs_f64());
        earn
    }};
}

/// The median and the 10th and 90th percentiles of the ratios.
#[allow(dead_code)]
pub(crate) fn report(name: &str, ratios: &std::sync::Mutex<Vec<f64>>) {
    let mut ratios = std::mem::take(&mut *ratios.lock().unwrap());
    ratios.sort_by(f64::total_cmp);
    if ratios.is_empty() {
        return;
    }
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: earn / raw sqlx = {:.3} (median of {} paired samples; p10 {:.3}, p90 {:.3})",
        at(0.5),
        ratios.len(),
        at(0.1),
        at(0.9)
    );
}

use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that never waits (sync hooks, sync handlers), once, with
/// no runtime in the way.
#[allow(dead_code)]
pub(crate) fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a benchmarked call waited"),
    }
}

/// A PostgreSQL pool whose connections work in schema `earn_bench`, so
/// tests of other checkouts using the same database cannot touch a
/// bench's tables.
#[allow(dead_code)]
pub(crate) async fn postgres_bench_pool(url: &str) -> earn::sqlx::PgPool {
    use earn::sqlx;
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA IF NOT EXISTS earn_bench")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    sqlx::PgPool::connect_with(options.options([("search_path", "earn_bench")]))
        .await
        .unwrap()
}
