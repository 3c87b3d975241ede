//! The retry policy of every Qlik Cloud request, written once: which answers are worth another
//! attempt, how long to wait, and what each attempt counts in the metrics.
//!
//! - 429: every request to the tenant waits the whole `Retry-After` (seconds or an HTTP date; 1 s
//!   when absent, at most 5 minutes, Qlik's evaluation window), once, shared through the
//!   tenant's budget (`budget.rs`); the look-up then continues. A 429 does not count as one of
//!   the retries below (at most [`MAX_RATE_LIMITED`] in a row, for a call without a deadline).
//! - 408, 5xx, timeouts, connection errors: exponential backoff with jitter (0.5–1 s, 1–2 s, 2–4 s).
//! - 401 with an OAuth token: renew the token once and try again (not counted as a retry).
//! - Everything else (400, 403, 404, a second 401) is final.
//!
//! At most [`MAX_RETRIES`] retries per call. The body is read inside the attempt, so a timeout
//! while streaming a long script log is retried like any other timeout. Every attempt takes a
//! token of the tenant's budget first; within an alert's enrichment, the whole call (waits
//! included) ends at its `enrich.timeout`.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};

use super::{budget, endpoint, priority, ApiError, QlikClient};
use crate::backoff::Backoff;
use crate::config::Secret;
use crate::http::{self, read_capped, Body};
use crate::metrics::QlikOutcome;
use crate::qlik::answer::{error_detail, status_outcome, transport_outcome};
use crate::qlik::auth::TokenError;

pub(crate) const MAX_RETRIES: u32 = 3;
/// 429s in a row after which a call without a deadline (the poll) gives up until its next turn.
pub(crate) const MAX_RATE_LIMITED: u32 = 20;
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Qlik evaluates its limits over 5 minutes: a longer `Retry-After` is not one we believe.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Error answers are read only this far: enough for Qlik's `errors[]`, not for an HTML page.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

enum Attempt {
    Done(Body),
    /// 401: the token may have expired early; carries the token that was refused.
    Unauthorized(Secret, ApiError),
    /// 429: the tenant pauses for `Retry-After`, then the call continues.
    RateLimited(Duration, ApiError),
    /// Worth another attempt, after the backoff.
    Retry(ApiError),
    Fail(ApiError),
}

impl QlikClient {
    /// Sends the request `build` makes until it succeeds or the policy gives up, and returns the
    /// answer's body (at most `limit` bytes). Within an enrichment, gives up at its deadline.
    pub(super) async fn fetch(
        &self,
        call: &'static str,
        limit: usize,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Body, ApiError> {
        // Boxed: the attempt's future is large, and look-ups nest (single flight, joins).
        let send = Box::pin(self.send(call, limit, &build));
        match budget::deadline() {
            Some(deadline) => tokio::time::timeout_at(deadline, send)
                .await
                .unwrap_or(Err(ApiError::OutOfTime { call })),
            None => send.await,
        }
    }

    async fn send(
        &self,
        call: &'static str,
        limit: usize,
        build: &impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Body, ApiError> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let mut retries = 0;
        let mut rate_limited = 0;
        let mut renewed = false;
        loop {
            let (wait, error) = match self.attempt(call, limit, build).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Unauthorized(token, error) => {
                    if renewed || !self.auth.renewable() {
                        self.budget.note_refused();
                        return Err(error);
                    }
                    self.auth.invalidate(&token).await;
                    renewed = true;
                    continue;
                }
                Attempt::RateLimited(after, error) => {
                    self.budget.pause(after);
                    rate_limited += 1;
                    if rate_limited > MAX_RATE_LIMITED {
                        return Err(error);
                    }
                    // The next attempt waits for the pause with every other request.
                    continue;
                }
                Attempt::Retry(error) if retries < MAX_RETRIES => (backoff.next_delay(), error),
                Attempt::Retry(error) | Attempt::Fail(error) => return Err(error),
            };
            retries += 1;
            tracing::debug!(
                call,
                retry = retries,
                wait_ms = wait.as_millis() as u64,
                %error,
                "retrying Qlik Cloud request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        call: &'static str,
        limit: usize,
        build: &impl Fn(&Client) -> RequestBuilder,
    ) -> Attempt {
        let token = match self.auth.bearer(&self.http, &self.metrics).await {
            Ok(token) => token,
            Err(source) if source.is_transient() => {
                return Attempt::Retry(ApiError::Token { call, source })
            }
            Err(source) => {
                if matches!(
                    source,
                    TokenError::Rejected {
                        status: 400 | 401,
                        ..
                    }
                ) {
                    self.budget.note_refused();
                }
                return Attempt::Fail(ApiError::Token { call, source });
            }
        };
        if let Err(over) = self
            .budget
            .acquire(priority(call), budget::deadline())
            .await
        {
            return Attempt::Fail(ApiError::OverBudget {
                call,
                wait: over.wait,
                paused: over.paused,
            });
        }
        let started = Instant::now();
        let response = match build(&self.http).bearer_auth(token.expose()).send().await {
            Ok(response) => response,
            Err(e) => {
                self.record(call, started, transport_outcome(&e));
                return transport_failure(call, e);
            }
        };
        let status = response.status();
        if status.is_success() {
            return match read_capped(response, limit).await {
                Ok(body) => {
                    self.record(call, started, QlikOutcome::Ok);
                    Attempt::Done(body)
                }
                Err(e) => {
                    self.record(call, started, transport_outcome(&e));
                    transport_failure(call, e)
                }
            };
        }
        let after = qlik_retry_after(response.headers());
        let detail = read_capped(response, ERROR_BODY_LIMIT)
            .await
            .ok()
            .and_then(|body| error_detail(&body.bytes))
            .map(|detail| self.auth.redact(&detail));
        self.record(call, started, status_outcome(status));
        let error = ApiError::Status {
            call,
            status: status.as_u16(),
            detail,
        };
        match status {
            StatusCode::UNAUTHORIZED => Attempt::Unauthorized(token, error),
            StatusCode::TOO_MANY_REQUESTS => Attempt::RateLimited(after, error),
            s if http::is_transient(s) => Attempt::Retry(error),
            _ => Attempt::Fail(error),
        }
    }

    /// Counts one attempt: its outcome and latency, and its endpoint.
    fn record(&self, call: &'static str, started: Instant, outcome: QlikOutcome) {
        crate::qlik::answer::record(&self.metrics, started, outcome);
        self.metrics.qlik.request(endpoint(call), outcome);
        self.budget.answered(outcome);
    }
}

fn transport_failure(call: &'static str, e: reqwest::Error) -> Attempt {
    // A request that could not even be built, or a redirect loop, will not get better.
    let permanent = e.is_builder() || e.is_redirect();
    let error = ApiError::transport(call, e);
    if permanent {
        Attempt::Fail(error)
    } else {
        Attempt::Retry(error)
    }
}

/// Qlik's `Retry-After` (seconds, or an HTTP date), 1 s when absent or unreadable, at most 5 min.
fn qlik_retry_after(headers: &HeaderMap) -> Duration {
    http::retry_after(headers)
        .unwrap_or(DEFAULT_RETRY_AFTER)
        .min(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_defaults_and_caps() {
        let mut headers = HeaderMap::new();
        assert_eq!(qlik_retry_after(&headers), Duration::from_secs(1));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("13"));
        assert_eq!(qlik_retry_after(&headers), Duration::from_secs(13));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(qlik_retry_after(&headers), Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(qlik_retry_after(&headers), Duration::from_secs(300));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(qlik_retry_after(&headers), Duration::from_secs(1));
    }
}
