//! What the HTTP clients (the Qlik Cloud REST client, the webhooks, Graph and the token
//! endpoints) share, written once: which statuses are worth another attempt, `Retry-After`,
//! reading an answer with a size cap, an error with its causes on one line, and how long idle
//! connections stay open. Each caller keeps its own policy on top (how long it waits at most,
//! what it does when the header is absent).
//!
//! Depends on nothing else in the crate.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};

/// Every HTTP client's idle connections (to Qlik, the webhooks, Graph, token endpoints) close
/// after this: a storm opens many, over a hundred to a tenant, and each holds buffers; alerts a
/// few seconds apart still reuse them.
pub const IDLE_CONNECTION: Duration = Duration::from_secs(10);

/// By then the connections a burst of work left idle are closed: the pool looks for idle ones
/// once per [`IDLE_CONNECTION`], so one closes one to two of those after its last use (10 to
/// 20 s). The stores give memory back once more after this, so the closed connections' buffers
/// are returned too.
pub const IDLE_CONNECTIONS_CLOSED: Duration =
    Duration::from_secs(2 * IDLE_CONNECTION.as_secs() + 1);

/// The one status rule: 408, 429 and 5xx are worth retrying (the service was slow, busy or
/// failing); any other status, 3xx and 4xx, will not get better by asking again.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `Retry-After` as seconds or as an HTTP date (the time from now; a past date is zero).
/// `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

fn retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An answer body, cut at the caller's limit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

/// Reads the body while it streams and stops at `limit` bytes, so that no answer can take more
/// memory than its caller allowed.
pub async fn read_capped(mut response: Response, limit: usize) -> Result<Body, reqwest::Error> {
    let expected = response.content_length().unwrap_or(0);
    let reserve = usize::try_from(expected).unwrap_or(usize::MAX);
    let mut body = Body {
        bytes: Vec::with_capacity(reserve.min(limit).min(1 << 20)),
        truncated: false,
    };
    while let Some(chunk) = response.chunk().await? {
        if append_capped(&mut body, &chunk, limit) {
            break;
        }
    }
    Ok(body)
}

/// Appends what fits under `limit`; true once the body is cut (nothing more is needed).
fn append_capped(body: &mut Body, chunk: &[u8], limit: usize) -> bool {
    let room = limit.saturating_sub(body.bytes.len());
    if chunk.len() > room {
        body.bytes.extend_from_slice(&chunk[..room]);
        body.truncated = true;
    } else {
        body.bytes.extend_from_slice(chunk);
    }
    body.truncated
}

/// An error and its sources on one line ("error sending request: connection refused"), since
/// many errors' own text stops at the outermost one. A source whose text its parent already
/// shows is skipped, and a segment said twice in a row once (lettre nests `Connection error:
/// Connection error: ...`). Callers strip URLs first (reqwest's `without_url`): webhook URLs
/// are secrets.
pub fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    let mut segments: Vec<&str> = text.split(": ").collect();
    segments.dedup();
    segments.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn timeouts_throttling_and_server_errors_are_transient() {
        for code in [408, 429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).expect("status");
            assert!(is_transient(status), "{code}");
        }
        for code in [200, 202, 301, 400, 401, 403, 404, 409, 413] {
            let status = StatusCode::from_u16(code).expect("status");
            assert!(!is_transient(status), "{code}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:00 GMT").expect("date");
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_at(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after_at(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after_at(&headers, now), Some(Duration::from_secs(37)));
        // The obsolete RFC 850 form is an HTTP date too.
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sunday, 06-Nov-94 08:49:37 GMT"),
        );
        assert_eq!(retry_after_at(&headers, now), Some(Duration::from_secs(37)));
        let later = now + Duration::from_secs(3600);
        assert_eq!(retry_after_at(&headers, later), Some(Duration::ZERO));
        for unreadable in ["soon", "-1", "1.5", ""] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(unreadable));
            assert_eq!(retry_after_at(&headers, now), None, "{unreadable:?}");
        }
    }

    #[test]
    fn bodies_are_cut_at_the_limit() {
        let mut body = Body::default();
        assert!(!append_capped(&mut body, b"abc", 5));
        assert!(append_capped(&mut body, b"def", 5));
        assert_eq!(
            body,
            Body {
                bytes: b"abcde".to_vec(),
                truncated: true
            }
        );
        let mut exact = Body::default();
        assert!(!append_capped(&mut exact, b"abcde", 5));
        assert!(!exact.truncated);
        assert!(append_capped(&mut exact, b"f", 5));
        assert_eq!(exact.bytes, b"abcde");
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn error_chains_show_every_cause_once() {
        let refused = Layer("connection refused", None);
        let connect = Layer("client error (Connect)", Some(Box::new(refused)));
        let outer = Layer("error sending request", Some(Box::new(connect)));
        assert_eq!(
            error_chain(&outer),
            "error sending request: client error (Connect): connection refused"
        );
        let repeated = Layer(
            "tls: bad certificate",
            Some(Box::new(Layer("bad certificate", None))),
        );
        assert_eq!(error_chain(&repeated), "tls: bad certificate");
        let stutter = std::io::Error::other("Connection error: Connection error: refused");
        assert_eq!(error_chain(&stutter), "Connection error: refused");
    }
}
