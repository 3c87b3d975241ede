//! Errors of the Qlik Cloud client: which call failed and why, with Qlik's own error title when
//! it sent one, and never a secret.

use std::sync::Arc;
use std::time::Duration;

use crate::http::error_chain;
use crate::qlik::auth::TokenError;

/// Why a look-up failed. Names the call, and Qlik's own error title when it sent one; never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{call}: refused id {id:?}: only letters, digits, '-' and '_' are expected")]
    InvalidId { call: &'static str, id: String },
    #[error("{call}: HTTP {status}{}", in_parens(detail))]
    Status {
        call: &'static str,
        status: u16,
        detail: Option<String>,
    },
    #[error("{call}: timed out")]
    Timeout { call: &'static str },
    /// `enrich.timeout` ran out while the request was on its way.
    #[error("{call}: enrich.timeout reached before the answer")]
    OutOfTime { call: &'static str },
    /// Not sent: the tenant's budget (or a 429 pause) would have held it past `enrich.timeout`.
    #[error("{call}: not sent: {} would hold it {wait:?} past enrich.timeout", if *paused { "Qlik's 429 Retry-After" } else { "the tenant's rate_limit" })]
    OverBudget {
        call: &'static str,
        wait: Duration,
        paused: bool,
    },
    /// The error of a request shared by concurrent look-ups of the same key.
    #[error(transparent)]
    Shared(Arc<ApiError>),
    #[error("{call}: {message}")]
    Network { call: &'static str, message: String },
    #[error("{call}: unreadable answer: {message}")]
    Decode { call: &'static str, message: String },
    #[error("{call}: no item has resourceId equal to the app id")]
    NoItem { call: &'static str },
    #[error("{call}: no OAuth token: {source}")]
    Token {
        call: &'static str,
        source: TokenError,
    },
    #[error("tenant url {url:?} is not a valid http(s) url")]
    BadTenantUrl { url: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl ApiError {
    /// The HTTP status Qlik answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Shared(error) => error.status(),
            _ => None,
        }
    }

    /// The look-up gave up because its alert's `enrich.timeout` ran out (or would have).
    pub fn out_of_time(&self) -> bool {
        match self {
            Self::OutOfTime { .. } | Self::OverBudget { .. } => true,
            Self::Shared(error) => error.out_of_time(),
            _ => false,
        }
    }

    pub(crate) fn transport(call: &'static str, e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout { call }
        } else {
            Self::Network {
                call,
                message: error_chain(&e.without_url()),
            }
        }
    }
}

/// ` (Qlik's title: detail)`, or nothing when Qlik sent no error body we could read.
fn in_parens(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}
