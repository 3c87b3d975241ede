//! Slack incoming webhooks, Teams Workflows webhooks and `type: webhook` (any HTTP service):
//! send the rendered body, read the answer.
//!
//! Webhook URLs carry their token, so they are secrets: every reqwest error is stripped of its
//! URL (`without_url`) before it becomes text, and an answer that echoes the URL (or a header
//! or variable value) is redacted.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{redirect, Method, StatusCode};

use super::{describe, wrong_kind, NotifyError, Payload, Receipt, SendError};
use crate::config::{HttpMethod, Secret, SecretUrl, SlackConfig, TeamsConfig, WebhookConfig};
use crate::http;

/// How long one POST may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error answer goes into the reason (Slack's are one word).
const REASON_CHARS: usize = 300;
/// How much of an answer is read at all; the rest is never needed.
const READ_LIMIT: usize = 4096;

#[derive(Debug)]
pub struct SlackNotifier {
    poster: Poster,
}

impl SlackNotifier {
    pub fn new(destination: &str, config: &SlackConfig) -> Result<SlackNotifier, NotifyError> {
        Ok(SlackNotifier {
            poster: Poster::new(destination, config.webhook_url.as_ref())?,
        })
    }

    /// Slack answers `200 ok`, and errors as plain-text words (`invalid_blocks`, ...).
    pub async fn send(&self, payload: &Payload) -> Result<Receipt, SendError> {
        match payload {
            Payload::Slack { body } => self.send_json(encode(body)?).await,
            other => Err(wrong_kind(other, "slack")),
        }
    }

    /// Posts a message that is JSON text already (a stored payload's body).
    pub async fn send_json(&self, body: Vec<u8>) -> Result<Receipt, SendError> {
        self.poster.post_json(body, slack_success).await
    }
}

#[derive(Debug)]
pub struct TeamsNotifier {
    poster: Poster,
}

impl TeamsNotifier {
    pub fn new(destination: &str, config: &TeamsConfig) -> Result<TeamsNotifier, NotifyError> {
        Ok(TeamsNotifier {
            poster: Poster::new(destination, config.webhook_url.as_ref())?,
        })
    }

    /// Workflows answer `202 Accepted` and run the flow later; some endpoints answer 200.
    pub async fn send(&self, payload: &Payload) -> Result<Receipt, SendError> {
        match payload {
            Payload::Teams { body } => self.send_json(encode(body)?).await,
            other => Err(wrong_kind(other, "teams")),
        }
    }

    /// Posts a message that is JSON text already (a stored payload's body).
    pub async fn send_json(&self, body: Vec<u8>) -> Result<Receipt, SendError> {
        self.poster.post_json(body, teams_success).await
    }
}

/// A `type: webhook` destination: its method, headers, content type and `vars`.
#[derive(Debug)]
pub struct WebhookNotifier {
    poster: Poster,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    content_type: HeaderValue,
    json: bool,
    vars: Vec<(String, Secret)>,
}

impl WebhookNotifier {
    pub fn new(destination: &str, config: &WebhookConfig) -> Result<WebhookNotifier, NotifyError> {
        let header = |name: &str, value: &str| -> Result<(HeaderName, HeaderValue), NotifyError> {
            let bad = || NotifyError::new(destination, format!("header `{name}` cannot be sent"));
            let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
            value.set_sensitive(true);
            Ok((
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?,
                value,
            ))
        };
        let headers = config
            .headers
            .iter()
            .map(|(name, value)| header(name, value.expose()))
            .collect::<Result<_, _>>()?;
        let content_type = HeaderValue::from_str(&config.content_type)
            .map_err(|_| NotifyError::new(destination, "content_type cannot be sent"))?;
        let mut poster = Poster::new(destination, config.url.as_ref())?;
        // An answer that echoes a header or a variable must not carry it into a reason: the
        // whole value, and the credential after an auth scheme (`Bearer <token>`). Values under
        // 8 characters (`bi`, `error`) would blank out ordinary words instead.
        poster.secrets = config
            .headers
            .iter()
            .chain(&config.vars)
            .flat_map(|(_, v)| {
                let value = v.expose();
                let credential = value.split_once(' ').map(|(_, c)| c.trim());
                [Some(value), credential]
            })
            .flatten()
            .filter(|v| v.chars().count() >= 8)
            .map(|v| Secret::new(v.to_owned()))
            .collect();
        Ok(WebhookNotifier {
            poster,
            method: match config.method {
                HttpMethod::Post => Method::POST,
                HttpMethod::Put => Method::PUT,
            },
            headers,
            content_type,
            json: config.is_json(),
            vars: config.vars.clone(),
        })
    }

    /// Any 2xx is success; the rest as for Slack and Teams (429 and 5xx retried, with the
    /// service's `Retry-After`; other 4xx dead with the answer's text).
    pub async fn send(&self, payload: &Payload) -> Result<Receipt, SendError> {
        let Payload::Webhook { body } = payload else {
            return Err(wrong_kind(payload, "webhook"));
        };
        let body = crate::render::vars::fill(body, &self.vars, self.json);
        let request = self
            .poster
            .client
            .request(self.method.clone(), self.poster.url.expose().clone())
            .headers(self.headers.iter().cloned().collect())
            .header(CONTENT_TYPE, self.content_type.clone())
            .body(body);
        self.poster.send(request, |s| s.is_success()).await
    }
}

