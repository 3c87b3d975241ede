//! What a writer does when the state store refuses its writes (a full disk, an I/O error):
//! [`StoreTrouble`] backs it off, counts it in `store_errors_total`, takes it out of readiness
//! (`/readyz`, `store_writable`) until its next write succeeds, and lets it log the repeated
//! error once per [`LOG_EVERY`] with a count instead of once per attempt.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// A repeated store error is logged at most once per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(30);
/// First and longest wait before a failed store call is tried again.
const RETRY_INITIAL: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Logs the first of a run of repeated errors, then at most one per interval.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this occurrence is to be logged, `n` being how many were not since the
    /// last one logged; `None` when it is to be left out (and counted).
    pub fn admit(&mut self) -> Option<u64> {
        match self.last {
            Some(at) if at.elapsed() < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(Instant::now());
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// The run of errors ended: returns how many were left out since the last one logged, and
    /// logs the next error at once.
    pub fn reset(&mut self) -> u64 {
        self.last = None;
        std::mem::take(&mut self.suppressed)
    }
}

/// One writer's state store trouble: backoff, readiness and log limit.
pub struct StoreTrouble {
    metrics: Arc<Metrics>,
    /// This writer's last write failed (it counts in `store_writers_failing`).
    failing: bool,
    troubled: bool,
    log: LogLimit,
    backoff: Backoff,
}

/// What a writer does after a failed store call.
#[derive(Debug, Clone, Copy)]
pub struct Failed {
    /// How long to wait before trying again.
    pub retry_in: Duration,
    /// `Some(n)`: log this error, with `n` left out since the last one logged.
    pub log: Option<u64>,
}

impl StoreTrouble {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            failing: false,
            troubled: false,
            log: LogLimit::new(LOG_EVERY),
            backoff: Backoff::new(RETRY_INITIAL, RETRY_MAX),
        }
    }

    /// A write failed: counted, not writable until a write of this writer succeeds.
    pub fn write_failed(&mut self) -> Failed {
        if !self.failing {
            self.failing = true;
            self.metrics
                .store_writers_failing
                .fetch_add(1, Ordering::Relaxed);
        }
        self.failed()
    }

    /// A read failed: backed off and logged like a write, readiness unchanged.
    pub fn read_failed(&mut self) -> Failed {
        self.failed()
    }

    fn failed(&mut self) -> Failed {
        self.troubled = true;
        self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
        Failed {
            retry_in: self.backoff.next_delay(),
            log: self.log.admit(),
        }
    }

    /// A write succeeded: writable again (as far as this writer knows), backoff reset. `Some(n)`
    /// when this ends a run of errors, `n` being the errors not logged.
    pub fn write_succeeded(&mut self) -> Option<u64> {
        if self.failing {
            self.failing = false;
            self.metrics
                .store_writers_failing
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.read_succeeded()
    }

    /// A read succeeded: the backoff starts over; readiness is left to the writes.
    pub fn read_succeeded(&mut self) -> Option<u64> {
        if self.failing || !std::mem::take(&mut self.troubled) {
            return None;
        }
        self.backoff.reset();
        Some(self.log.reset())
    }
}

impl Drop for StoreTrouble {
    fn drop(&mut self) {
        if self.failing {
            self.metrics
                .store_writers_failing
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_error_is_logged_once_per_interval_with_a_count() {
        let mut limit = LogLimit::new(Duration::from_secs(3600));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.reset(), 2);
        assert_eq!(limit.admit(), Some(0), "a new run logs at once");
        let mut every_time = LogLimit::new(Duration::ZERO);
        assert_eq!(every_time.admit(), Some(0));
        assert_eq!(every_time.admit(), Some(0));
    }

    #[test]
    fn a_failing_writer_makes_the_store_unwritable_until_its_write_succeeds() {
        let metrics = Arc::new(Metrics::default());
        let (mut router, mut worker) = (
            StoreTrouble::new(metrics.clone()),
            StoreTrouble::new(metrics.clone()),
        );
        assert!(metrics.store_writable());
        let first = router.write_failed();
        assert_eq!(first.log, Some(0));
        assert!(
            router.write_failed().log.is_none(),
            "the repeat is left out"
        );
        worker.write_failed();
        assert!(!metrics.store_writable());
        assert_eq!(metrics.store_errors.load(Ordering::Relaxed), 3);
        assert_eq!(router.read_succeeded(), None, "a read proves nothing");
        assert_eq!(router.write_succeeded(), Some(1));
        assert!(!metrics.store_writable(), "the worker still fails");
        drop(worker);
        assert!(metrics.store_writable());
        assert_eq!(router.write_succeeded(), None, "no run of errors to end");
    }
}
