//! OAuth2 client-credentials tokens for the mail senders (SMTP XOAUTH2, Microsoft Graph): a form
//! POST to the token endpoint (RFC 6749 §4.4, as Entra ID and most identity providers take it),
//! the token cached until shortly before `expires_in`, one request at a time however many sends
//! wait for it, and the endpoint's refusals (`invalid_client`, Entra's AADSTS codes) said with
//! what to fix. Neither the client secret nor a token ever reaches a log line or an error text.

use std::time::{Duration, Instant};

use reqwest::{redirect, Client};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::{OAuthClient, Secret};
use crate::http::{self, error_chain, read_capped};

/// Used when the answer has no `expires_in`; a refused token is renewed anyway.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// Renew this long before expiry at most, so a send never starts with a token about to lapse.
const RENEW_EARLY_MAX: Duration = Duration::from_secs(60);
/// A token answer is a few kilobytes (Entra's JWTs are ~2 KB).
const ANSWER_LIMIT: usize = 64 * 1024;
/// How much of the endpoint's `error_description` goes into an error text.
const DESCRIPTION_CHARS: usize = 300;

/// One OAuth2 client and its cached token.
pub struct TokenSource {
    client: OAuthClient,
    http: Client,
    cached: Mutex<Option<Token>>,
}

struct Token {
    access: Secret,
    renew_at: Instant,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.client.token_url.as_str())
            .field("client_id", &self.client.client_id)
            .finish_non_exhaustive()
    }
}

/// Why no access token could be had. Never carries the client secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint answered with an error status.
    #[error(
        "token endpoint {host} answered HTTP {status}{}",
        refusal_text(error, description, hint)
    )]
    Refused {
        host: String,
        status: u16,
        /// OAuth2's `error` (`invalid_client`, ...).
        error: Option<String>,
        /// `error_description`, cut short (Entra's starts with the AADSTS code).
        description: Option<String>,
        /// What to change, when the error is a known one.
        hint: Option<&'static str>,
        retry_after: Option<Duration>,
    },
    #[error("token endpoint {host} unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("token endpoint {0} gave no usable token: {1}")]
    BadAnswer(String, &'static str),
}

fn refusal_text(
    error: &Option<String>,
    description: &Option<String>,
    hint: &Option<&'static str>,
) -> String {
    let mut text = String::new();
    match (error, description) {
        (Some(e), Some(d)) => text.push_str(&format!(": {e} ({d})")),
        (Some(one), None) | (None, Some(one)) => text.push_str(&format!(": {one}")),
        (None, None) => {}
    }
    if let Some(hint) = hint {
        text.push_str(" — ");
        text.push_str(hint);
    }
    text
}

impl TokenError {
    /// Worth asking again after a backoff: the endpoint was busy, failing or unreachable.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { status, .. } => {
                reqwest::StatusCode::from_u16(*status).is_ok_and(http::is_transient)
            }
            Self::Unreachable { .. } => true,
            Self::BadAnswer(..) => false,
        }
    }

    /// The endpoint's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The error answer of an OAuth2 token endpoint (RFC 6749 §5.2; Entra adds `error_codes`).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

impl TokenSource {
    /// Builds the HTTP client; touches no network.
    pub fn new(client: &OAuthClient, timeout: Duration) -> Result<TokenSource, reqwest::Error> {
        crate::tls::ensure_crypto_provider();
        let http = Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(crate::http::IDLE_CONNECTION)
            // A token endpoint that redirects is misconfigured; re-POSTing the secret elsewhere
            // would leak it.
            .redirect(redirect::Policy::none())
            .build()?;
        Ok(TokenSource {
            client: client.clone(),
            http,
            cached: Mutex::new(None),
        })
    }

    /// The access token for the next send: the cached one, or a new one. Concurrent callers
    /// wait for one request instead of each making their own.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.access.clone());
        }
        *cached = None;
        let token = self.fetch().await?;
        let access = token.access.clone();
        *cached = Some(token);
        Ok(access)
    }

    /// Forgets `refused` (the server did not take it) so the next call fetches a new token; a
    /// token another send already renewed is kept.
    pub async fn invalidate(&self, refused: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.access == *refused) {
            *cached = None;
        }
    }

    fn host(&self) -> String {
        self.client
            .token_url
            .host_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client.client_id.as_str()),
            ("client_secret", self.client.client_secret.expose()),
            ("scope", self.client.scope.as_str()),
        ];
        let started = Instant::now();
        let unreachable = |e: reqwest::Error| TokenError::Unreachable {
            host: self.host(),
            reason: error_chain(&e.without_url()),
        };
        let response = self
            .http
            .post(self.client.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let answer = read_capped(response, ANSWER_LIMIT)
            .await
            .map_err(unreachable)?;
        if !status.is_success() {
            return Err(self.refusal(status.as_u16(), &answer.bytes, retry_after));
        }
        let bad = |why| TokenError::BadAnswer(self.host(), why);
        let answer: TokenAnswer =
            serde_json::from_slice(&answer.bytes).map_err(|_| bad("not JSON"))?;
        let access = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("no access_token"))?;
        let lifetime = answer
            .expires_in
            .as_ref()
            .and_then(seconds)
            .unwrap_or(DEFAULT_LIFETIME);
        tracing::debug!(host = %self.host(), lifetime_s = lifetime.as_secs(), "OAuth2 token fetched");
        Ok(Token {
            access: Secret::new(access),
            renew_at: started + lifetime.saturating_sub(renew_early(lifetime)),
        })
    }

    fn refusal(&self, status: u16, body: &[u8], retry_after: Option<Duration>) -> TokenError {
        let answer: Option<ErrorAnswer> = serde_json::from_slice(body).ok();
        let redact = |text: String| {
            let secret = self.client.client_secret.expose();
            if secret.is_empty() {
                text
            } else {
                text.replace(secret, "<redacted>")
            }
        };
        let (error, description, codes) = match answer {
            Some(a) => (a.error, a.error_description, a.error_codes),
            None => (None, None, Vec::new()),
        };
        let description = description.map(|d| redact(short_description(&d)));
        let hint = hint(
            error.as_deref(),
            description.as_deref().unwrap_or_default(),
            &codes,
        );
        TokenError::Refused {
            host: self.host(),
            status,
            error: error.map(redact),
            description,
            hint,
            retry_after,
        }
    }
}

