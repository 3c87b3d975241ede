//! The client-side request budget of one tenant credential (`tenants[].rate_limit`), shared by
//! every look-up and the poll: a token bucket of `burst` requests refilled at `per_minute`, and
//! the pause a 429 imposes on every request to the tenant for its whole `Retry-After`.
//!
//! - Requests wait for a token in arrival order, one queue per [`Priority`]: only the head of a
//!   queue sleeps on the bucket, the others wait their turn. A name look-up (app, item) is never
//!   kept waiting by the rest: the others take a token only while one is left for every name
//!   look-up waiting.
//! - A 429 sets one pause for the tenant (the latest end wins; concurrent 429s do not add up),
//!   empties the bucket (Qlik says it is spent; it refills from the end of the pause), and is
//!   counted once in the time paused.
//! - Within [`within`] (enrichment: `enrich.timeout` per alert), a request that would have to
//!   wait past the deadline fails at once instead, so the alert goes out with what is known.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::TenantRateLimit;
use crate::domain::millis;
use crate::metrics::TenantBudget;

tokio::task_local! {
    /// When the current alert's enrichment must be done (`enrich.timeout` after it began).
    static DEADLINE: Instant;
}

/// Runs `future` with `deadline` as the bound of every request it makes.
pub async fn within<F: Future>(deadline: Instant, future: F) -> F::Output {
    DEADLINE.scope(deadline, future).await
}

/// The deadline of the enrichment this request belongs to, if any (the poll has none).
pub(crate) fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// What names the alert: the app and its item.
    Name = 0,
    /// Everything else: reload, users, spaces, script logs, the poll.
    Other = 1,
}

/// No token before the deadline: how long the request would have had to wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverBudget {
    pub(crate) wait: Duration,
    /// Whether a 429 pause (rather than the client-side budget) is what holds it.
    pub(crate) paused: bool,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    paused_until: Option<Instant>,
}

pub(crate) struct Budget {
    per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
    queues: [tokio::sync::Mutex<()>; 2],
    names_waiting: AtomicUsize,
    gauges: Arc<TenantBudget>,
}

