//! Senders: one per destination, built once from its config. A sender owns its payload and its
//! request, nothing more: it never sleeps, retries or deduplicates (the outbox worker does), and
//! it says whether a failure is worth retrying through [`SendError`].

pub mod email;
pub mod file;
pub mod webhook;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, DestinationConfig, DestinationKind, Problem};
/// The senders' error texts: an error and its causes on one line (callers strip URLs first).
use crate::http::error_chain as describe;

/// What an outbox row stores: one email per recipient, one post per webhook destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Email {
        to: String,
        subject: String,
        html: String,
        text: String,
    },
    Slack {
        body: serde_json::Value,
    },
    Teams {
        body: serde_json::Value,
    },
    /// The rendered body of a webhook destination, its `vars` still placeholders.
    Webhook {
        body: String,
    },
}

impl Payload {
    /// The `kind` tag, for messages and file names.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Email { .. } => "email",
            Payload::Slack { .. } => "slack",
            Payload::Teams { .. } => "teams",
            Payload::Webhook { .. } => "webhook",
        }
    }

    /// A rendered message as sent to one recipient ('' for Slack and Teams).
    pub fn to(rendered: &crate::render::Rendered, recipient: &str) -> Payload {
        use crate::render::Rendered;
        match rendered.clone() {
            Rendered::Email {
                subject,
                html,
                text,
            } => Payload::Email {
                to: recipient.to_owned(),
                subject,
                html,
                text,
            },
            Rendered::Slack(body) => Payload::Slack { body },
            Rendered::Teams(body) => Payload::Teams { body },
            Rendered::Webhook(body) => Payload::Webhook { body },
            Rendered::ChatText { teams, body } => {
                let body = body.value();
                match teams {
                    true => Payload::Teams { body },
                    false => Payload::Slack { body },
                }
            }
        }
    }

    /// The JSON an outbox row stores for a rendered message and one recipient: what
    /// `Payload::to(rendered, recipient).encode()` gives, without copying the message.
    pub fn encode_for(rendered: &crate::render::Rendered, recipient: &str) -> String {
        use crate::render::Rendered;
        /// [`Payload`]'s encoding over borrowed parts.
        #[derive(Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Borrowed<'a> {
            Email {
                to: &'a str,
                subject: &'a str,
                html: &'a str,
                text: &'a str,
            },
            Slack {
                body: &'a serde_json::Value,
            },
            Teams {
                body: &'a serde_json::Value,
            },
            Webhook {
                body: &'a str,
            },
        }
        let borrowed = match rendered {
            Rendered::Email {
                subject,
                html,
                text,
            } => Borrowed::Email {
                to: recipient,
                subject,
                html,
                text,
            },
            Rendered::Slack(body) => Borrowed::Slack { body },
            Rendered::Teams(body) => Borrowed::Teams { body },
            Rendered::Webhook(body) => Borrowed::Webhook { body },
            // One JSON value, stored as the message's body the way serde would write it.
            Rendered::ChatText { teams, body } => {
                let kind = if *teams { "teams" } else { "slack" };
                return format!("{{\"kind\":\"{kind}\",\"body\":{}}}", body.json());
            }
        };
        // Strings and JSON values only: serializing cannot fail.
        serde_json::to_string(&borrowed).unwrap_or_default()
    }

    /// The JSON an outbox row stores.
    pub fn encode(&self) -> String {
        // A Payload holds strings and JSON values only; serializing it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A payload as an outbox row stores it ([`Payload::encode`]); one that does not decode is
    /// a permanent send error.
    pub fn decode(stored: &str) -> Result<Payload, SendError> {
        serde_json::from_str(stored).map_err(undecodable)
    }
}

/// Which delivery a send belongs to: names dry-run files, and goes into log lines.
#[derive(Debug, Clone, Copy)]
pub struct SendMeta<'a> {
    pub destination: &'a str,
    pub app_id: &'a str,
    pub reload_id: &'a str,
    pub job_id: i64,
}