/// What the webhooks share: one HTTP client (its connections are reused) and the secret URL.
#[derive(Debug)]
struct Poster {
    client: reqwest::Client,
    url: SecretUrl,
    /// Values redacted from answers besides the URL.
    secrets: Vec<Secret>,
}

impl Poster {
    /// `url` is `None` only for a disabled destination (config requires it otherwise).
    fn new(destination: &str, url: Option<&SecretUrl>) -> Result<Poster, NotifyError> {
        crate::tls::ensure_crypto_provider();
        let url = url.ok_or_else(|| {
            NotifyError::new(
                destination,
                "no URL is set (webhook_url, or url for type: webhook)",
            )
        })?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .pool_idle_timeout(crate::http::IDLE_CONNECTION)
            // A webhook that redirects is misconfigured; following it would re-POST elsewhere.
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|e| {
                NotifyError::new(
                    destination,
                    format!("HTTP client: {}", describe(&e.without_url())),
                )
            })?;
        Ok(Poster {
            client,
            url: url.clone(),
            secrets: Vec::new(),
        })
    }

    /// POSTs `bytes`, a JSON document.
    async fn post_json(
        &self,
        bytes: Vec<u8>,
        success: impl Fn(StatusCode) -> bool,
    ) -> Result<Receipt, SendError> {
        let request = self
            .client
            .post(self.url.expose().clone())
            // Slack wants JSON declared; Butler's form encoding is a known pitfall.
            .header(CONTENT_TYPE, "application/json")
            .body(bytes);
        self.send(request, success).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        success: impl Fn(StatusCode) -> bool,
    ) -> Result<Receipt, SendError> {
        let response = request
            .send()
            .await
            .map_err(|e| SendError::transient(describe(&e.without_url())))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        // A body that breaks off is no reason to doubt the status: it is only left out.
        let answer = http::read_capped(response, READ_LIMIT)
            .await
            .unwrap_or_default();
        let mut answer = String::from_utf8_lossy(&answer.bytes)
            .replace(self.url.expose().as_str(), "<webhook url>");
        for secret in &self.secrets {
            answer = answer.replace(secret.expose(), "<secret>");
        }
        http_outcome(status, &answer, retry_after, success)
    }
}

/// Slack answers `200 ok`.
fn slack_success(status: StatusCode) -> bool {
    status == StatusCode::OK
}

/// Workflows answer `202 Accepted` and run the flow later; some endpoints answer 200.
fn teams_success(status: StatusCode) -> bool {
    status == StatusCode::OK || status == StatusCode::ACCEPTED
}

fn encode(body: &serde_json::Value) -> Result<Vec<u8>, SendError> {
    serde_json::to_vec(body).map_err(|e| SendError::permanent(format!("payload is not JSON: {e}")))
}

/// The answer of every webhook, written once; `success` is where they differ. Another status is
/// transient or permanent by [`http::is_transient`] (408, 429, 5xx; a transient one carries the
/// service's `Retry-After`); 3xx and unexpected 2xx are permanent.
pub fn http_outcome(
    status: StatusCode,
    body: &str,
    retry_after: Option<Duration>,
    success: impl Fn(StatusCode) -> bool,
) -> Result<Receipt, SendError> {
    let text: String = body.trim().chars().take(REASON_CHARS).collect();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or_default().to_owned()
    } else {
        text
    };
    let detail = format!("{} {text}", status.as_u16()).trim_end().to_owned();
    if success(status) {
        return Ok(Receipt { detail });
    }
    let reason = format!("HTTP {detail}");
    if http::is_transient(status) {
        Err(SendError::Transient {
            reason,
            retry_after,
        })
    } else {
        Err(SendError::permanent(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK: &[StatusCode] = &[StatusCode::OK];
    const TEAMS: &[StatusCode] = &[StatusCode::OK, StatusCode::ACCEPTED];

    fn outcome(code: u16, body: &str, success: &[StatusCode]) -> Result<Receipt, SendError> {
        let status = StatusCode::from_u16(code).expect("status");
        http_outcome(status, body, Some(Duration::from_secs(3)), |s| {
            success.contains(&s)
        })
    }

    #[test]
    fn success_codes_differ_per_service() {
        assert_eq!(outcome(200, "ok", SLACK).expect("ok").detail, "200 ok");
        assert_eq!(outcome(202, "", TEAMS).expect("ok").detail, "202 Accepted");
        assert!(!outcome(202, "", SLACK).expect_err("slack").is_transient());
    }

    #[test]
    fn throttling_timeouts_and_server_errors_are_transient() {
        for code in [429, 408, 500, 502, 503] {
            let e = outcome(code, "", TEAMS).expect_err("error");
            assert!(e.is_transient(), "{code}");
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        }
    }

    #[test]
    fn other_statuses_are_permanent_with_the_answer() {
        for (code, body) in [
            (400, "invalid_blocks"),
            (403, "action_prohibited"),
            (404, "no_service"),
        ] {
            let e = outcome(code, body, SLACK).expect_err("error");
            assert!(!e.is_transient());
            assert_eq!(e.reason(), format!("HTTP {code} {body}"));
        }
        assert!(!outcome(301, "", SLACK)
            .expect_err("redirect")
            .is_transient());
        let long = "x".repeat(1000);
        assert_eq!(
            outcome(400, &long, SLACK).expect_err("e").reason().len(),
            309
        );
    }
}
