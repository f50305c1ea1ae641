//! Requeue decisions as values. Nothing here sleeps or reads a clock: the
//! caller passes the attempt count and a jitter sample, and schedules.

use std::time::Duration;

use crate::{Error, FailureKind};

/// Retry policy: exponential from `base`, capped at `max`, with up to
/// `jitter` (a fraction) added so that many objects do not retry in lockstep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Fraction of the delay added at most, `0.0..=1.0`.
    pub jitter: f64,
    /// Requeue interval when everything is healthy, to catch drift.
    pub resync: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_mins(5),
            jitter: 0.1,
            resync: Duration::from_mins(5),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 for the first retry).
    /// `sample` is a uniform random number in `[0, 1)` supplied by the caller.
    pub fn delay(&self, attempt: u32, sample: f64) -> Duration {
        let exp = self.base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let capped = exp.min(self.max);
        let jitter = capped.mul_f64(self.jitter.clamp(0.0, 1.0) * sample.clamp(0.0, 1.0));
        (capped + jitter).min(self.max.mul_f64(1.0 + self.jitter.clamp(0.0, 1.0)))
    }

    /// The delay after `errors` on attempt `attempt`: the backoff, but never
    /// sooner than a server's `Retry-After`.
    pub fn after_errors(&self, errors: &[Error], attempt: u32, sample: f64) -> Duration {
        let hint = errors
            .iter()
            .filter_map(|e| match e.failure_kind() {
                Some(FailureKind::Throttled {
                    retry_after_secs: Some(s),
                }) => Some(Duration::from_secs(s)),
                _ => None,
            })
            .max()
            .unwrap_or_default();
        self.delay(attempt, sample).max(hint)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::error::Layer;

    #[test]
    fn grows_exponentially_and_honours_retry_after() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        let secs: Vec<u64> = (1..=10).map(|a| b.delay(a, 0.5).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        let throttled = Error::adapter(
            Layer::Cloud,
            "put_load_balancer",
            FailureKind::Throttled {
                retry_after_secs: Some(90),
            },
            std::io::Error::other("429"),
        );
        assert_eq!(
            b.after_errors(&[throttled], 1, 0.0),
            Duration::from_secs(90)
        );
    }

    proptest! {
        #[test]
        fn delays_are_bounded_and_monotonic(attempt in 1u32..80, sample in 0.0f64..1.0) {
            let b = Backoff { jitter: 0.0, ..Backoff::default() };
            prop_assert!(b.delay(attempt, sample) <= b.max);
            prop_assert!(b.delay(attempt + 1, sample) >= b.delay(attempt, sample));
            let j = Backoff::default();
            prop_assert!(j.delay(attempt, sample) <= j.max.mul_f64(1.1));
        }
    }
}