/// Why a send failed, and whether trying again later can help. The reason carries the service's
/// own words (Slack's `invalid_blocks`, an SMTP reply line) and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: timeouts, connection errors, HTTP 429/5xx, SMTP 4xx.
    #[error("{reason}")]
    Transient {
        reason: String,
        /// What the service asked for (HTTP `Retry-After`), if anything.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: the delivery is dead with this reason.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl SendError {
    pub fn transient(reason: impl Into<String>) -> SendError {
        SendError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> SendError {
        SendError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            SendError::Transient { reason, .. } | SendError::Permanent { reason } => reason,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Transient { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }
}

/// What the service answered to a successful send, e.g. `200 ok` or `250 2.0.0 Ok: queued`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub detail: String,
}

/// A destination whose sender cannot be built (unreadable `smtp.ca_file`, TLS set-up, ...).
#[derive(Debug, thiserror::Error)]
#[error("destination `{destination}`: {message}")]
pub struct NotifyError {
    pub destination: String,
    pub message: String,
}

impl NotifyError {
    fn new(destination: &str, message: impl Into<String>) -> NotifyError {
        NotifyError {
            destination: destination.to_owned(),
            message: message.into(),
        }
    }
}

/// The sender of one destination. Build it once and keep it: the email sender pools its SMTP
/// connections and the webhook senders their HTTP connections.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per destination, built once: boxing would buy nothing
pub enum Notifier {
    Email(email::EmailNotifier),
    Slack(webhook::SlackNotifier),
    Teams(webhook::TeamsNotifier),
    Webhook(webhook::WebhookNotifier),
    File(file::FileNotifier),
}

impl Notifier {
    /// The sender for `d`; with `dry_run_dir` set, every destination writes files there instead.
    pub fn for_destination(
        d: &DestinationConfig,
        dry_run_dir: Option<&Path>,
    ) -> Result<Notifier, NotifyError> {
        if let Some(dir) = dry_run_dir {
            return file::FileNotifier::new(d, dir).map(Notifier::File);
        }
        match &d.kind {
            DestinationKind::Email(e) => email::EmailNotifier::new(&d.name, e).map(Notifier::Email),
            DestinationKind::Slack(s) => {
                webhook::SlackNotifier::new(&d.name, s).map(Notifier::Slack)
            }
            DestinationKind::Teams(t) => {
                webhook::TeamsNotifier::new(&d.name, t).map(Notifier::Teams)
            }
            DestinationKind::Webhook(w) => {
                webhook::WebhookNotifier::new(&d.name, w).map(Notifier::Webhook)
            }
        }
    }

    /// Sends once. A payload of the wrong kind for this destination is a permanent error.
    pub async fn send(&self, payload: &Payload, meta: &SendMeta<'_>) -> Result<Receipt, SendError> {
        let result = match self {
            Notifier::Email(n) => n.send(payload).await,
            Notifier::Slack(n) => n.send(payload).await,
            Notifier::Teams(n) => n.send(payload).await,
            Notifier::Webhook(n) => n.send(payload).await,
            Notifier::File(n) => n.send(payload, meta).await,
        };
        logged(result, meta)
    }

    /// Sends once a payload as an outbox row stores it ([`Payload::encode`]). A Slack or Teams
    /// body is posted as the JSON text it was stored as: it is not decoded into a tree and
    /// encoded again. A payload that does not decode, or of the wrong kind, is a permanent error.
    pub async fn send_stored(
        &self,
        stored: &str,
        meta: &SendMeta<'_>,
    ) -> Result<Receipt, SendError> {
        let result = match self {
            Notifier::Slack(n) => n.send_json(chat_body(stored, "slack")?).await,
            Notifier::Teams(n) => n.send_json(chat_body(stored, "teams")?).await,
            _ => return self.send(&Payload::decode(stored)?, meta).await,
        };
        logged(result, meta)
    }
}

/// The body of a stored Slack or Teams payload as its JSON text, checked to be of `kind`.
/// A row in the form the router writes (`{"kind":"slack","body":…}`, from a message it parsed
/// or checked when it rendered it) is sent without being parsed again; any other form is read
/// in full.
fn chat_body(stored: &str, kind: &'static str) -> Result<Vec<u8>, SendError> {
    let written = stored
        .strip_prefix("{\"kind\":\"")
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix("\",\"body\":"))
        .and_then(|rest| rest.strip_suffix('}'));
    match written {
        Some(body) if !body.is_empty() => Ok(body.as_bytes().to_vec()),
        _ => parsed_chat_body(stored, kind),
    }
}

/// The same for a row in any form JSON allows: parsed, its body kept as it was written.
fn parsed_chat_body(stored: &str, kind: &'static str) -> Result<Vec<u8>, SendError> {
    /// What a stored chat payload is read as: its tag and its body's text, borrowed.
    #[derive(Deserialize)]
    struct Stored<'a> {
        #[serde(borrow)]
        kind: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        body: Option<&'a serde_json::value::RawValue>,
    }
    let decoded: Stored = serde_json::from_str(stored).map_err(undecodable)?;
    match decoded.body {
        Some(body) if decoded.kind == kind => Ok(body.get().as_bytes().to_vec()),
        // Another kind (or a chat payload without a body): what the full decoder would say.
        _ => {
            let payload = Payload::decode(stored)?;
            Err(wrong_kind(&payload, kind))
        }
    }
}

fn undecodable(e: serde_json::Error) -> SendError {
    SendError::permanent(format!("stored payload does not decode: {e}"))
}

