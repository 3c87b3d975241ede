//! `type: webhook`: any HTTP service (PagerDuty, Opsgenie, Google Chat, Mattermost, an in-house
//! endpoint). The body is the destination's own template.

use std::path::PathBuf;

use super::reader::{http_url, Section};
use super::{Secret, SecretUrl};
use crate::keyword;

keyword! {
    /// The HTTP method of a webhook destination.
    pub enum HttpMethod { Post = "POST", Put = "PUT" }
}

/// The built-in webhook templates, named `stock:NAME` in a template key (the same files ship in
/// `templates/webhook/`).
pub const STOCK_WEBHOOK_TEMPLATES: &[&str] = &[
    "pagerduty",
    "pagerduty-recovered",
    "google-chat",
    "google-chat-recovered",
];

/// The prefix of a template key's value that names a built-in template instead of a file.
pub const STOCK_PREFIX: &str = "stock:";

/// The built-in template a template key names (`stock:NAME` → `NAME`); `None` for a file.
pub fn stock_name(path: &std::path::Path) -> Option<&str> {
    path.to_str()?.strip_prefix(STOCK_PREFIX)
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// A secret (it often carries a token). `None` only on a disabled destination.
    pub url: Option<SecretUrl>,
    pub method: HttpMethod,
    /// Sent with every request; values may be secrets (`Authorization: Bearer ${TOKEN}`).
    pub headers: Vec<(String, Secret)>,
    pub content_type: String,
    /// Templates: the alert's (required), and those of digests, recovery notices and automation
    /// alerts (the automation one defaults to the alert's). A path, or `stock:NAME`.
    pub template: PathBuf,
    pub digest_template: Option<PathBuf>,
    pub recovery_template: Option<PathBuf>,
    pub automation_template: Option<PathBuf>,
    /// `vars.NAME` in the templates; values may be secrets, so they are put into the body only
    /// when it is sent (the outbox and the console never hold them).
    pub vars: Vec<(String, Secret)>,
}

