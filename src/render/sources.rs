//! Where a destination's templates come from: the files its config names, the stock templates
//! where it names none, or config values; read when the registry compiles them.

use std::path::{Path, PathBuf};

use super::{stock, Kind};
use crate::config::{stock_name, DestinationConfig, DestinationKind, WebhookConfig, STOCK_PREFIX};

/// The templates of one kind for one destination: configured (or stock) sources, and the
/// config keys they come from.
pub(super) struct TemplateSet {
    pub subject: Option<(String, &'static str)>,
    pub body: (Source, &'static str),
    pub text: Option<(Source, &'static str)>,
}

/// Destination `d`'s template sources for `kind`, stock where the config names none.
pub(super) fn template_set(d: &DestinationConfig, kind: Kind) -> TemplateSet {
    let stock = match kind {
        Kind::Alert => None,
        Kind::Digest => Some(stock::DIGEST),
        Kind::Recovery => Some(stock::RECOVERY),
        Kind::Automation => Some(stock::AUTOMATION),
    };
    match (&d.kind, stock) {
        (DestinationKind::Email(e), None) => TemplateSet {
            subject: Some((e.subject.clone(), "subject")),
            body: (
                Source::pick(&e.html_template, stock::EMAIL_HTML),
                "html_template",
            ),
            text: Some((
                Source::pick(&e.text_template, stock::EMAIL_TEXT),
                "text_template",
            )),
        },
        (DestinationKind::Email(e), Some(stock)) => {
            let (notice, keys) = match kind {
                Kind::Digest => (
                    &e.digest,
                    [
                        "digest_subject",
                        "digest_html_template",
                        "digest_text_template",
                    ],
                ),
                Kind::Automation => (
                    &e.automation,
                    [
                        "automation_subject",
                        "automation_html_template",
                        "automation_text_template",
                    ],
                ),
                _ => (
                    &e.recovery,
                    [
                        "recovery_subject",
                        "recovery_html_template",
                        "recovery_text_template",
                    ],
                ),
            };
            TemplateSet {
                subject: Some((notice.subject.clone(), keys[0])),
                body: (Source::pick(&notice.template, stock.email_html), keys[1]),
                text: Some((
                    Source::pick(&notice.text_template, stock.email_text),
                    keys[2],
                )),
            }
        }
        (DestinationKind::Slack(s), stock) => chat_set(
            &s.template,
            &s.digest_template,
            &s.recovery_template,
            &s.automation_template,
            stock.map_or(stock::SLACK, |s| s.slack),
            kind,
        ),
        (DestinationKind::Teams(t), stock) => chat_set(
            &t.template,
            &t.digest_template,
            &t.recovery_template,
            &t.automation_template,
            stock.map_or(stock::TEAMS, |s| s.teams),
            kind,
        ),
        (DestinationKind::Webhook(w), _) => webhook_set(w, kind),
    }
}

/// A webhook's templates: the config names each one it uses (no stock template fits an unknown
/// service); an automation alert uses the alert's unless it has its own.
fn webhook_set(w: &WebhookConfig, kind: Kind) -> TemplateSet {
    let (path, key) = match kind {
        Kind::Alert => (Some(&w.template), "template"),
        Kind::Digest => (w.digest_template.as_ref(), "digest_template"),
        Kind::Recovery => (w.recovery_template.as_ref(), "recovery_template"),
        Kind::Automation => match &w.automation_template {
            Some(path) => (Some(path), "automation_template"),
            None => (Some(&w.template), "template"),
        },
    };
    // Config requires the digest and recovery templates a webhook uses.
    let path = path.unwrap_or(&w.template);
    let source = match stock_name(path) {
        Some(name) => match stock::webhook(name) {
            Some((file, text)) => Source::Stock(file, text),
            None => Source::Missing(format!("`{STOCK_PREFIX}{name}` is no built-in template")),
        },
        None => Source::File(path.clone()),
    };
    TemplateSet {
        subject: None,
        body: (source, key),
        text: None,
    }
}

fn chat_set(
    alert: &Option<PathBuf>,
    digest: &Option<PathBuf>,
    recovery: &Option<PathBuf>,
    automation: &Option<PathBuf>,
    stock: (&'static str, &'static str),
    kind: Kind,
) -> TemplateSet {
    let (path, key) = match kind {
        Kind::Alert => (alert, "template"),
        Kind::Digest => (digest, "digest_template"),
        Kind::Recovery => (recovery, "recovery_template"),
        Kind::Automation => (automation, "automation_template"),
    };
    TemplateSet {
        subject: None,
        body: (Source::pick(path, stock), key),
        text: None,
    }
}

/// Where a template comes from: a file, the stock template, or a config value.
pub(super) enum Source {
    File(PathBuf),
    Stock(&'static str, &'static str),
    Inline(String),
    /// A name that is no template: the message says why.
    Missing(String),
}

impl Source {
    pub(super) fn pick(path: &Option<PathBuf>, stock: (&'static str, &'static str)) -> Source {
        match path {
            Some(p) => Source::File(p.clone()),
            None => Source::Stock(stock.0, stock.1),
        }
    }

    /// The template text and a name for it in messages.
    pub(super) fn load(self) -> Result<(String, String), String> {
        match self {
            Source::File(path) => read(&path).map(|text| (path.display().to_string(), text)),
            Source::Stock(name, text) => Ok((format!("stock {name}"), text.to_owned())),
            Source::Inline(text) => Ok(("config value".to_owned(), text)),
            Source::Missing(why) => Err(why),
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read template {}: {e}", path.display()))
}
