//! Email over SMTP with lettre: one pooled transport per destination, so a storm of alerts
//! reuses a few connections instead of opening (and checking) one per mail. With
//! `smtp.oauth2`, SASL XOAUTH2 as `smtp.username` with a client-credentials token; the pool is
//! rebuilt when the token changes. Text and HTML go as 8-bit UTF-8 when the relay offers
//! 8BITMIME (encoding them quoted-printable was the largest cost of an email), else 7-bit safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use lettre::message::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::runtime::Handle;

use super::super::{describe, NotifyError, Receipt, SendError};
use super::{token_failure, Parts};
use crate::config::{Secret, SmtpConfig, SmtpSecurity};
use crate::oauth::TokenSource;

type Transport = AsyncSmtpTransport<Tokio1Executor>;
/// What the relay answered to one send.
type Sent = Result<Response, lettre::transport::smtp::Error>;

/// What Microsoft 365 needs for XOAUTH2 when a token is refused twice.
const XOAUTH2_HINT: &str = "the relay refused a fresh OAuth2 token: for Microsoft 365 check the \
    SMTP.SendAsApp permission and its admin consent, the app's service principal in Exchange \
    Online (New-ServicePrincipal) with FullAccess on the mailbox (Add-MailboxPermission), and \
    that SMTP AUTH is enabled for the mailbox";

pub(super) struct SmtpSender {
    relay: String,
    builder: AsyncSmtpTransportBuilder,
    xoauth2: Option<XOAuth2>,
    /// Built at the first send rather than in `new`: lettre's pool spawns its clean-up task on
    /// the Tokio runtime it is built in, and must be dropped inside one (see `Drop`).
    pool: Mutex<Option<Pool>>,
    /// Set once the relay turned out to lack 8BITMIME: mails are built 7-bit safe.
    seven_bit: AtomicBool,
}

struct XOAuth2 {
    mailbox: String,
    tokens: TokenSource,
}

struct Pool {
    transport: Transport,
    /// The token its connections signed in with (XOAUTH2 only).
    token: Option<Secret>,
    handle: Handle,
}

impl std::fmt::Debug for SmtpSender {
    // By hand: the transport builder holds the SMTP credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("relay", &self.relay)
            .field("xoauth2", &self.xoauth2.as_ref().map(|x| &x.mailbox))
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    pub(super) fn new(destination: &str, smtp: &SmtpConfig) -> Result<SmtpSender, NotifyError> {
        crate::tls::ensure_crypto_provider();
        let tls = match smtp.security {
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(destination, smtp)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(destination, smtp)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = Transport::builder_dangerous(smtp.host.as_str())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(smtp.timeout));
        let mut xoauth2 = None;
        match (&smtp.oauth2, &smtp.username) {
            (Some(client), Some(user)) => {
                let tokens = TokenSource::new(client, smtp.timeout).map_err(|e| {
                    NotifyError::new(destination, format!("HTTP client: {}", describe(&e)))
                })?;
                builder = builder.authentication(vec![Mechanism::Xoauth2]);
                xoauth2 = Some(XOAuth2 {
                    mailbox: user.clone(),
                    tokens,
                });
            }
            (Some(_), None) => {
                return Err(NotifyError::new(
                    destination,
                    "smtp.oauth2 needs smtp.username",
                ))
            }
            // AUTH whenever a user is configured; a relay that wants no password gets an empty one.
            (None, Some(user)) => {
                let password = smtp.password.as_ref().map(|p| p.expose().to_owned());
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
            }
            (None, None) => {}
        }
        Ok(SmtpSender {
            relay: format!("{}:{}", smtp.host, smtp.port),
            builder,
            xoauth2,
            pool: Mutex::new(None),
            seven_bit: AtomicBool::new(false),
        })
    }

    /// Sends the mail `build` makes: 8-bit parts unless this relay was found to lack 8BITMIME
    /// (lettre refuses to send them then, before MAIL FROM), in which case the mail is built
    /// again 7-bit safe and this sender stays 7-bit for the rest of its life.
    pub(super) async fn send(
        &self,
        build: impl Fn(Parts) -> Result<Message, SendError>,
    ) -> Result<Receipt, SendError> {
        if self.seven_bit.load(Ordering::Relaxed) {
            return outcome(self.attempt(build(Parts::SevenBit)?).await?);
        }
        match self.attempt(build(Parts::EightBit)?).await? {
            Err(e) if no_8bitmime(&e) => {
                if !self.seven_bit.swap(true, Ordering::Relaxed) {
                    tracing::info!(relay = %self.relay, "the relay does not offer 8BITMIME: its mails go 7-bit safe (quoted-printable or base64) from now on");
                }
                outcome(self.attempt(build(Parts::SevenBit)?).await?)
            }
            other => outcome(other),
        }
    }