/// Counts a name look-up as waiting until it has its token (or gave up).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Budget {
    pub(crate) fn new(limit: TenantRateLimit, gauges: Arc<TenantBudget>) -> Self {
        let burst = f64::from(limit.burst.max(1));
        gauges.left.store(u64::from(limit.burst), Ordering::Relaxed);
        Self {
            per_second: f64::from(limit.per_minute.max(1)) / 60.0,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
                paused_until: None,
            }),
            queues: [tokio::sync::Mutex::new(()), tokio::sync::Mutex::new(())],
            names_waiting: AtomicUsize::new(0),
            gauges,
        }
    }

    /// Notes the outcome of an attempt as the tenant's last answer (the console shows it).
    pub(crate) fn answered(&self, outcome: crate::metrics::QlikOutcome) {
        self.gauges.answered(outcome);
    }

    /// Waits for a token (and the end of any pause). Fails at once when that would take past
    /// `deadline`.
    pub(crate) async fn acquire(
        &self,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<(), OverBudget> {
        let _waiting = (priority == Priority::Name).then(|| {
            self.names_waiting.fetch_add(1, Ordering::AcqRel);
            Waiting(&self.names_waiting)
        });
        let queue = &self.queues[priority as usize];
        let _turn = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, queue.lock()).await {
                Ok(turn) => turn,
                Err(_) => return Err(self.over_budget(Duration::ZERO)),
            },
            None => queue.lock().await,
        };
        loop {
            let Some(wait) = self.try_take(priority) else {
                return Ok(());
            };
            let wake = Instant::now() + wait;
            if deadline.is_some_and(|d| wake > d) {
                return Err(self.over_budget(wait));
            }
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Takes a token now (`None`), or says how long to wait before asking again.
    fn try_take(&self, priority: Priority) -> Option<Duration> {
        let mut b = self.lock();
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = b.at.max(now);
        if let Some(until) = b.paused_until.filter(|until| *until > now) {
            return Some(until - now);
        }
        // What must stay in the bucket for the name look-ups already waiting.
        let reserved = match priority {
            Priority::Name => 0.0,
            Priority::Other => self.names_waiting.load(Ordering::Acquire) as f64,
        };
        if b.tokens >= 1.0 + reserved {
            b.tokens -= 1.0;
            self.gauges
                .left
                .store(b.tokens.max(0.0) as u64, Ordering::Relaxed);
            return None;
        }
        let missing = 1.0 + reserved - b.tokens;
        Some(Duration::from_secs_f64(missing / self.per_second).max(Duration::from_millis(1)))
    }

    /// Qlik refused the credential (a final 401, or its OAuth token refused).
    pub(crate) fn note_refused(&self) {
        self.gauges.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests Qlik refused so far.
    pub(crate) fn refusals(&self) -> u64 {
        self.gauges.refused.load(Ordering::Relaxed)
    }

    /// A 429 said to wait `after`: every request to the tenant waits until then.
    pub(crate) fn pause(&self, after: Duration) {
        self.gauges.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut b = self.lock();
        let now = Instant::now();
        let until = now + after;
        let current = b.paused_until.filter(|u| *u > now).unwrap_or(now);
        self.gauges.left.store(0, Ordering::Relaxed);
        if until > current {
            // Qlik says the budget is spent: it refills from the end of the pause, not during it
            // (a bucket full again at the end would only earn the next 429).
            b.tokens = 0.0;
            b.at = until;
            let added = until - current;
            self.gauges
                .paused_ms
                .fetch_add(millis(added).max(0) as u64, Ordering::Relaxed);
            if current == now {
                tracing::warn!(
                    retry_after_ms = millis(after),
                    "Qlik Cloud answered 429: every request to the tenant waits for Retry-After"
                );
            }
            b.paused_until = Some(until);
        }
    }

    fn over_budget(&self, wait: Duration) -> OverBudget {
        let now = Instant::now();
        let paused = self.lock().paused_until.is_some_and(|u| u > now);
        OverBudget { wait, paused }
    }

    /// A poisoned lock only means a panic mid-update of two numbers; they are still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused_ms(gauges: &TenantBudget) -> u64 {
        gauges.paused_ms.load(Ordering::Relaxed)
    }

    fn budget(per_minute: u32, burst: u32) -> (Arc<Budget>, Arc<TenantBudget>) {
        let gauges = Arc::new(TenantBudget::default());
        let limit = TenantRateLimit { per_minute, burst };
        (Arc::new(Budget::new(limit, gauges.clone())), gauges)
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_burst_then_the_rate() {
        let (budget, gauges) = budget(60, 3);
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire(Priority::Other, None).await.unwrap();
        }
        assert_eq!(Instant::now(), start, "the burst is free");
        assert_eq!(gauges.left.load(Ordering::Relaxed), 0);
        budget.acquire(Priority::Other, None).await.unwrap();
        budget.acquire(Priority::Other, None).await.unwrap();
        // 60 a minute: one a second after the burst.
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_millis(1990), "{waited:?}");
        assert!(waited <= Duration::from_millis(2100), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone_once_for_the_whole_retry_after() {
        let (budget, gauges) = budget(6_000, 100);
        budget.pause(Duration::from_secs(13));
        // A second 429 from a request in flight at the same time does not add up.
        budget.pause(Duration::from_secs(13));
        assert_eq!(paused_ms(&gauges), 13_000);
        assert_eq!(gauges.rate_limited.load(Ordering::Relaxed), 2);
        let start = Instant::now();
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move { budget.acquire(Priority::Other, None).await })
            })
            .collect();
        for waiter in waiters {
            waiter.await.unwrap().unwrap();
        }
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_secs(13), "{waited:?}");
        assert!(waited <= Duration::from_secs(14), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_fails_at_once_naming_the_pause() {
        let (budget, _) = budget(60, 1);
        budget.pause(Duration::from_secs(13));
        let start = Instant::now();
        let refused = budget
            .acquire(Priority::Name, Some(start + Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(refused.paused);
        assert_eq!(Instant::now(), start, "no waiting for nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn names_go_before_the_rest() {
        let (budget, _) = budget(60, 1);
        budget.acquire(Priority::Other, None).await.unwrap();
        // The bucket is empty: a script log asks first, a name a moment later.
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |priority: Priority, delay: u64| {
            let (budget, order) = (budget.clone(), order.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                budget.acquire(priority, None).await.unwrap();
                order.lock().unwrap().push(priority);
            })
        };
        let other = spawn(Priority::Other, 0);
        let name = spawn(Priority::Name, 10);
        name.await.unwrap();
        other.await.unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            vec![Priority::Name, Priority::Other]
        );
    }
}