/// `expires_in` as a number or a numeric string (some endpoints quote it).
fn seconds(value: &serde_json::Value) -> Option<Duration> {
    let s = match value {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(1e9)))
}

/// 60 s or a tenth of the lifetime, whichever is smaller.
fn renew_early(lifetime: Duration) -> Duration {
    (lifetime / 10).min(RENEW_EARLY_MAX)
}

/// Entra's descriptions run on with `Trace ID: ... Correlation ID: ... Timestamp: ...`, which
/// say nothing to an admin: the first line, cut at [`DESCRIPTION_CHARS`].
fn short_description(description: &str) -> String {
    let first = description.lines().next().unwrap_or_default();
    let first = first.split(" Trace ID:").next().unwrap_or_default().trim();
    match first.char_indices().nth(DESCRIPTION_CHARS) {
        Some((cut, _)) => format!("{}…", &first[..cut]),
        None => first.to_owned(),
    }
}

/// What to fix, for the refusals an admin meets setting this up. Entra's code comes from
/// `error_codes`, or the `AADSTS…:` that starts its description.
fn hint(error: Option<&str>, description: &str, codes: &[u64]) -> Option<&'static str> {
    let from_text = description
        .strip_prefix("AADSTS")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    let code = codes.first().copied().or(from_text);
    let by_code = match code {
        Some(7_000_215) => Some(
            "wrong client secret: put the secret's Value (not its Secret ID) from Entra ID → App \
             registrations → Certificates & secrets into client_secret",
        ),
        Some(7_000_222) => Some(
            "the client secret has expired: create a new one under Certificates & secrets and \
             put its Value into client_secret",
        ),
        Some(700_016) => Some(
            "no application with this client_id in that tenant: check client_id (the Application \
             (client) ID) and that token_url names the tenant the app is registered in",
        ),
        Some(90_002) => Some(
            "tenant not found: check the tenant id or domain in token_url \
             (https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)",
        ),
        Some(65_001) => Some(
            "admin consent missing: an administrator must grant consent for the app's \
             application permission (SMTP.SendAsApp or Mail.Send) under API permissions",
        ),
        Some(7_000_229) => Some(
            "the app has no service principal in this tenant: grant admin consent (it creates \
             the enterprise application), or check that token_url names the right tenant",
        ),
        Some(1_002_012) | Some(70_011) => Some(
            "the scope is not valid: use https://outlook.office365.com/.default for SMTP and \
             https://graph.microsoft.com/.default for Graph",
        ),
        Some(500_011) => Some(
            "the resource of the scope is not in this tenant (Exchange Online not licensed, or a \
             misspelt scope)",
        ),
        _ => None,
    };
    by_code.or(match error {
        Some("invalid_client") => Some("the client_id or client_secret is wrong"),
        Some("invalid_scope") => Some("the scope is not valid for this token endpoint"),
        Some("unauthorized_client") => {
            Some("this client may not use the client-credentials grant; check the app's settings")
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_a_tenth_early_but_never_more_than_a_minute() {
        assert_eq!(renew_early(Duration::from_secs(3599)), RENEW_EARLY_MAX);
        assert_eq!(
            renew_early(Duration::from_secs(100)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn expires_in_may_be_a_number_or_a_string() {
        let secs = |v| seconds(&v).map(|d: Duration| d.as_secs());
        assert_eq!(secs(serde_json::json!(3599)), Some(3599));
        assert_eq!(secs(serde_json::json!("3599")), Some(3599));
        assert_eq!(secs(serde_json::json!(-1)), None);
        assert_eq!(secs(serde_json::json!(null)), None);
    }

    #[test]
    fn entra_codes_are_explained() {
        let wrong = "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent \
                     in the request is the client secret value.\r\nTrace ID: 1 Correlation ID: 2";
        assert_eq!(
            short_description(wrong),
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the \
             request is the client secret value."
        );
        assert!(hint(Some("invalid_client"), wrong, &[]).is_some_and(|h| h.contains("Secret ID")));
        for (code, words) in [
            (65_001, "admin consent"),
            (7_000_229, "service principal"),
            (90_002, "tenant not found"),
            (700_016, "client_id"),
        ] {
            assert!(
                hint(Some("invalid_request"), "", &[code]).is_some_and(|h| h.contains(words)),
                "{code}"
            );
        }
        assert_eq!(
            hint(Some("invalid_client"), "Unauthorized", &[]),
            Some("the client_id or client_secret is wrong")
        );
        assert_eq!(hint(Some("server_error"), "", &[]), None);
    }
}
