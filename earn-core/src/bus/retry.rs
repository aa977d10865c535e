//! How `publish` retries a failing handler.

use std::time::Duration;

use crate::Backoff;

/// How `publish` retries a failing handler: up to `max_attempts` calls in
/// all, waiting `base · 2^(attempt-1)` (capped at `max_delay`) between
/// them, each wait shortened by a random fraction up to `jitter`.
///
/// It applies to [`publish`](super::EventBus::publish) (and
/// `publish_then`, the outbox's way in) only. On the transport path
/// ([`deliver`](super::EventBus::deliver) and its siblings) the transport
/// owns failures: each delivery makes one attempt of each handler not yet
/// finished, [`Event::attempt`](crate::Event::attempt) is the transport's
/// delivery count, and the transport's own limit (Redis's
/// `max_deliveries`) is the one budget. There is no need to give a bus
/// that consumes Redis `RetryPolicy::none()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Calls in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first wait.
    pub base_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// 0.0 (exact delays) to 1.0 (anywhere between 0 and the delay).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// No retries: a failure goes straight to dead letters.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before attempt `next` (2 for the first retry).
    pub fn delay(&self, next: u32) -> Duration {
        Backoff::new(self.base_delay, self.max_delay)
            .jitter(self.jitter)
            .delay(next.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_only_shortens() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            jitter: 0.0,
        };
        let delays: Vec<_> = (2..=6).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        let jittered = RetryPolicy {
            jitter: 0.5,
            ..policy
        };
        for n in 2..=6 {
            let d = jittered.delay(n);
            assert!(d <= policy.delay(n) && d >= policy.delay(n) / 2, "{d:?}");
        }
    }
}