impl WebhookConfig {
    /// Whether the body is JSON: values are then JSON-escaped and the output must parse.
    pub fn is_json(&self) -> bool {
        is_json(&self.content_type)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// Headers the sender sets itself, or that would break the request.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

pub(super) fn read_webhook(
    s: &Section,
    enabled: bool,
    grouping: bool,
    recovery: bool,
) -> WebhookConfig {
    let url: Secret = s.opt("url").unwrap_or_default();
    let url = if url.expose().trim().is_empty() {
        if enabled {
            s.problem("url", "is required");
        }
        None
    } else {
        match http_url(url.expose().trim()) {
            Ok(url) => Some(SecretUrl::new(url)),
            // The URL may carry a token: the message must not repeat it.
            Err(why) => {
                s.problem("url", format!("expected an https:// url ({why})"));
                None
            }
        }
    };
    let headers = read_map(s, "headers", |name| {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err("is not an HTTP header name (letters, digits, - and _)".to_owned());
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err("is set by reload-butler (use content_type for Content-Type)".to_owned());
        }
        Ok(())
    });
    for (name, value) in &headers {
        if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
            s.problem(
                &format!("headers.{name}"),
                "has a character HTTP headers cannot carry (a line break?)",
            );
        }
    }
    let vars = read_map(s, "vars", |name| {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err("must be letters, digits and _ (templates use it as vars.NAME)".to_owned());
        }
        Ok(())
    });
    let content_type: String = s.or("content_type", "application/json".to_owned());
    if reqwest::header::HeaderValue::from_str(&content_type).is_err()
        || content_type.trim().is_empty()
    {
        s.problem(
            "content_type",
            "is not a media type such as application/json",
        );
    }
    let template: Option<PathBuf> = s.req("template");
    let webhook = WebhookConfig {
        url,
        method: s.or("method", HttpMethod::Post),
        headers,
        content_type,
        template: template.unwrap_or_default(),
        digest_template: s.opt("digest_template"),
        recovery_template: s.opt("recovery_template"),
        automation_template: s.opt("automation_template"),
        vars,
    };
    // No stock digest or recovery fits an unknown service: the config names one when it is used.
    if grouping && webhook.digest_template.is_none() {
        s.problem(
            "digest_template",
            "is required with group_window on a webhook destination",
        );
    }
    if recovery && webhook.recovery_template.is_none() {
        s.problem(
            "recovery_template",
            "is required with notify_recovery on a webhook destination (stock:pagerduty-recovered resolves a PagerDuty incident)",
        );
    }
    check_pagerduty(s, &webhook);
    for (key, path) in [
        ("template", Some(&webhook.template)),
        ("digest_template", webhook.digest_template.as_ref()),
        ("recovery_template", webhook.recovery_template.as_ref()),
        ("automation_template", webhook.automation_template.as_ref()),
    ] {
        let Some(name) = path.and_then(|p| stock_name(p)) else {
            continue;
        };
        if !STOCK_WEBHOOK_TEMPLATES.contains(&name) {
            s.problem(
                key,
                format!(
                    "`{STOCK_PREFIX}{name}` is no built-in template; there are {}",
                    STOCK_WEBHOOK_TEMPLATES
                        .iter()
                        .map(|n| format!("{STOCK_PREFIX}{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    webhook
}

/// The stock PagerDuty templates send `vars.routing_key` and `vars.severity`: without the key,
/// or with a severity PagerDuty does not know, every page would be refused (HTTP 400).
fn check_pagerduty(s: &Section, w: &WebhookConfig) {
    let stock = |p: Option<&PathBuf>| {
        p.and_then(|p| stock_name(p))
            .is_some_and(|name| name.starts_with("pagerduty"))
    };
    let uses = [
        Some(&w.template),
        w.automation_template.as_ref(),
        w.recovery_template.as_ref(),
    ]
    .into_iter()
    .any(stock);
    if !uses {
        return;
    }
    let var = |name: &str| {
        w.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose())
    };
    if var("routing_key").is_none_or(|k| k.trim().is_empty()) {
        s.problem(
            "vars.routing_key",
            "is required by the stock PagerDuty templates: the integration key of an Events API v2 integration",
        );
    }
    if let Some(severity) = var("severity") {
        if !["critical", "error", "warning", "info"].contains(&severity) {
            s.problem(
                "vars.severity",
                format!(
                    "`{severity}` is not a PagerDuty severity: critical, error, warning or info"
                ),
            );
        }
    }
}

/// A mapping of names to (secret) text, each name checked by `valid`.
fn read_map(
    s: &Section,
    key: &'static str,
    valid: impl Fn(&str) -> Result<(), String>,
) -> Vec<(String, Secret)> {
    let node = s.node(key);
    let mut out = Vec::new();
    for (name, value) in node.entries() {
        if let Err(why) = valid(&name) {
            value.problem(why);
            continue;
        }
        if out
            .iter()
            .any(|(n, _): &(String, Secret)| n.eq_ignore_ascii_case(&name))
        {
            value.problem("is set twice");
            continue;
        }
        match value.get::<Secret>() {
            Some(secret) => out.push((name, secret)),
            None if !value.is_present() => value.problem("needs a value"),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, DestinationKind, Env};

    fn webhook(yaml: &str) -> Result<super::WebhookConfig, String> {
        let text = format!(
            "poll: {{enabled: false}}\ntenants: [{{id: t, url: 'https://t.example.com', auth: {{api_key: k}}}}]\ndestinations:\n  - {{name: w, type: webhook, {yaml}}}\n"
        );
        let env = Env::from([("KEY".to_owned(), "r0ut1ng".to_owned())]);
        let config = Config::from_yaml(&text, std::path::Path::new("t.yaml"), &env)
            .map_err(|e| e.to_string())?;
        match config.destinations.into_iter().next().map(|d| d.kind) {
            Some(DestinationKind::Webhook(w)) => Ok(*w),
            other => Err(format!("not a webhook: {other:?}")),
        }
    }

    #[test]
    fn keys_and_defaults() {
        let w = webhook("url: 'https://events.pagerduty.com/v2/enqueue', template: 'stock:pagerduty', vars: {routing_key: '${KEY}', severity: critical}, headers: {X-Team: bi}")
            .expect("config");
        assert_eq!(w.method, super::HttpMethod::Post);
        assert!(w.is_json());
        assert_eq!(w.vars[0].0, "routing_key");
        assert_eq!(w.vars[0].1.expose(), "r0ut1ng");
        assert_eq!(w.headers[0].0, "X-Team");
        let put = webhook(
            "url: 'https://x.example.com', method: PUT, template: t.hbs, content_type: text/plain",
        )
        .expect("config");
        assert_eq!(put.method, super::HttpMethod::Put);
        assert!(!put.is_json());
        assert!(super::is_json("application/vnd.api+json; charset=utf-8"));
    }

    #[test]
    fn mistakes_are_problems_without_secrets() {
        for (yaml, expect) in [
            (
                "url: 'https://x.example.com'",
                "destinations[0].template: is required",
            ),
            ("template: t.hbs", "destinations[0].url: is required"),
            (
                "url: 'ftp://x', template: t.hbs",
                "destinations[0].url: expected an https:// url",
            ),
            (
                "url: 'https://x.example.com', template: 'stock:opsgenie'",
                "no built-in template",
            ),
            (
                "url: 'https://x.example.com', template: t.hbs, method: GET",
                "destinations[0].method",
            ),
            (
                "url: 'https://x.example.com', template: t.hbs, headers: {Content-Type: x}",
                "use content_type",
            ),
            (
                "url: 'https://x.example.com', template: t.hbs, vars: {'a-b': x}",
                "destinations[0].vars.a-b",
            ),
            (
                "url: 'https://x.example.com', template: t.hbs, notify_recovery: true",
                "recovery_template: is required",
            ),
            (
                "url: 'https://x.example.com', template: t.hbs, group_window: 1m",
                "digest_template: is required",
            ),
            (
                "url: 'https://x.example.com', template: t.hbs, headers: {X-A: \"a\\nb\"}",
                "headers.X-A",
            ),
            (
                "url: 'https://x.example.com', template: 'stock:pagerduty'",
                "vars.routing_key: is required",
            ),
            (
                "url: 'https://x.example.com', template: 'stock:pagerduty', vars: {routing_key: k, severity: high}",
                "vars.severity: `high`",
            ),
        ] {
            let error = webhook(yaml).expect_err(yaml);
            assert!(error.contains(expect), "{yaml}: {error}");
        }
        let error = webhook("url: 'https://x.example.com/r0ut1ng', template: t.hbs, bogus: 1")
            .expect_err("unknown key");
        assert!(!error.contains("r0ut1ng"), "{error}");
    }
}
