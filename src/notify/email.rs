//! Email over SMTP with lettre: one pooled transport per destination, built once, so a storm of
//! alerts reuses a few connections instead of opening (and checking) one per mail.

use std::sync::OnceLock;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::runtime::Handle;

use super::{describe, wrong_kind, NotifyError, Payload, Receipt, SendError};
use crate::config::{EmailConfig, Priority, SmtpConfig, SmtpSecurity};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

const X_PRIORITY: HeaderName = HeaderName::new_from_ascii_str("X-Priority");
const IMPORTANCE: HeaderName = HeaderName::new_from_ascii_str("Importance");

pub struct EmailNotifier {
    from: Mailbox,
    priority: Priority,
    relay: String,
    builder: AsyncSmtpTransportBuilder,
    /// Built at the first send rather than in `new`: lettre's pool spawns its clean-up task on
    /// the Tokio runtime it is built in, and must be dropped inside one (see `Drop`).
    transport: OnceLock<(Transport, Handle)>,
}

impl std::fmt::Debug for EmailNotifier {
    // By hand: the transport builder holds the SMTP credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("from", &self.from.to_string())
            .field("relay", &self.relay)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    pub fn new(destination: &str, config: &EmailConfig) -> Result<EmailNotifier, NotifyError> {
        crate::tls::ensure_crypto_provider();
        let smtp = &config.smtp;
        let tls = match smtp.security {
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(destination, smtp)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(destination, smtp)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = Transport::builder_dangerous(smtp.host.as_str())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(smtp.timeout));
        // AUTH whenever a user is configured; a relay that wants no password gets an empty one.
        if let Some(user) = &smtp.username {
            let password = smtp.password.as_ref().map(|p| p.expose().to_owned());
            builder =
                builder.credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
        }
        Ok(EmailNotifier {
            from: config.from.clone(),
            priority: config.priority,
            relay: format!("{}:{}", smtp.host, smtp.port),
            builder,
            transport: OnceLock::new(),
        })
    }

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
        let message = build_message(&self.from, self.priority, to, subject, text, html)?;
        match self.transport()?.send(message).await {
            Ok(response) => Ok(Receipt {
                detail: reply_text(&response),
            }),
            Err(e) => Err(classify(&e)),
        }
    }

    fn transport(&self) -> Result<&Transport, SendError> {
        if let Some((transport, _)) = self.transport.get() {
            return Ok(transport);
        }
        let handle = Handle::try_current()
            .map_err(|_| SendError::permanent("the email sender runs only on a Tokio runtime"))?;
        // `get_or_init` runs once; a concurrent first send waits for it.
        let (transport, _) = self
            .transport
            .get_or_init(|| (self.builder.clone().build(), handle));
        Ok(transport)
    }
}

impl Drop for EmailNotifier {
    /// lettre's pool spawns a task when dropped, which panics outside a Tokio runtime; enter the
    /// runtime the pool was built in, so dropping a notifier anywhere (e.g. at exit) is safe.
    fn drop(&mut self) {
        if let Some((transport, handle)) = self.transport.take() {
            let _inside = handle.enter();
            drop(transport);
        }
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

/// `smtp.ca_file` set: trust only that CA (a private relay), as `mqtt.ca_file` does; else the
/// system's roots.
fn tls_parameters(destination: &str, smtp: &SmtpConfig) -> Result<TlsParameters, NotifyError> {
    let problem = |message: String| NotifyError::new(destination, message);
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca_file {
        let certs =
            crate::tls::read_certs(path, "smtp.ca_file").map_err(|e| problem(e.to_string()))?;
        builder = builder.certificate_store(CertificateStore::None);
        for cert in certs {
            let cert = Certificate::from_der(cert.to_vec())
                .map_err(|e| problem(format!("smtp.ca_file {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build_rustls()
        .map_err(|e| problem(format!("smtp TLS set-up: {}", describe(&e))))
}

/// 5xx replies are permanent; 4xx replies, and every failure without a reply (connection,
/// TLS, timeout, a relay that stopped offering STARTTLS), may clear up and are retried.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let reason = match error.status() {
        Some(code) => {
            let text = std::error::Error::source(error)
                .map(ToString::to_string)
                .unwrap_or_default();
            format!("{code} {text}").trim_end().to_owned()
        }
        None => describe(error),
    };
    if error.is_permanent() {
        SendError::permanent(reason)
    } else {
        SendError::transient(reason)
    }
}

fn reply_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" "))
        .trim_end()
        .to_owned()
}
