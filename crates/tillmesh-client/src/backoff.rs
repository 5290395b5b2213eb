//! Exponential backoff with ±50 % jitter, so that many tills coming back after an outage do
//! not all knock at HQ's door in the same second.

use std::time::Duration;

/// The wait before the next attempt after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// The longest wait, jitter included.
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failures` consecutive failures (1 for the first): `base × 2^(failures−1)`
    /// capped at `max`, then spread over ±50 % by `random`, never above `max` nor below half of
    /// `base`.
    pub fn delay(&self, failures: u32, random: u64) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        let exponential = self.base.saturating_mul(1u32 << doublings.min(31)).min(self.max);
        let nanos = u64::try_from(exponential.as_nanos()).unwrap_or(u64::MAX);
        // Half of it fixed, the other half to one and a half spread by `random`.
        let spread = random % nanos.saturating_add(1);
        let jittered = Duration::from_nanos((nanos / 2).saturating_add(spread));
        jittered.min(self.max).max(self.base / 2)
    }

    /// [`Backoff::delay`] with fresh randomness (none available: no jitter, half the wait).
    pub fn delay_now(&self, failures: u32) -> Duration {
        self.delay(failures, getrandom::u64().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_max_within_half_and_one_and_a_half() {
        let backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };
        for (failures, nominal) in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 60), (40, 60), (u32::MAX, 60)] {
            let nominal = Duration::from_secs(nominal);
            for random in [0, 1, 12_345, u64::MAX / 3, u64::MAX] {
                let delay = backoff.delay(failures, random);
                assert!(delay >= nominal / 2, "{failures} failures, {random}: {delay:?}");
                assert!(delay <= (nominal * 3 / 2).min(backoff.max), "{failures}, {random}: {delay:?}");
            }
        }
        assert_eq!(backoff.delay(1, 0), Duration::from_millis(500));
        assert_eq!(backoff.delay(3, 4_000_000_000), Duration::from_secs(6));
    }

    #[test]
    fn never_zero() {
        let backoff = Backoff { base: Duration::from_millis(10), max: Duration::from_millis(10) };
        assert!(backoff.delay(1, 0) >= Duration::from_millis(5));
        assert!(backoff.delay_now(100) >= Duration::from_millis(5));
    }
}
