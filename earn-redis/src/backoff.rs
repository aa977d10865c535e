//! Capped exponential backoff with jitter, for retries after a Redis error.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(50);
const CAP: Duration = Duration::from_secs(5);

/// The wait before the next retry: 50 ms doubling up to 5 s, each wait
/// shortened by up to a quarter at random so consumers that failed
/// together do not retry together.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: FIRST }
    }

    /// After a success: the next failure waits the shortest time again.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }

    /// The wait for this failure; doubles the next one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(CAP);
        delay.mul_f64(1.0 - 0.25 * random_unit())
    }
}

/// A cheap pseudo-random number in [0, 1): jitter needs spread, not quality.
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
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_delay()).collect();
        assert!(waits[0] <= FIRST && waits[0] >= FIRST * 3 / 4);
        assert!(waits[9] <= CAP && waits[9] >= CAP * 3 / 4);
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST);
    }
}
