//! The senders against real parts: a real SMTP server (aiosmtpd: STARTTLS, implicit TLS, AUTH,
//! failure replies), wiremock servers answering like Slack and Teams, and the dry-run directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;
#[path = "notify/email.rs"]
mod email;
#[path = "notify/file.rs"]
mod file;
#[path = "notify/webhook.rs"]
mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use reload_butler::config::{
    AppOwnerConfig, DestinationConfig, DestinationKind, EmailConfig, MailTransport, MessageFormat,
    NoticeTemplates, Priority, ScriptLogLines, Secret, SecretUrl, SlackConfig, SmtpConfig,
    SmtpSecurity, TeamsConfig,
};
use reload_butler::notify::{Notifier, Payload, SendMeta};

const META: SendMeta<'static> = SendMeta {
    destination: "ops",
    app_id: "f9a6f5b1-0c3e-4c2e-9d36-6a6c0a7f1b11",
    reload_id: "65f1c0ffee0123456789abcd",
    job_id: 1,
};
const SUBJECT: &str = "❌ Reload failed: \"Sales & Finance\" 'EU' 🚨";
const TEXT: &str = "Engine said: ÅÄÖ & <no> HTML here\nline 2";
const HTML: &str = "<p>Engine said: <b>ÅÄÖ</b> &amp; more</p>";
const PASSWORD: &str = "s3cret-pa55";

fn destination(kind: DestinationKind) -> DestinationConfig {
    DestinationConfig {
        name: "ops".to_owned(),
        enabled: true,
        only_apps_tagged: vec![],
        skip_apps_tagged: vec![],
        rate_limit: Duration::ZERO,
        script_log: ScriptLogLines { head: 15, tail: 25 },
        grouping: None,
        notify_recovery: false,
        route: Default::default(),
        kind,
    }
}

fn email_config(
    port: u16,
    security: SmtpSecurity,
    ca: Option<PathBuf>,
    password: Option<&str>,
) -> EmailConfig {
    EmailConfig {
        transport: MailTransport::Smtp(SmtpConfig {
            host: "localhost".to_owned(),
            port,
            security,
            // No password: a relay without AUTH.
            username: password.map(|_| "alerts".to_owned()),
            password: password.map(Secret::new),
            timeout: Duration::from_secs(20),
            ca_file: ca,
            oauth2: None,
        }),
        from: "Qlik Cloud alerts <qlik-alerts@acme.com>"
            .parse()
            .expect("mailbox"),
        subject: String::new(),
        html_template: None,
        text_template: None,
        priority: if security == SmtpSecurity::Tls {
            Priority::Low
        } else {
            Priority::High
        },
        recipients: vec!["oncall@example.com".to_owned()],
        app_owner: AppOwnerConfig {
            enabled: false,
            include_all: true,
            include: vec![],
            exclude: vec![],
        },
        digest: NoticeTemplates::default(),
        recovery: NoticeTemplates::default(),
        automation: NoticeTemplates::default(),
    }
}

fn email_to(
    port: u16,
    security: SmtpSecurity,
    ca: Option<PathBuf>,
    password: Option<&str>,
) -> Notifier {
    let email = email_config(port, security, ca, password);
    Notifier::for_destination(&destination(DestinationKind::Email(Box::new(email))), None)
        .expect("notifier")
}

fn mail(to: &str) -> Payload {
    Payload::Email {
        to: to.into(),
        subject: SUBJECT.into(),
        html: HTML.into(),
        text: TEXT.into(),
    }
}

fn slack_config(url: String) -> DestinationKind {
    DestinationKind::Slack(SlackConfig {
        webhook_url: Some(SecretUrl::new(url.parse().expect("url"))),
        format: MessageFormat::Formatted,
        basic_text: String::new(),
        template: None,
        channel: None,
        username: None,
        icon_emoji: None,
        digest_template: None,
        recovery_template: None,
        automation_template: None,
    })
}

fn teams_config(url: String) -> DestinationKind {
    DestinationKind::Teams(TeamsConfig {
        webhook_url: Some(SecretUrl::new(url.parse().expect("url"))),
        format: MessageFormat::Formatted,
        basic_text: String::new(),
        template: None,
        digest_template: None,
        recovery_template: None,
        automation_template: None,
    })
}
