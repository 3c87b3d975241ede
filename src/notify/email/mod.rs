//! Email: the message every transport sends (and the dry run writes), and the transport of the
//! destination: SMTP (`smtp.rs`, with a password or XOAUTH2) or Microsoft Graph (`graph.rs`).

mod graph;
mod smtp;

use lettre::message::header::{ContentTransferEncoding, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, Message, MultiPart};

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
                let build = |parts| {
                    build_message(&self.from, self.priority, to, subject, text, html, parts)
                };
                sender.send(build).await
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

/// How the text and HTML parts are written into the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parts {
    /// As they are, UTF-8 marked `8bit`, for a relay that offers 8BITMIME (Microsoft 365,
    /// Gmail, Postfix, Exim all do): nothing to encode and a smaller message to send. A part
    /// that cannot go 8-bit (see [`eight_bit`]) is still encoded.
    EightBit,
    /// 7-bit safe, for a relay without 8BITMIME: lettre picks 7bit, quoted-printable or base64.
    SevenBit,
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
    parts: Parts,
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
            body(text, parts),
            body(html, parts),
        ))
        .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))
}

/// `<random@domain of from>`: a fully qualified right-hand side that the sender owns (lettre's
/// default takes the host name, which in a container is a bare id that spam filters score).
fn message_id(from: &Mailbox) -> String {
    let id: u128 = rand::random();
    format!("<{id:032x}.reload-butler@{}>", from.email.domain())
}

/// One part's body, line endings made CRLF.
fn body(content: &str, parts: Parts) -> Body {
    match parts {
        Parts::EightBit => eight_bit(content).unwrap_or_else(|| Body::new(content.to_owned())),
        Parts::SevenBit => Body::new(content.to_owned()),
    }
}

/// SMTP's longest line, CRLF not counted (RFC 5321 §4.5.3.1.6).
const MAX_LINE: usize = 998;

/// `content` as an `8bit` body (RFC 6152): CRLF line endings, no line over [`MAX_LINE`], no NUL
/// and no CR outside CRLF; `None` when it cannot be one. By hand because lettre's own check
/// (email-encoding's) allows `8bit` only for lines under 76 bytes, quoted-printable's length,
/// which nearly every HTML body exceeds.
fn eight_bit(content: &str) -> Option<Body> {
    let bytes = content.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    for end in ends {
        let newline = end < bytes.len();
        let mut line = &bytes[start..end];
        if let (true, [rest @ .., b'\r']) = (newline, line) {
            line = rest;
        }
        if line.len() > MAX_LINE || memchr::memchr2(b'\r', 0, line).is_some() {
            return None;
        }
        out.extend_from_slice(line);
        if newline {
            out.extend_from_slice(b"\r\n");
        }
        start = end + 1;
    }
    Some(Body::dangerous_pre_encoded(
        out,
        ContentTransferEncoding::EightBit,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(content: &str) -> Option<Vec<u8>> {
        eight_bit(content).map(Body::into_vec)
    }

    #[test]
    fn an_eight_bit_body_has_crlf_line_endings_and_keeps_utf8() {
        assert_eq!(
            bytes("Å line\nnext\r\nlast").as_deref(),
            Some("Å line\r\nnext\r\nlast".as_bytes())
        );
        assert_eq!(bytes("ends\n").as_deref(), Some(&b"ends\r\n"[..]));
        assert_eq!(bytes("").as_deref(), Some(&b""[..]));
    }

    #[test]
    fn a_line_over_998_bytes_a_nul_or_a_bare_cr_cannot_go_eight_bit() {
        let longest = "é".repeat(MAX_LINE / 2);
        assert!(bytes(&format!("a\n{longest}\nb")).is_some());
        assert!(bytes(&format!("a\n{longest}x\nb")).is_none(), "999 bytes");
        assert!(bytes("a\0b").is_none());
        assert!(bytes("a\rb\n").is_none());
        assert!(bytes("a\r").is_none());
    }

    #[test]
    fn a_part_that_cannot_go_eight_bit_is_encoded() {
        let long = "x".repeat(MAX_LINE + 1);
        assert_ne!(
            body(&long, Parts::EightBit).encoding(),
            ContentTransferEncoding::EightBit
        );
        assert_eq!(
            body("<p>À</p>", Parts::EightBit).encoding(),
            ContentTransferEncoding::EightBit
        );
        assert_eq!(
            body("<p>À</p>", Parts::SevenBit).encoding(),
            ContentTransferEncoding::QuotedPrintable
        );
    }
}