/// Logs a send's result at debug level and hands it on.
fn logged(result: Result<Receipt, SendError>, meta: &SendMeta<'_>) -> Result<Receipt, SendError> {
    match &result {
        Ok(receipt) => tracing::debug!(
            destination = meta.destination, app_id = meta.app_id, reload_id = meta.reload_id,
            job_id = meta.job_id, detail = %receipt.detail, "sent"
        ),
        Err(e) => tracing::debug!(
            destination = meta.destination, app_id = meta.app_id, reload_id = meta.reload_id,
            job_id = meta.job_id, transient = e.is_transient(), reason = %e, "send failed"
        ),
    }
    result
}

/// The sender of every enabled destination, each with its index in `destinations`: what `run`
/// starts its outbox workers with, and what `check` builds to find what would stop `run`.
/// Building reads CA files and sets up TLS and HTTP clients; it touches no network. Each sender
/// that cannot be built is a problem at its destination's key path.
pub fn build_all(config: &Config) -> Result<Vec<(usize, Notifier)>, Vec<Problem>> {
    let mut notifiers = Vec::new();
    let mut problems = Vec::new();
    let dry_run_dir = config.delivery.dry_run_dir.as_deref();
    for (index, d) in config.destinations.iter().enumerate() {
        if !d.enabled {
            continue;
        }
        match Notifier::for_destination(d, dry_run_dir) {
            Ok(notifier) => notifiers.push((index, notifier)),
            Err(error) => problems.push(Problem {
                path: format!("destinations[{index}]"),
                message: error.message,
            }),
        }
    }
    if problems.is_empty() {
        Ok(notifiers)
    } else {
        Err(problems)
    }
}

fn wrong_kind(payload: &Payload, destination_type: &str) -> SendError {
    SendError::permanent(format!(
        "a {} payload cannot be sent to a {destination_type} destination",
        payload.kind()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_tagged_by_kind() {
        let payload = Payload::Slack {
            body: serde_json::json!({"text": "hi"}),
        };
        let stored = serde_json::to_value(&payload).expect("json");
        assert_eq!(
            stored,
            serde_json::json!({"kind": "slack", "body": {"text": "hi"}})
        );
        assert_eq!(
            serde_json::from_value::<Payload>(stored).expect("back"),
            payload
        );
    }

    #[test]
    fn a_message_is_stored_as_its_payload_encodes() {
        use crate::render::Rendered;
        let email = Rendered::Email {
            subject: "s \"q\"".to_owned(),
            html: "<p>h</p>".to_owned(),
            text: "t\n".to_owned(),
        };
        let body = serde_json::json!({"text": "hi", "blocks": [{"type": "section"}]});
        for (rendered, to) in [
            (email, "ops@example.com"),
            (Rendered::Slack(body.clone()), ""),
            (Rendered::Teams(body), ""),
            (Rendered::Webhook("{\"a\":1}".to_owned()), ""),
        ] {
            let stored = Payload::encode_for(&rendered, to);
            assert_eq!(stored, Payload::to(&rendered, to).encode());
            assert_eq!(
                Payload::decode(&stored).expect("decodes"),
                Payload::to(&rendered, to)
            );
        }
    }

    #[test]
    fn a_stored_chat_body_is_sent_as_the_json_it_was_stored_as() {
        let body =
            serde_json::json!({"text": "a \"quoted\" <name> ✓", "blocks": [{"type": "section"}]});
        let stored = Payload::Slack { body: body.clone() }.encode();
        let sent = chat_body(&stored, "slack").expect("a slack body");
        assert_eq!(sent, serde_json::to_vec(&body).expect("json"));
    }

    #[test]
    fn a_row_as_the_router_writes_it_is_sent_as_a_full_read_would_send_it() {
        let body = serde_json::json!({"text": "}\"{", "blocks": [{"type": "section"}]});
        for (stored, kind) in [
            (Payload::Slack { body: body.clone() }.encode(), "slack"),
            (Payload::Teams { body: body.clone() }.encode(), "teams"),
            // Written by another encoder: read in full, the same bytes out.
            (
                format!("{{ \"body\": {body}, \"kind\": \"slack\" }}"),
                "slack",
            ),
        ] {
            let fast = chat_body(&stored, kind).expect("a body");
            assert_eq!(
                fast,
                parsed_chat_body(&stored, kind).expect("a body"),
                "{stored}"
            );
            assert_eq!(fast, serde_json::to_vec(&body).expect("json"));
        }
    }

    #[test]
    fn a_stored_payload_of_another_kind_or_not_json_is_refused_for_good() {
        let teams = Payload::Teams {
            body: serde_json::json!({"type": "message"}),
        }
        .encode();
        let refused = chat_body(&teams, "slack").expect_err("wrong kind");
        assert!(!refused.is_transient());
        assert_eq!(
            refused.reason(),
            "a teams payload cannot be sent to a slack destination"
        );
        let broken = chat_body("{\"kind\": \"slack\", \"body\": ", "slack").expect_err("broken");
        assert!(!broken.is_transient());
        assert!(broken
            .reason()
            .starts_with("stored payload does not decode"));
    }
}
