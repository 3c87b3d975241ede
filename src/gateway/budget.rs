//! The body bytes the gateway holds at once, bounded: senders are not authenticated until their
//! whole body is in, so a flood of large bodies that stall would otherwise hold gigabytes.
//!
//! Each request's first [`FREE_BYTES`] are its own (a Qlik event is a few KB, so signed
//! webhooks never wait on the budget, and connections are capped, which bounds these); every
//! byte beyond comes from one shared budget (`gateway.body_budget`). A body that finds the
//! budget spent is answered 503 with Retry-After. When the bytes in flight fall back to zero
//! after a large peak, freed memory is given back to the system.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of every body that do not count against the budget.
pub const FREE_BYTES: usize = 16 * 1024;
/// A peak of bytes in flight above this is worth giving back once they are all gone.
const GIVE_BACK_ABOVE: usize = 8 << 20;

/// The shared budget; cheap to clone.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    /// Bytes of bodies being read (free allowances included).
    in_flight: Arc<AtomicUsize>,
    /// The largest `in_flight` since memory was last given back.
    peak: Arc<AtomicUsize>,
}

/// The budget is spent: answer 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent;

impl BodyBudget {
    pub fn new(bytes: u64) -> Self {
        let bytes = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(bytes)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A new body's account, empty.
    pub fn open(&self) -> Held {
        Held {
            budget: self.clone(),
            bytes: 0,
            permits: None,
        }
    }

    /// Bytes of bodies being read now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// What one body holds; given back when dropped.
pub struct Held {
    budget: BodyBudget,
    bytes: usize,
    permits: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// The body now holds `total` bytes; takes what it needs beyond its free allowance.
    pub fn grow_to(&mut self, total: usize) -> Result<(), Spent> {
        if total <= self.bytes {
            return Ok(());
        }
        let charged = |bytes: usize| bytes.saturating_sub(FREE_BYTES);
        let need = charged(total) - charged(self.bytes);
        if need > 0 {
            let need = u32::try_from(need).map_err(|_| Spent)?;
            let more = self
                .budget
                .permits
                .clone()
                .try_acquire_many_owned(need)
                .map_err(|_| Spent)?;
            match &mut self.permits {
                Some(permits) => permits.merge(more),
                None => self.permits = Some(more),
            }
        }
        let now = self
            .budget
            .in_flight
            .fetch_add(total - self.bytes, Ordering::Relaxed)
            + (total - self.bytes);
        self.budget.peak.fetch_max(now, Ordering::Relaxed);
        self.bytes = total;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let left = self
            .budget
            .in_flight
            .fetch_sub(self.bytes, Ordering::Relaxed)
            - self.bytes;
        if left == 0 && self.budget.peak.swap(0, Ordering::Relaxed) > GIVE_BACK_ABOVE {
            // The permits go back first (below), then the heap they stood for.
            drop(self.permits.take());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn_blocking(crate::memory::give_back);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_are_free_and_large_ones_share_the_budget() {
        let budget = BodyBudget::new(100_000);
        let mut small: Vec<Held> = (0..1000).map(|_| budget.open()).collect();
        for held in &mut small {
            held.grow_to(FREE_BYTES).unwrap();
        }
        assert_eq!(budget.in_flight(), 1000 * FREE_BYTES);
        let mut large = budget.open();
        large.grow_to(FREE_BYTES + 60_000).unwrap();
        let mut second = budget.open();
        assert_eq!(second.grow_to(FREE_BYTES + 60_000), Err(Spent));
        drop(large);
        second.grow_to(FREE_BYTES + 60_000).unwrap();
        drop(second);
        drop(small);
        assert_eq!(budget.in_flight(), 0);
        assert_eq!(budget.permits.available_permits(), 100_000);
    }
}
