//! Exponential backoff with jitter, so that many clients that lost the same server do not come
//! back in lockstep.

use std::time::Duration;

use rand::Rng;

/// A reconnect or retry loop's backoff: [`retry_delay`] for attempt 1, 2, ... until `reset`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call is one more attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        retry_delay(self.initial, self.max, self.attempt)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The one backoff formula: the delay before retry number `attempt` (1 for the first retry).
/// The step is `initial` doubling up to `max`; the delay is half the step plus a random part of
/// the other half.
pub fn retry_delay(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let step = initial
        .checked_mul(1u32 << attempt.saturating_sub(1).min(20))
        .unwrap_or(max)
        .min(max);
    let half = step / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        for d in &delays[4..] {
            assert!(
                *d >= Duration::from_millis(500) && *d <= Duration::from_secs(1),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let (initial, max) = (Duration::from_secs(5), Duration::from_secs(600));
        let first = retry_delay(initial, max, 1);
        assert!(first >= Duration::from_millis(2500) && first <= initial);
        let third = retry_delay(initial, max, 3);
        assert!(third >= Duration::from_secs(10) && third <= Duration::from_secs(20));
        let late = retry_delay(initial, max, 40);
        assert!(late >= Duration::from_secs(300) && late <= max);
    }
}
