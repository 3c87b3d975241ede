//! Single-flight caching for look-ups that change rarely (app, item, user, space): concurrent
//! look-ups of one key share one request (moka's `try_get_with`), and its answer is kept for
//! `enrich.cache_ttl`. A storm of failures in one app then costs one set of look-ups, not one
//! per alert. Failures are not kept: the next look-up asks again.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::budget;
use super::ApiError;

/// Entries kept per kind of look-up; far above the apps of a large tenant, and it bounds memory
/// whatever ids arrive.
pub(crate) const CAPACITY: u64 = 10_000;

/// How often a look-up asks again when the shared request it waited on ran out of *another*
/// alert's time while its own has some left.
const REJOINS: usize = 4;

/// What every cache holds, whatever the kind of look-up: one moka cache type (and one fetch
/// future type) means moka's code is in the binary once, not once per kind (five copies were
/// ~0.4 MB by `nm`; idle RSS follows code size: docs/performance.md).
type Entry = Arc<dyn Any + Send + Sync>;
type Fetching<'a> = Pin<Box<dyn Future<Output = Result<Entry, ApiError>> + Send + 'a>>;

pub(crate) struct Cached<V> {
    /// `None` when `cache_ttl` is 0: nothing kept, and no sharing either.
    cache: Option<moka::future::Cache<String, Entry>>,
    /// The type of the values this cache's entries hold (only `V`s are put in).
    kind: PhantomData<fn() -> V>,
}

impl<V: Clone + Send + Sync + 'static> Cached<V> {
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Self {
        let cache = (!ttl.is_zero() && capacity > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        Self {
            cache,
            kind: PhantomData,
        }
    }

    /// The cached answer for `key`, or the one `fetch` gets, shared with every concurrent
    /// caller of the same key.
    pub(crate) async fn get_with<F, Fut>(&self, key: &str, fetch: F) -> Result<V, ApiError>
    where
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<V, ApiError>> + Send,
    {
        let Some(cache) = &self.cache else {
            return fetch().await;
        };
        let entry = || -> Fetching<'_> {
            Box::pin(async { fetch().await.map(|value| Arc::new(value) as Entry) })
        };
        let mut rejoins = 0;
        loop {
            match cache.try_get_with(key.to_owned(), entry()).await {
                Ok(entry) => match entry.downcast_ref::<V>() {
                    Some(value) => return Ok(value.clone()),
                    // Cannot happen (only `V`s are put in); asking Qlik is the safe answer.
                    None => return fetch().await,
                },
                Err(error) if rejoins < REJOINS && error.out_of_time() && !past_own_deadline() => {
                    rejoins += 1;
                }
                Err(error) => return Err(ApiError::Shared(error)),
            }
        }
    }
}

fn past_own_deadline() -> bool {
    budget::deadline().is_some_and(|d| d <= tokio::time::Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn counted(calls: &AtomicUsize) -> Result<u32, ApiError> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(7)
    }

    #[tokio::test]
    async fn concurrent_look_ups_share_one_request_and_keep_the_answer() {
        let cache = Cached::new(Duration::from_secs(60), 10);
        let calls = AtomicUsize::new(0);
        let (a, b, c) = tokio::join!(
            cache.get_with("app", || counted(&calls)),
            cache.get_with("app", || counted(&calls)),
            cache.get_with("app", || counted(&calls)),
        );
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (7, 7, 7));
        assert_eq!(cache.get_with("app", || counted(&calls)).await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.get_with("other", || counted(&calls)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_are_not_kept() {
        let cache: Cached<u32> = Cached::new(Duration::from_secs(60), 10);
        let failed = cache
            .get_with("app", || async { Err(ApiError::NoItem { call: "test" }) })
            .await;
        assert!(failed.is_err());
        assert_eq!(cache.get_with("app", || async { Ok(1) }).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn zero_ttl_keeps_nothing() {
        let cache = Cached::new(Duration::ZERO, 10);
        let calls = AtomicUsize::new(0);
        cache.get_with("app", || counted(&calls)).await.unwrap();
        cache.get_with("app", || counted(&calls)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
