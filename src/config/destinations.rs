//! The `destinations:` list: where alerts go (email, Slack, Teams) and how each is gated.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;

use super::reader::{http_url, Node, Section};
use super::{Secret, SecretUrl};
use crate::keyword;

#[derive(Debug, Clone)]
pub struct DestinationConfig {
    pub name: String,
    pub enabled: bool,
    /// Non-empty: only apps carrying one of these tags alert here.
    pub only_apps_tagged: Vec<String>,
    /// Apps carrying one of these tags never alert here.
    pub skip_apps_tagged: Vec<String>,
    /// At most one alert per app (and recipient, for email) per window; zero disables.
    pub rate_limit: Duration,
    pub script_log: ScriptLogLines,
    /// Storm digests: `None` sends every alert on its own.
    pub grouping: Option<Grouping>,
    /// Send a "recovered" message when an app that alerted here reloads successfully.
    pub notify_recovery: bool,
    /// `match:`, `skip:` and `escalate_after`.
    pub route: super::Route,
    pub kind: DestinationKind,
}

/// Alerts for one destination (and recipient) wait `window` from the first one; when more than
/// `threshold` gathered, one digest goes out instead of each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    pub window: Duration,
    pub threshold: usize,
}

/// The templates of one kind of notice (digest or recovery): `None` is the stock one.
#[derive(Debug, Clone, Default)]
pub struct NoticeTemplates {
    /// Email only: the subject line (a template).
    pub subject: String,
    /// Email: the HTML body; Slack and Teams: the JSON message.
    pub template: Option<PathBuf>,
    /// Email only: the plain-text body.
    pub text_template: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLogLines {
    pub head: usize,
    pub tail: usize,
}

#[derive(Debug, Clone)]
pub enum DestinationKind {
    Email(Box<EmailConfig>),
    Slack(SlackConfig),
    Teams(TeamsConfig),
    /// Any HTTP service, with the destination's own template.
    Webhook(Box<super::WebhookConfig>),
}

keyword! {
    /// Type of a destination.
    pub enum DestinationType { Email = "email", Slack = "slack", Teams = "teams", Webhook = "webhook" }
}

keyword! {
    /// How the SMTP connection is secured.
    pub enum SmtpSecurity { StartTls = "starttls", Tls = "tls", None = "none" }
}

keyword! {
    /// Mail priority, sent as X-Priority and Importance headers.
    pub enum Priority { High = "high", Normal = "normal", Low = "low" }
}

keyword! {
    /// `formatted` renders the destination's template; `basic` sends one line and buttons.
    pub enum MessageFormat { Formatted = "formatted", Basic = "basic" }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    /// PEM CA bundle for relays with a private CA; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Set: SASL XOAUTH2 as `username` with a client-credentials token instead of a password.
    pub oauth2: Option<super::OAuthClient>,
}

#[derive(Debug, Clone)]
pub struct AppOwnerConfig {
    pub enabled: bool,
    pub include_all: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// SMTP (`smtp:`) or Microsoft Graph (`transport: graph`, `graph:`).
    pub transport: super::MailTransport,
    pub from: Mailbox,
    pub subject: String,
    /// `None`: the stock template built into the binary (the same as `templates/email/...`).
    pub html_template: Option<PathBuf>,
    pub text_template: Option<PathBuf>,
    pub priority: Priority,
    /// Each parses as a [`Mailbox`] (checked here); kept as written, as outbox rows hold them.
    pub recipients: Vec<String>,
    pub app_owner: AppOwnerConfig,
    pub digest: NoticeTemplates,
    pub recovery: NoticeTemplates,
    /// Alerts for failed Qlik Automate runs.
    pub automation: NoticeTemplates,
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The webhook URL carries its token, so it is a secret. `None` only on a disabled
    /// destination.
    pub webhook_url: Option<SecretUrl>,
    pub format: MessageFormat,
    pub basic_text: String,
    /// `None`: the stock template built into the binary.
    pub template: Option<PathBuf>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub digest_template: Option<PathBuf>,
    pub recovery_template: Option<PathBuf>,
    /// Alerts for failed Qlik Automate runs; `None` is the stock one.
    pub automation_template: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct TeamsConfig {
    /// As for Slack: a secret; `None` only on a disabled destination.
    pub webhook_url: Option<SecretUrl>,
    pub format: MessageFormat,
    pub basic_text: String,
    /// `None`: the stock template built into the binary.
    pub template: Option<PathBuf>,
    pub digest_template: Option<PathBuf>,
    pub recovery_template: Option<PathBuf>,
    /// Alerts for failed Qlik Automate runs; `None` is the stock one.
    pub automation_template: Option<PathBuf>,
}

/// Default subject of an automation alert's email.
pub const AUTOMATION_SUBJECT: &str = "❌ Qlik Automate run failed: \"{{automationName}}\"";

/// Default subjects of the digest and recovery emails.
pub const DIGEST_SUBJECT: &str = "⚠️ {{count}} Qlik Cloud reloads failed";
pub const RECOVERY_SUBJECT: &str =
    "✅ {{#if automationId}}Qlik Automate run recovered{{else}}Qlik Cloud reload recovered{{/if}}: {{#if appName}}{{appName}}{{else}}app {{appId}}{{/if}}";

const DEFAULT_GROUP_THRESHOLD: usize = 5;
const MAX_GROUP_WINDOW: Duration = Duration::from_secs(3600);

const BASIC_TEXT: &str = "Qlik Cloud reload failed: \"{{appName}}\"";

pub(super) fn read_destinations(root: &Section) -> Vec<DestinationConfig> {
    let mut destinations: Vec<DestinationConfig> = Vec::new();
    for node in root.list("destinations") {
        let Some(destination) = read_destination(&node) else {
            continue;
        };
        if destinations.iter().any(|d| d.name == destination.name) {
            node.problem_at(
                "name",
                format!("destination `{}` is listed twice", destination.name),
            );
        }
        destinations.push(destination);
    }
    destinations
}

fn read_destination(node: &Node) -> Option<DestinationConfig> {
    let s = node.section();
    let name: String = s.req("name").unwrap_or_default();
    if name.is_empty() && s.node("name").is_present() {
        s.problem("name", "must not be empty");
    }
    let kind_word: Option<DestinationType> = s.req("type");
    let script_log = s.section("script_log");
    let lines = ScriptLogLines {
        head: script_log.or("head", 15),
        tail: script_log.or("tail", 25),
    };
    drop(script_log);
    let enabled = s.or("enabled", true);
    let only_apps_tagged = s.or("only_apps_tagged", Vec::new());
    let skip_apps_tagged = s.or("skip_apps_tagged", Vec::new());
    let rate_limit = s.or("rate_limit", Duration::from_secs(300));
    let grouping = read_grouping(&s);
    let notify_recovery = s.or("notify_recovery", false);
    let route = super::routes::read_route(&s);
    let Some(kind_word) = kind_word else {
        // `type` has its problem; the keys of the type meant would each be "unknown".
        s.skip_unknown_keys();
        return None;
    };
    let kind = match kind_word {
        DestinationType::Email => DestinationKind::Email(Box::new(read_email(&s, enabled)?)),
        DestinationType::Slack => DestinationKind::Slack(read_slack(&s, enabled)),
        DestinationType::Teams => DestinationKind::Teams(read_teams(&s, enabled)),
        DestinationType::Webhook => DestinationKind::Webhook(Box::new(
            super::webhook::read_webhook(&s, enabled, grouping.is_some(), notify_recovery),
        )),
    };
    Some(DestinationConfig {
        name,
        enabled,
        only_apps_tagged,
        skip_apps_tagged,
        rate_limit,
        script_log: lines,
        grouping,
        notify_recovery,
        route,
        kind,
    })
}

/// `group_window` (zero or absent: off) and `group_threshold`.
fn read_grouping(s: &Section) -> Option<Grouping> {
    let window: Duration = s.or("group_window", Duration::ZERO);
    let threshold: usize = s.or("group_threshold", DEFAULT_GROUP_THRESHOLD);
    if window > MAX_GROUP_WINDOW {
        s.problem(
            "group_window",
            "at most 1h: every alert here waits this long before it is sent",
        );
    }
    if threshold == 0 {
        s.problem(
            "group_threshold",
            "must be at least 1 (a digest is sent when more than this many alerts gather)",
        );
    }
    (!window.is_zero()).then_some(Grouping { window, threshold })
}

/// `None` when `from` is missing or no mailbox, or `graph` unusable (problems are recorded).
fn read_email(s: &Section, enabled: bool) -> Option<EmailConfig> {
    let transport = super::email::read_transport(s);
    let owner = s.section("app_owner");
    let app_owner = AppOwnerConfig {
        enabled: owner.or("enabled", false),
        include_all: owner.or("include_all", true),
        include: owner.or("include", Vec::new()),
        exclude: owner.or("exclude", Vec::new()),
    };
    drop(owner);
    let from: Option<Mailbox> = s.req("from");
    let recipients: Vec<String> = s.or("recipients", Vec::new());
    for (i, address) in recipients.iter().enumerate() {
        // The parse the sender makes of each recipient, so that none fails at send time.
        if let Err(e) = address.trim().parse::<Mailbox>() {
            s.problem(
                &format!("recipients[{i}]"),
                format!("`{address}` is not an email address ({e})"),
            );
        }
    }
    if enabled && recipients.is_empty() && !app_owner.enabled {
        s.problem(
            "recipients",
            "is empty and app_owner is disabled: nobody would get these alerts",
        );
    }
    let subject = s.or(
        "subject",
        "❌ Qlik Cloud reload failed: \"{{appName}}\"".to_owned(),
    );
    let html_template = s.opt("html_template");
    let text_template = s.opt("text_template");
    let priority = s.or("priority", Priority::High);
    let digest = NoticeTemplates {
        subject: s.or("digest_subject", DIGEST_SUBJECT.to_owned()),
        template: s.opt("digest_html_template"),
        text_template: s.opt("digest_text_template"),
    };
    let recovery = NoticeTemplates {
        subject: s.or("recovery_subject", RECOVERY_SUBJECT.to_owned()),
        template: s.opt("recovery_html_template"),
        text_template: s.opt("recovery_text_template"),
    };
    let automation = NoticeTemplates {
        subject: s.or("automation_subject", AUTOMATION_SUBJECT.to_owned()),
        template: s.opt("automation_html_template"),
        text_template: s.opt("automation_text_template"),
    };
    Some(EmailConfig {
        transport: transport?,
        from: from?,
        subject,
        html_template,
        text_template,
        priority,
        recipients,
        app_owner,
        digest,
        recovery,
        automation,
    })
}

fn webhook_url(s: &Section, enabled: bool) -> Option<SecretUrl> {
    let url: Secret = s.opt("webhook_url").unwrap_or_default();
    if url.expose().trim().is_empty() {
        if enabled {
            s.problem("webhook_url", "is required");
        }
        return None;
    }
    match http_url(url.expose().trim()) {
        Ok(url) => Some(SecretUrl::new(url)),
        Err(why) => {
            // The URL carries a token: the message must not repeat it.
            s.problem("webhook_url", format!("expected an https:// url ({why})"));
            None
        }
    }
}

fn read_slack(s: &Section, enabled: bool) -> SlackConfig {
    SlackConfig {
        webhook_url: webhook_url(s, enabled),
        format: s.or("format", MessageFormat::Formatted),
        basic_text: s.or("basic_text", BASIC_TEXT.to_owned()),
        template: s.opt("template"),
        channel: s.opt("channel"),
        username: s.opt("username"),
        icon_emoji: s.opt("icon_emoji"),
        digest_template: s.opt("digest_template"),
        recovery_template: s.opt("recovery_template"),
        automation_template: s.opt("automation_template"),
    }
}

fn read_teams(s: &Section, enabled: bool) -> TeamsConfig {
    TeamsConfig {
        webhook_url: webhook_url(s, enabled),
        format: s.or("format", MessageFormat::Formatted),
        basic_text: s.or("basic_text", BASIC_TEXT.to_owned()),
        template: s.opt("template"),
        digest_template: s.opt("digest_template"),
        recovery_template: s.opt("recovery_template"),
        automation_template: s.opt("automation_template"),
    }
}