    /// One send of `message`, with a renewed token when the relay refused the first (XOAUTH2).
    /// The outer error is final; the inner result is the relay's.
    async fn attempt(&self, message: Message) -> Result<Sent, SendError> {
        let Some(xoauth2) = &self.xoauth2 else {
            return Ok(self.transport(None)?.send(message).await);
        };
        let token = xoauth2.tokens.token().await.map_err(token_failure)?;
        let first = self.transport(Some(&token))?.send(message.clone()).await;
        match first {
            Err(e) if refused_login(&e) => {
                // The token may have been revoked or have lapsed early: renew it once before
                // the delivery counts as failed.
                tracing::debug!(relay = %self.relay, reason = ?classify(&e).reason(), "XOAUTH2 token refused, renewing it");
                xoauth2.tokens.invalidate(&token).await;
                let renewed = xoauth2.tokens.token().await.map_err(token_failure)?;
                match self.transport(Some(&renewed))?.send(message).await {
                    Err(e) if refused_login(&e) => Err(SendError::permanent(format!(
                        "{} — {XOAUTH2_HINT}",
                        classify(&e).reason()
                    ))),
                    other => Ok(other),
                }
            }
            Err(e) if no_xoauth2(&e) => Err(SendError::permanent(format!(
                "the relay does not offer AUTH XOAUTH2 ({}): check smtp.host, and that \
                 security is starttls or tls (Microsoft 365 offers it only after STARTTLS)",
                describe(&e)
            ))),
            other => Ok(other),
        }
    }

    /// Connects, says EHLO, starts TLS and signs in as a send would, and sends nothing
    /// (`doctor`). Returns the relay's address.
    pub(super) async fn sign_in(&self) -> Result<String, SendError> {
        let token = match &self.xoauth2 {
            Some(xoauth2) => Some(xoauth2.tokens.token().await.map_err(token_failure)?),
            None => None,
        };
        match self.transport(token.as_ref())?.test_connection().await {
            Ok(true) => Ok(self.relay.clone()),
            Ok(false) => Err(SendError::transient(
                "the relay closed the connection after the sign-in",
            )),
            Err(e) if no_xoauth2(&e) => Err(SendError::permanent(format!(
                "the relay does not offer AUTH XOAUTH2 ({})",
                describe(&e)
            ))),
            Err(e) => Err(classify(&e)),
        }
    }

    /// The pooled transport, built for `token` (a pool whose connections signed in with another
    /// token is replaced).
    fn transport(&self, token: Option<&Secret>) -> Result<Transport, SendError> {
        let handle = Handle::try_current()
            .map_err(|_| SendError::permanent("the email sender runs only on a Tokio runtime"))?;
        let mut pool = self
            .pool
            .lock()
            .map_err(|_| SendError::transient("the SMTP pool lock was poisoned"))?;
        if let Some(current) = pool.as_ref().filter(|p| p.token.as_ref() == token) {
            return Ok(current.transport.clone());
        }
        let mut builder = self.builder.clone();
        if let (Some(token), Some(xoauth2)) = (token, &self.xoauth2) {
            builder = builder.credentials(Credentials::new(
                xoauth2.mailbox.clone(),
                token.expose().to_owned(),
            ));
        }
        let fresh = Pool {
            transport: builder.build(),
            token: token.cloned(),
            handle,
        };
        let transport = fresh.transport.clone();
        // The old pool (if any) is dropped here, on the runtime: its connections close.
        *pool = Some(fresh);
        Ok(transport)
    }
}

impl Drop for SmtpSender {
    /// lettre's pool spawns a task when dropped, which panics outside a Tokio runtime; enter the
    /// runtime the pool was built in, so dropping a sender anywhere (e.g. at exit) is safe.
    fn drop(&mut self) {
        let pool = match self.pool.get_mut() {
            Ok(pool) => pool.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(Pool {
            transport, handle, ..
        }) = pool
        {
            let _inside = handle.enter();
            drop(transport);
        }
    }
}

fn outcome(result: Sent) -> Result<Receipt, SendError> {
    match result {
        Ok(response) => Ok(Receipt {
            detail: reply_text(&response),
        }),
        Err(e) => Err(classify(&e)),
    }
}

/// The relay did not take the token: `535` (Microsoft 365: `535 5.7.3 Authentication
/// unsuccessful`), or Gmail's way of saying so, a `334` challenge carrying its error JSON,
/// which lettre answers with a client error ("does not expect a challenge").
fn refused_login(error: &lettre::transport::smtp::Error) -> bool {
    error.status().is_some_and(|code| code.to_string() == "535")
        || (error.is_client() && error.to_string().contains("challenge"))
}

/// lettre found no mechanism it may use among those the relay offers: a config mistake that
/// waiting will not fix (lettre reports it as a client error, which would be retried).
fn no_xoauth2(error: &lettre::transport::smtp::Error) -> bool {
    error.is_client()
        && error
            .to_string()
            .contains("No compatible authentication mechanism")
}

/// lettre would not send 8-bit parts: the relay's EHLO did not offer 8BITMIME.
fn no_8bitmime(error: &lettre::transport::smtp::Error) -> bool {
    error.is_client() && error.to_string().contains("8BITMIME")
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
