//! Capped exponential backoff with jitter: the waits between retries of a
//! failing handler (`RetryPolicy`), of a transport after a broker error,
//! of the outbox relay after a database error, of a lost `LISTEN`.

use std::time::Duration;

/// Waits that start at `first`, double on each failure up to `max`, and
/// are each shortened by a random fraction of at most `jitter`, so that
/// processes that failed together do not retry together.
///
/// A building block of earn's own crates (the outbox relay, the Redis
/// transport); the `earn` facade does not re-export it.
///
/// ```
/// use std::time::Duration;
/// use earn_core::Backoff;
///
/// let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
/// let waits: Vec<u128> = (1..=5).map(|retry| policy.delay(retry).as_millis()).collect();
/// assert_eq!(waits, [100, 200, 400, 800, 1000]);
///
/// let mut failures = policy.start();
/// assert_eq!(failures.next_delay(), Duration::from_millis(100));
/// assert_eq!(failures.next_delay(), Duration::from_millis(200));
/// failures.reset(); // a success: the next failure waits the shortest time again
/// assert_eq!(failures.next_delay(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// Waits from `first` doubling up to `max`, shortened by up to a
    /// quarter at random.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            jitter: 0.25,
        }
    }

    /// The largest fraction a wait is shortened by at random: 0.0 (exact
    /// waits) to 1.0 (anywhere between nothing and the wait).
    pub const fn jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// The wait before retry `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let delay = self.first.saturating_mul(1 << exponent).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return delay;
        }
        delay.mul_f64(1.0 - jitter * random_unit())
    }

    /// The waits of a run of failures, for a loop that retries until it
    /// succeeds.
    pub const fn start(self) -> Failures {
        Failures {
            policy: self,
            retry: 0,
        }
    }
}

/// Counts failures in a row: see [`Backoff::start`].
#[derive(Debug, Clone)]
pub struct Failures {
    policy: Backoff,
    retry: u32,
}

impl Failures {
    /// The wait after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.retry = self.retry.saturating_add(1);
        self.policy.delay(self.retry)
    }

    /// A success: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.retry = 0;
    }
}

/// A cheap pseudo-random number in [0, 1): jitter needs spread, not
/// cryptographic quality.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_only_shortens() {
        let exact = Backoff::new(Duration::from_millis(10), Duration::from_millis(50)).jitter(0.0);
        let jittered = exact.jitter(0.5);
        for retry in 1..=6 {
            let d = jittered.delay(retry);
            assert!(
                d <= exact.delay(retry) && d >= exact.delay(retry) / 2,
                "{d:?}"
            );
        }
        assert_eq!(exact.delay(40), Duration::from_millis(50), "no overflow");
    }
}
