//! The retry policy of every Qlik Cloud request, written once: which answers are worth another
//! attempt, how long to wait, and what each attempt counts in the metrics.
//!
//! - 429: wait `Retry-After` seconds (1 s when absent, at most 30 s), as Qlik's own samples do.
//! - 5xx, timeouts, connection errors: exponential backoff with jitter (0.5–1 s, 1–2 s, 2–4 s).
//! - 401 with an OAuth token: renew the token once and try again (not counted as a retry).
//! - Everything else (400, 403, 404, a second 401) is final.
//!
//! At most [`MAX_RETRIES`] retries per call. The body is read inside the attempt, so a timeout
//! while streaming a long script log is retried like any other timeout.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, Response, StatusCode};

use super::{ApiError, QlikClient};
use crate::backoff::Backoff;
use crate::config::Secret;
use crate::metrics::Metrics;

pub(crate) const MAX_RETRIES: u32 = 3;
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Error answers are read only this far: enough for Qlik's `errors[]`, not for an HTML page.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Longest error detail kept in an error text.
const DETAIL_LIMIT: usize = 300;

/// An answer body, cut at the caller's limit.
pub(crate) struct Body {
    pub(crate) bytes: Vec<u8>,
    pub(crate) truncated: bool,
}

enum Attempt {
    Done(Body),
    /// 401: the token may have expired early; carries the token that was refused.
    Unauthorized(Secret, ApiError),
    /// Worth another attempt, after `Retry-After` or else the backoff.
    Retry(Option<Duration>, ApiError),
    Fail(ApiError),
}

impl QlikClient {
    /// Sends the request `build` makes until it succeeds or the policy gives up, and returns the
    /// answer's body (at most `limit` bytes).
    pub(super) async fn fetch(
        &self,
        call: &'static str,
        limit: usize,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Body, ApiError> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let mut retries = 0;
        let mut renewed = false;
        loop {
            let (wait, error) = match self.attempt(call, limit, &build).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Unauthorized(token, error) => {
                    if renewed || !self.auth.renewable() {
                        return Err(error);
                    }
                    self.auth.invalidate(&token).await;
                    renewed = true;
                    continue;
                }
                Attempt::Retry(after, error) if retries < MAX_RETRIES => {
                    (after.unwrap_or_else(|| backoff.next_delay()), error)
                }
                Attempt::Retry(_, error) | Attempt::Fail(error) => return Err(error),
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
                return Attempt::Retry(None, ApiError::Token { call, source })
            }
            Err(source) => return Attempt::Fail(ApiError::Token { call, source }),
        };
        let started = Instant::now();
        let response = match build(&self.http).bearer_auth(token.expose()).send().await {
            Ok(response) => response,
            Err(e) => {
                record(&self.metrics, started, transport_outcome(&e));
                return transport_failure(call, e);
            }
        };
        let status = response.status();
        if status.is_success() {
            return match read_capped(response, limit).await {
                Ok(body) => {
                    record(&self.metrics, started, "ok");
                    Attempt::Done(body)
                }
                Err(e) => {
                    record(&self.metrics, started, transport_outcome(&e));
                    transport_failure(call, e)
                }
            };
        }
        let after = retry_after(response.headers());
        let detail = read_capped(response, ERROR_BODY_LIMIT)
            .await
            .ok()
            .and_then(|body| qlik_error_detail(&body.bytes))
            .map(|detail| self.auth.redact(&detail));
        record(&self.metrics, started, status_outcome(status));
        let error = ApiError::Status {
            call,
            status: status.as_u16(),
            detail,
        };
        match status {
            StatusCode::UNAUTHORIZED => Attempt::Unauthorized(token, error),
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retry(Some(after), error),
            s if s.is_server_error() => Attempt::Retry(None, error),
            _ => Attempt::Fail(error),
        }
    }
}

/// Counts one attempt and its latency.
pub(crate) fn record(metrics: &Metrics, started: Instant, outcome: &'static str) {
    metrics.qlik_requests.inc(outcome);
    metrics.qlik_request_seconds.observe(started.elapsed());
}

/// The `QLIK_REQUEST_OUTCOMES` label of an HTTP answer. 403 counts as `unauthorized`: like a
/// 401, it is fixed by giving the API user access, not by waiting.
pub(crate) fn status_outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        401 | 403 => "unauthorized",
        404 => "not_found",
        429 => "rate_limited",
        500..=599 => "server_error",
        _ => "client_error",
    }
}

/// The `QLIK_REQUEST_OUTCOMES` label of a request that got no complete answer.
pub(crate) fn transport_outcome(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else {
        "network_error"
    }
}

fn transport_failure(call: &'static str, e: reqwest::Error) -> Attempt {
    // A request that could not even be built, or a redirect loop, will not get better.
    let permanent = e.is_builder() || e.is_redirect();
    let error = ApiError::transport(call, e);
    if permanent {
        Attempt::Fail(error)
    } else {
        Attempt::Retry(None, error)
    }
}

/// `Retry-After` in seconds (Qlik sends seconds), 1 s when absent or unreadable, at most 30 s.
fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

/// Reads the body while it streams and stops at `limit` bytes, so that no answer can take
/// more memory than its caller allowed.
pub(crate) async fn read_capped(
    mut response: Response,
    limit: usize,
) -> Result<Body, reqwest::Error> {
    let expected = response.content_length().unwrap_or(0) as usize;
    let mut bytes = Vec::with_capacity(expected.min(limit).min(1 << 20));
    while let Some(chunk) = response.chunk().await? {
        let room = limit - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Body {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes,
        truncated: false,
    })
}

/// `errors[0].title` and `errors[0].detail` of a Qlik error answer, shortened.
pub(crate) fn qlik_error_detail(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let first = value.get("errors")?.get(0)?;
    let text = |key: &str| {
        first
            .get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let detail = match (text("title"), text("detail")) {
        (Some(title), Some(detail)) => format!("{title}: {detail}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => return None,
    };
    Some(match detail.char_indices().nth(DETAIL_LIMIT) {
        Some((cut, _)) => format!("{}…", &detail[..cut]),
        None => detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_defaults_and_caps() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("13"));
        assert_eq!(retry_after(&headers), Duration::from_secs(13));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&headers), Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
    }

    #[test]
    fn reads_qlik_error_titles() {
        let body = br#"{"errors":[{"code":"HTTP-429","title":"API rate limit reached.","detail":"wait"}]}"#;
        assert_eq!(
            qlik_error_detail(body).as_deref(),
            Some("API rate limit reached.: wait")
        );
        assert_eq!(qlik_error_detail(b"<html>502</html>"), None);
        let long = format!(r#"{{"errors":[{{"title":"{}"}}]}}"#, "x".repeat(1000));
        assert_eq!(
            qlik_error_detail(long.as_bytes()).map(|d| d.chars().count()),
            Some(DETAIL_LIMIT + 1)
        );
    }

    #[test]
    fn outcomes_are_known_labels() {
        for code in [200, 400, 401, 403, 404, 409, 429, 500, 503] {
            let label = status_outcome(StatusCode::from_u16(code).unwrap());
            assert!(crate::metrics::QLIK_REQUEST_OUTCOMES.contains(&label));
        }
    }
}
