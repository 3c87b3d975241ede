//! Email: the message every transport sends (and the dry run writes), and the transport of the
//! destination: SMTP (`smtp.rs`, with a password or XOAUTH2) or Microsoft Graph (`graph.rs`).

mod graph;
mod smtp;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};

use super::{wrong_kind, NotifyError, Payload, Receipt, SendError};
use crate::config::{EmailConfig, MailTransport, Priority};
use crate::oauth::TokenError;

const X_PRIORITY: HeaderName = HeaderName::new_from_ascii_str("X-Priority");
const IMPORTANCE: HeaderName = HeaderName::new_from_ascii_str("Importance");

#[derive(Debug)]
pub struct EmailNotifier {
    from: Mailbox,
    priority: Priority,
    via: Via,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per destination, built once: boxing would buy nothing
enum Via {
    Smtp(smtp::SmtpSender),
    Graph(graph::GraphSender),
}

impl EmailNotifier {
    /// Builds the transport (TLS set-up, HTTP clients); touches no network.
    pub fn new(destination: &str, config: &EmailConfig) -> Result<EmailNotifier, NotifyError> {
        let via = match &config.transport {
            MailTransport::Smtp(smtp) => Via::Smtp(smtp::SmtpSender::new(destination, smtp)?),
            MailTransport::Graph(graph) => Via::Graph(graph::GraphSender::new(
                destination,
                graph,
                &config.from,
                config.priority,
            )?),
        };
        Ok(EmailNotifier {
            from: config.from.clone(),
            priority: config.priority,
            via,
        })
    }

    /// Sends one mail to its one recipient.
    pub async fn send(&self, payload: &Payload) -> Result<Receipt, SendError> {
        let Payload::Email {
            to,
            subject,
            html,
            text,
        } = payload
        else {
            return Err(wrong_kind(payload, "email"));
        };
        match &self.via {
            Via::Smtp(sender) => {
                let message = build_message(&self.from, self.priority, to, subject, text, html)?;
                sender.send(message).await
            }
            Via::Graph(sender) => sender.send(to, subject, html).await,
        }
    }
}

impl EmailNotifier {
    /// Signs in to the SMTP relay as a send would, sending nothing (`doctor`): the relay's
    /// address. `None` for Microsoft Graph, which has no sign-in apart from its token.
    pub async fn sign_in(&self) -> Option<Result<String, SendError>> {
        match &self.via {
            Via::Smtp(sender) => Some(sender.sign_in().await),
            Via::Graph(_) => None,
        }
    }
}

/// A token the sender could not get: retried when the endpoint was busy or down (nothing is
/// lost while it is), dead when it refused the client (wrong secret, no consent, ...).
fn token_failure(error: TokenError) -> SendError {
    if error.is_transient() {
        SendError::Transient {
            retry_after: error.retry_after(),
            reason: error.to_string(),
        }
    } else {
        SendError::permanent(error.to_string())
    }
}

/// The message both the SMTP path and the dry-run `.eml` writer produce: plain text, then HTML
/// (multipart/alternative, UTF-8), with the destination's priority headers.
pub(crate) fn build_message(
    from: &Mailbox,
    priority: Priority,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
) -> Result<Message, SendError> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| SendError::permanent(format!("`{to}` is not an email address: {e}")))?;
    let (x_priority, importance) = match priority {
        Priority::High => ("1", "high"),
        Priority::Normal => ("3", "normal"),
        Priority::Low => ("5", "low"),
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(message_id(from)))
        .raw_header(HeaderValue::new(X_PRIORITY, x_priority.to_owned()))
        .raw_header(HeaderValue::new(IMPORTANCE, importance.to_owned()))
        .multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        ))
        .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))
}

/// `<random@domain of from>`: a fully qualified right-hand side that the sender owns (lettre's
/// default takes the host name, which in a container is a bare id that spam filters score).
fn message_id(from: &Mailbox) -> String {
    let id: u128 = rand::random();
    format!("<{id:032x}.reload-butler@{}>", from.email.domain())
}
