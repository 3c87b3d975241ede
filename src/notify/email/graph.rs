//! Email through Microsoft Graph: `POST {api_url}/v1.0/users/{from}/sendMail` with an app
//! token (client credentials, `Mail.Send` application permission). Graph answers 202 and
//! delivers later; 429 and 5xx come with `Retry-After`; other refusals carry `error.code` and
//! `error.message`, which become the reason.

use lettre::message::Mailbox;
use reqwest::{redirect, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::super::webhook::http_outcome;
use super::super::{describe, NotifyError, Receipt, SendError};
use super::token_failure;
use crate::config::{GraphConfig, Priority, Secret};
use crate::http;
use crate::oauth::TokenSource;

/// How much of an error answer is read; Graph's are a few hundred bytes.
const READ_LIMIT: usize = 16 * 1024;
/// How much of Graph's `error.message` goes into the reason.
const MESSAGE_CHARS: usize = 300;

#[derive(Debug)]
pub(super) struct GraphSender {
    http: reqwest::Client,
    /// `{api_url}/v1.0/users/{from address}/sendMail`.
    send_url: url::Url,
    tokens: TokenSource,
    priority: Priority,
}

/// Graph's error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl GraphSender {
    pub(super) fn new(
        destination: &str,
        graph: &GraphConfig,
        from: &Mailbox,
        priority: Priority,
    ) -> Result<GraphSender, NotifyError> {
        let client_error = |e: reqwest::Error| {
            NotifyError::new(destination, format!("HTTP client: {}", describe(&e)))
        };
        let tokens = TokenSource::new(&graph.client, graph.timeout).map_err(client_error)?;
        let http = reqwest::Client::builder()
            .timeout(graph.timeout)
            .pool_idle_timeout(crate::http::IDLE_CONNECTION)
            .redirect(redirect::Policy::none())
            .build()
            .map_err(client_error)?;
        let mut send_url = graph.api_url.clone();
        send_url
            .path_segments_mut()
            .map_err(|()| NotifyError::new(destination, "graph.api_url cannot take a path"))?
            .pop_if_empty()
            .extend(["v1.0", "users", from.email.as_ref(), "sendMail"]);
        Ok(GraphSender {
            http,
            send_url,
            tokens,
            priority,
        })
    }

    pub(super) async fn send(
        &self,
        to: &str,
        subject: &str,
        html: &str,
    ) -> Result<Receipt, SendError> {
        let body = self.request_body(to, subject, html)?;
        let token = self.tokens.token().await.map_err(token_failure)?;
        match self.post(&body, &token).await {
            // The token may have been revoked or have lapsed early: renew it once before the
            // delivery counts as failed.
            Err((StatusCode::UNAUTHORIZED, first)) => {
                tracing::debug!(reason = ?first.reason(), "Graph refused the token, renewing it");
                self.tokens.invalidate(&token).await;
                let renewed = self.tokens.token().await.map_err(token_failure)?;
                self.post(&body, &renewed).await.map_err(|(_, e)| e)
            }
            other => other.map_err(|(_, e)| e),
        }
    }

    /// The sendMail request for one recipient: subject, HTML body (Graph takes one body, so
    /// the text part is not sent), importance from `priority`.
    fn request_body(
        &self,
        to: &str,
        subject: &str,
        html: &str,
    ) -> Result<serde_json::Value, SendError> {
        let to: Mailbox = to
            .trim()
            .parse()
            .map_err(|e| SendError::permanent(format!("`{to}` is not an email address: {e}")))?;
        let mut address = json!({"address": to.email.to_string()});
        if let Some(name) = &to.name {
            address["name"] = json!(name);
        }
        Ok(json!({
            "message": {
                "subject": subject,
                "body": {"contentType": "HTML", "content": html},
                "toRecipients": [{"emailAddress": address}],
                "importance": self.priority.as_str(),
            }
        }))
    }

    async fn post(
        &self,
        body: &serde_json::Value,
        token: &Secret,
    ) -> Result<Receipt, (StatusCode, SendError)> {
        let response = self
            .http
            .post(self.send_url.clone())
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| {
                let reason = format!("Graph sendMail: {}", describe(&e.without_url()));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    SendError::transient(reason),
                )
            })?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        // A body that breaks off is no reason to doubt the status: it is only left out.
        let answer = http::read_capped(response, READ_LIMIT)
            .await
            .unwrap_or_default();
        outcome(status, &answer.bytes, retry_after).map_err(|e| (status, e))
    }
}

/// 202 is delivered (200 too, in case a proxy answers for Graph); otherwise the webhooks' rule
/// (408, 429 and 5xx transient with their `Retry-After`, the rest dead), with Graph's
/// `error.code` and `error.message` as the words, and what to fix when that is known.
fn outcome(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<std::time::Duration>,
) -> Result<Receipt, SendError> {
    let words = match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(ErrorAnswer { error }) => {
            let message: String = error.message.trim().chars().take(MESSAGE_CHARS).collect();
            format!("{}: {message}", error.code)
                .trim_end_matches([':', ' '])
                .to_owned()
        }
        Err(_) => String::new(),
    };
    let success = |s| s == StatusCode::ACCEPTED || s == StatusCode::OK;
    match (
        http_outcome(status, &words, retry_after, success),
        hint(status),
    ) {
        (Err(SendError::Permanent { reason }), Some(hint)) => {
            Err(SendError::permanent(format!("{reason} — {hint}")))
        }
        (other, _) => other,
    }
}

fn hint(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        401 => Some("Graph refused a fresh token: check that the scope is https://graph.microsoft.com/.default"),
        403 => Some(
            "the app lacks the Mail.Send application permission (with admin consent), or an \
             application access policy does not include this mailbox",
        ),
        404 => Some("`from` is not an Exchange Online mailbox of this tenant"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome_of(code: u16, body: &str) -> Result<Receipt, SendError> {
        let status = StatusCode::from_u16(code).expect("status");
        outcome(status, body.as_bytes(), Some(Duration::from_secs(2)))
    }

    #[test]
    fn accepted_is_delivered() {
        assert_eq!(outcome_of(202, "").expect("ok").detail, "202 Accepted");
    }

    #[test]
    fn throttling_and_outages_are_transient_with_retry_after() {
        for code in [429, 503, 500, 504] {
            let e = outcome_of(
                code,
                r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#,
            )
            .expect_err("error");
            assert!(e.is_transient(), "{code}");
            assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        }
    }

    #[test]
    fn refusals_are_dead_with_graphs_code_and_message() {
        let e = outcome_of(
            400,
            r#"{"error":{"code":"ErrorInvalidRecipients","message":"At least one recipient is not valid."}}"#,
        )
        .expect_err("error");
        assert!(!e.is_transient());
        assert_eq!(
            e.reason(),
            "HTTP 400 ErrorInvalidRecipients: At least one recipient is not valid."
        );
        let denied = outcome_of(
            403,
            r#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#,
        )
        .expect_err("error");
        assert!(
            denied.reason().contains("Mail.Send application permission"),
            "{}",
            denied.reason()
        );
        assert_eq!(
            outcome_of(400, "<html>").expect_err("e").reason(),
            "HTTP 400 Bad Request"
        );
    }
}
