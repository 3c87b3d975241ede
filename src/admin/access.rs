//! Who may use the silence endpoints: writes change what gets alerted.
//!
//! - `admin.token` set: every request needs `Authorization: Bearer <token>` (else 401).
//! - no token, `admin.listen` on loopback: open to local clients, but the `Host` header must
//!   name loopback (`localhost`, `127.0.0.1`, `[::1]`), so a web page cannot reach the endpoint
//!   through DNS rebinding (else 403).
//! - no token, any other `listen`: refused (403), with a message saying to set `admin.token`.
//!
//! The token is kept only as its HMAC under a key drawn at start-up; a presented token is
//! compared by `Mac::verify_slice` (constant time, whatever its length). Neither is ever logged.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The policy, fixed at start-up from `admin.listen` and `admin.token`.
pub(super) enum Access {
    Token(TokenCheck),
    Loopback,
    Refused,
}

/// Why a request was refused. Each has its status, a bounded label for the log and a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Denied {
    #[error("the silence endpoints are off: admin.listen is not a loopback address and admin.token is not set; set admin.token to use them")]
    NoToken,
    #[error("this endpoint needs `Authorization: Bearer <admin.token>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    #[error("the bearer token is not admin.token")]
    Mismatch,
    #[error("without admin.token this endpoint answers only requests to localhost, 127.0.0.1 or [::1] (Host header); set admin.token to use another name")]
    ForeignHost,
}

impl Denied {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Self::NoToken => "no_token_configured",
            Self::Missing => "missing_token",
            Self::Malformed => "malformed_authorization",
            Self::Mismatch => "wrong_token",
            Self::ForeignHost => "foreign_host",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::NoToken | Self::ForeignHost => StatusCode::FORBIDDEN,
            Self::Missing | Self::Malformed | Self::Mismatch => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let mut response = super::answer::error(self.status(), self);
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl Access {
    pub(super) fn new(listen: SocketAddr, token: Option<&Secret>) -> Self {
        match token {
            Some(token) => Self::Token(TokenCheck::new(token)),
            None if listen.ip().is_loopback() => Self::Loopback,
            None => Self::Refused,
        }
    }

    /// For the start-up log line.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Self::Token(_) => "bearer token required",
            Self::Loopback => "open to loopback clients (no admin.token)",
            Self::Refused => "refused: admin.listen is not loopback and admin.token is not set",
        }
    }

    pub(super) fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        match self {
            Self::Refused => Err(Denied::NoToken),
            Self::Loopback => {
                let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
                if host.is_some_and(names_loopback) {
                    Ok(())
                } else {
                    Err(Denied::ForeignHost)
                }
            }
            Self::Token(check) => {
                let value = headers.get(header::AUTHORIZATION).ok_or(Denied::Missing)?;
                let presented = bearer(value).ok_or(Denied::Malformed)?;
                if check.matches(presented) {
                    Ok(())
                } else {
                    Err(Denied::Mismatch)
                }
            }
        }
    }
}

/// The token of `Bearer <token>` (scheme in any case).
fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token.as_bytes())
}

/// Whether a `Host` header names this machine: `localhost` or a loopback address, any port.
pub(super) fn names_loopback(host: &str) -> bool {
    let Ok(authority) = Authority::from_str(host) else {
        return false;
    };
    let name = authority.host();
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || IpAddr::from_str(literal).is_ok_and(|ip| ip.is_loopback())
}

/// The configured token, as its HMAC under a random key.
pub(super) struct TokenCheck {
    key: HmacSha256,
    expected: Vec<u8>,
}

impl TokenCheck {
    fn new(token: &Secret) -> Self {
        // A key of the hash's block size (64 bytes), so the infallible constructor applies.
        let key = <HmacSha256 as Mac>::new(&rand::random::<[u8; 64]>().into());
        let mut mac = key.clone();
        mac.update(token.expose().as_bytes());
        Self {
            key,
            expected: mac.finalize().into_bytes().to_vec(),
        }
    }

    pub(super) fn matches(&self, presented: &[u8]) -> bool {
        let mut mac = self.key.clone();
        mac.update(presented);
        mac.verify_slice(&self.expected).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn the_policy_follows_listen_and_token() {
        let token = Secret::new("s3cret");
        let loopback: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let v6: SocketAddr = "[::1]:9090".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        assert!(matches!(Access::new(loopback, None), Access::Loopback));
        assert!(matches!(Access::new(v6, None), Access::Loopback));
        assert!(matches!(Access::new(any, None), Access::Refused));
        assert!(matches!(Access::new(any, Some(&token)), Access::Token(_)));
        assert_eq!(
            Access::new(any, None).check(&headers(&[(header::HOST, "127.0.0.1")])),
            Err(Denied::NoToken)
        );
    }

    #[test]
    fn a_token_is_checked_exactly() {
        let access = Access::new("0.0.0.0:1".parse().unwrap(), Some(&Secret::new("s3cret")));
        let auth = |v: &str| access.check(&headers(&[(header::AUTHORIZATION, v)]));
        assert_eq!(auth("Bearer s3cret"), Ok(()));
        assert_eq!(auth("bearer s3cret"), Ok(()));
        assert_eq!(auth("Bearer s3cre"), Err(Denied::Mismatch));
        assert_eq!(auth("Bearer s3crett"), Err(Denied::Mismatch));
        assert_eq!(auth("Basic s3cret"), Err(Denied::Malformed));
        assert_eq!(auth("Bearer "), Err(Denied::Malformed));
        assert_eq!(auth("s3cret"), Err(Denied::Malformed));
        assert_eq!(access.check(&HeaderMap::new()), Err(Denied::Missing));
    }

    #[test]
    fn without_a_token_only_loopback_host_names_pass() {
        let access = Access::Loopback;
        for ok in [
            "localhost",
            "localhost:9090",
            "127.0.0.1:9090",
            "[::1]:9090",
            "LOCALHOST",
        ] {
            assert_eq!(
                access.check(&headers(&[(header::HOST, ok)])),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:9090",
            "10.0.0.1:9090",
            "",
            "a b",
        ] {
            assert_eq!(
                access.check(&headers(&[(header::HOST, bad)])),
                Err(Denied::ForeignHost),
                "{bad}"
            );
        }
        assert_eq!(access.check(&HeaderMap::new()), Err(Denied::ForeignHost));
    }
}
