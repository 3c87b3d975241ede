//! What one Qlik Cloud answer counts in the metrics and says in an error text; shared by the
//! REST client (`api`) and the token request (`auth`).

use std::time::Instant;

use reqwest::StatusCode;

use crate::metrics::{Metrics, QlikOutcome};

/// Longest error detail kept in an error text.
const DETAIL_LIMIT: usize = 300;

/// Counts one attempt and its latency.
pub(crate) fn record(metrics: &Metrics, started: Instant, outcome: QlikOutcome) {
    metrics.qlik_requests.inc(outcome);
    metrics.qlik_request_seconds.observe(started.elapsed());
}

/// The outcome of an HTTP answer. 403 counts as `unauthorized`: like a 401, it is fixed by
/// giving the API user access, not by waiting.
pub(crate) fn status_outcome(status: StatusCode) -> QlikOutcome {
    match status.as_u16() {
        200..=299 => QlikOutcome::Ok,
        401 | 403 => QlikOutcome::Unauthorized,
        404 => QlikOutcome::NotFound,
        429 => QlikOutcome::RateLimited,
        500..=599 => QlikOutcome::ServerError,
        _ => QlikOutcome::ClientError,
    }
}

/// The outcome of a request that got no complete answer.
pub(crate) fn transport_outcome(e: &reqwest::Error) -> QlikOutcome {
    if e.is_timeout() {
        QlikOutcome::Timeout
    } else {
        QlikOutcome::NetworkError
    }
}

/// `errors[0].title` and `errors[0].detail` of a Qlik error answer, shortened.
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
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

    #[test]
    fn reads_qlik_error_titles() {
        let body = br#"{"errors":[{"code":"HTTP-429","title":"API rate limit reached.","detail":"wait"}]}"#;
        assert_eq!(
            error_detail(body).as_deref(),
            Some("API rate limit reached.: wait")
        );
        assert_eq!(error_detail(b"<html>502</html>"), None);
        let long = format!(r#"{{"errors":[{{"title":"{}"}}]}}"#, "x".repeat(1000));
        assert_eq!(
            error_detail(long.as_bytes()).map(|d| d.chars().count()),
            Some(DETAIL_LIMIT + 1)
        );
    }

    #[test]
    fn statuses_map_to_outcomes() {
        for (code, outcome) in [
            (200, QlikOutcome::Ok),
            (401, QlikOutcome::Unauthorized),
            (403, QlikOutcome::Unauthorized),
            (404, QlikOutcome::NotFound),
            (408, QlikOutcome::ClientError),
            (409, QlikOutcome::ClientError),
            (429, QlikOutcome::RateLimited),
            (503, QlikOutcome::ServerError),
        ] {
            let status = StatusCode::from_u16(code).expect("status");
            assert_eq!(status_outcome(status), outcome, "{code}");
        }
    }
}
