//! Credentials for one tenant: an API key, or an OAuth2 machine-to-machine client whose access
//! token is fetched once, shared by concurrent calls, and renewed before it expires (or at once
//! when Qlik answers 401). Secret values stay in [`Secret`]s and never reach a log line or an
//! error text.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::answer::{error_detail, record, status_outcome, transport_outcome};
use crate::config::{Secret, TenantAuth};
use crate::http::{self, error_chain, read_capped};
use crate::metrics::Metrics;

/// Used when the token answer has no `expires_in`; a 401 renews it anyway.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// Renew this long before expiry at most, so a call never starts with a token about to lapse.
const RENEW_EARLY_MAX: Duration = Duration::from_secs(60);
/// The token answer is a few hundred bytes.
const ANSWER_LIMIT: usize = 64 * 1024;

pub struct Credentials {
    kind: Kind,
}

enum Kind {
    ApiKey(Secret),
    OAuth {
        client_id: String,
        client_secret: Secret,
        token_url: String,
        cached: Mutex<Option<Token>>,
    },
}

struct Token {
    access: Secret,
    renew_at: Instant,
}

/// Why no access token could be had. Never carries the client secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token request answered HTTP {status}{}", after_colon(detail))]
    Rejected { status: u16, detail: Option<String> },
    #[error("token request timed out")]
    Timeout,
    #[error("token request failed: {0}")]
    Network(String),
    #[error("token answer unusable: {0}")]
    BadAnswer(&'static str),
}

fn after_colon(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

impl TokenError {
    /// Worth asking again after a backoff (the token endpoint was busy or unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => {
                reqwest::StatusCode::from_u16(*status).is_ok_and(http::is_transient)
            }
            Self::Timeout | Self::Network(_) => true,
            Self::BadAnswer(_) => false,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Kind::OAuth { client_id, .. } => write!(f, "OAuth {{ client_id: {client_id:?} }}"),
        }
    }
}

impl Credentials {
    /// `tenant_url` without a trailing slash; the token endpoint is `<tenant_url>/oauth/token`.
    pub fn new(auth: &TenantAuth, tenant_url: &str) -> Self {
        let kind = match auth {
            TenantAuth::ApiKey(key) => Kind::ApiKey(key.clone()),
            TenantAuth::OAuth {
                client_id,
                client_secret,
            } => Kind::OAuth {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                token_url: format!("{}/oauth/token", tenant_url.trim_end_matches('/')),
                cached: Mutex::new(None),
            },
        };
        Self { kind }
    }

    /// The bearer token for the next request. Concurrent callers wait for one token request
    /// instead of each making their own.
    pub(crate) async fn bearer(
        &self,
        http: &Client,
        metrics: &Metrics,
    ) -> Result<Secret, TokenError> {
        let (client_id, client_secret, token_url, cached) = match &self.kind {
            Kind::ApiKey(key) => return Ok(key.clone()),
            Kind::OAuth {
                client_id,
                client_secret,
                token_url,
                cached,
            } => (client_id, client_secret, token_url, cached),
        };
        let mut cached = cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.access.clone());
        }
        *cached = None;
        let token = fetch_token(http, metrics, token_url, client_id, client_secret).await?;
        let access = token.access.clone();
        *cached = Some(token);
        Ok(access)
    }

    /// Whether a 401 can be cured by a new token (not with an API key).
    pub(crate) fn renewable(&self) -> bool {
        matches!(self.kind, Kind::OAuth { .. })
    }

    /// Forgets `refused` so the next call fetches a new token. A token another task already
    /// renewed is kept.
    pub(crate) async fn invalidate(&self, refused: &Secret) {
        if let Kind::OAuth { cached, .. } = &self.kind {
            let mut cached = cached.lock().await;
            if cached.as_ref().is_some_and(|t| t.access == *refused) {
                *cached = None;
            }
        }
    }

    /// `text` with the configured secret replaced, for text that came from the network and is
    /// about to go into an error.
    pub(crate) fn redact(&self, text: &str) -> String {
        let secret = match &self.kind {
            Kind::ApiKey(key) => key,
            Kind::OAuth { client_secret, .. } => client_secret,
        };
        if secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(secret.expose(), "<redacted>")
        }
    }
}

async fn fetch_token(
    http: &Client,
    metrics: &Metrics,
    token_url: &str,
    client_id: &str,
    client_secret: &Secret,
) -> Result<Token, TokenError> {
    let body = json!({
        "client_id": client_id,
        "client_secret": client_secret.expose(),
        "grant_type": "client_credentials",
        "scope": "user_default",
    });
    let started = Instant::now();
    let transport = |e: reqwest::Error| {
        record(metrics, started, transport_outcome(&e));
        if e.is_timeout() {
            TokenError::Timeout
        } else {
            TokenError::Network(error_chain(&e.without_url()))
        }
    };
    let response = http
        .post(token_url)
        .json(&body)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    let answer = read_capped(response, ANSWER_LIMIT)
        .await
        .map_err(transport)?;
    record(metrics, started, status_outcome(status));
    if !status.is_success() {
        let detail =
            error_detail(&answer.bytes).map(|d| d.replace(client_secret.expose(), "<redacted>"));
        return Err(TokenError::Rejected {
            status: status.as_u16(),
            detail,
        });
    }
    let answer: Value =
        serde_json::from_slice(&answer.bytes).map_err(|_| TokenError::BadAnswer("not JSON"))?;
    let access = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::BadAnswer("no access_token"))?;
    let lifetime = answer
        .get("expires_in")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_LIFETIME, |s| Duration::from_secs_f64(s.min(1e9)));
    Ok(Token {
        access: Secret::new(access),
        renew_at: started + lifetime - renew_early(lifetime),
    })
}

/// 60 s or a tenth of the lifetime, whichever is smaller.
fn renew_early(lifetime: Duration) -> Duration {
    (lifetime / 10).min(RENEW_EARLY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_a_tenth_early_but_never_more_than_a_minute() {
        assert_eq!(
            renew_early(Duration::from_secs(21_600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renew_early(Duration::from_secs(100)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn debug_and_redact_hide_the_secret() {
        let oauth = Credentials::new(
            &TenantAuth::OAuth {
                client_id: "client".into(),
                client_secret: Secret::new("s3cr3t"),
            },
            "https://t.example.com/",
        );
        assert!(!format!("{oauth:?}").contains("s3cr3t"));
        assert_eq!(oauth.redact("bad s3cr3t!"), "bad <redacted>!");
        let key = Credentials::new(&TenantAuth::ApiKey(Secret::new("k3y")), "https://t");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(key.redact("k3y"), "<redacted>");
    }
}
