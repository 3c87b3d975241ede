//! Rendering: the Handlebars registry built once at start-up from the configured (or stock)
//! templates, and the per-destination rendering with the escaping each destination needs.
//!
//! Two registries: `html` escapes `{{x}}` for HTML (email bodies); `raw` does not escape, and
//! gets values already made safe for where they go (JSON strings for Slack and Teams, plain text
//! for subjects and text bodies).

pub mod context;
pub mod escape;
pub mod limits;
pub mod notice;
pub mod sample;
mod stock;

use std::path::Path;

use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::config::{
    Config, DestinationConfig, DestinationKind, MessageFormat, Problem, SlackConfig, TeamsConfig,
};
use context::AlertInput;
use escape::{json_string_body, map_strings, single_line, slack_entities};

/// What one destination sends for one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Email {
        subject: String,
        html: String,
        text: String,
    },
    Slack(Value),
    Teams(Value),
}

/// Why an alert could not be rendered for a destination.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}: {message}")]
    Template { template: String, message: String },
    #[error(
        "template {template} did not produce valid JSON: {message} (line {line}, column {column})"
    )]
    InvalidJson {
        template: String,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("template {template}: {source}")]
    Limits {
        template: String,
        #[source]
        source: limits::LimitError,
    },
    #[error("no destination named `{0}`")]
    UnknownDestination(String),
}

/// Context keys whose values are URLs: JSON-escaped but never given Slack entities, so links work.
fn is_url_key(key: &str) -> bool {
    matches!(
        key,
        "url"
            | "appUrl"
            | "tenantUrl"
            | "appThumbnail"
            | "appOwnerPicture"
            | "qlikSenseQMC"
            | "qlikSenseHub"
    )
}

pub struct Renderer {
    html: Handlebars<'static>,
    raw: Handlebars<'static>,
    destinations: Vec<DestinationConfig>,
    /// Where each destination's templates came from, for error messages: by kind, then index.
    origins: [Vec<String>; 3],
}

/// What a message is: one alert, a storm digest, or a recovery notice. Each destination has a
/// template set for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Alert,
    Digest,
    Recovery,
}

impl Kind {
    /// Prefix of this kind's template names in the registries.
    fn prefix(self) -> &'static str {
        match self {
            Kind::Alert => "",
            Kind::Digest => "digest.",
            Kind::Recovery => "recovery.",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The templates of one kind for one destination: configured (or stock) sources, and the
/// config keys they come from.
struct TemplateSet {
    subject: Option<(String, &'static str)>,
    body: (Source, &'static str),
    text: Option<(Source, &'static str)>,
}

impl Renderer {
    /// Compiles every destination's templates; a broken one is a problem naming the config key,
    /// the file and the line.
    pub fn new(config: &Config) -> Result<Renderer, Vec<Problem>> {
        let mut html = Handlebars::new();
        let mut raw = Handlebars::new();
        raw.register_escape_fn(handlebars::no_escape);
        let mut problems = Vec::new();
        let mut origins: [Vec<String>; 3] = Default::default();
        for (i, d) in config.destinations.iter().enumerate() {
            for kind in [Kind::Alert, Kind::Digest, Kind::Recovery] {
                // Templates a destination never uses are not compiled (nor checked).
                if !uses(d, kind) {
                    origins[kind.index()].push(String::new());
                    continue;
                }
                let names = |part: &str| format!("{i}.{}{part}", kind.prefix());
                let key = |k: &str| format!("destinations[{i}].{k}");
                let mut add = |registry: &mut Handlebars<'static>,
                               name: String,
                               source: Source,
                               config_key: String|
                 -> String {
                    match source.load() {
                        Ok((origin, text)) => {
                            if let Err(e) = registry.register_template_string(&name, text) {
                                let place = match e.pos() {
                                    Some((l, c)) => format!("{origin}:{l}:{c}"),
                                    None => origin.clone(),
                                };
                                problems.push(Problem {
                                    path: config_key,
                                    message: format!("{place}: {}", e.reason()),
                                });
                            }
                            origin
                        }
                        Err(message) => {
                            problems.push(Problem {
                                path: config_key,
                                message,
                            });
                            String::new()
                        }
                    }
                };
                let set = template_set(d, kind);
                let body_registry = match d.kind {
                    DestinationKind::Email(_) => &mut html,
                    _ => &mut raw,
                };
                let body_part = match d.kind {
                    DestinationKind::Email(_) => "html",
                    _ => "formatted",
                };
                let origin = add(body_registry, names(body_part), set.body.0, key(set.body.1));
                if let Some((subject, k)) = set.subject {
                    add(&mut raw, names("subject"), Source::Inline(subject), key(k));
                }
                if let Some((text, k)) = set.text {
                    add(&mut raw, names("text"), text, key(k));
                }
                if kind == Kind::Alert {
                    if let DestinationKind::Slack(SlackConfig { basic_text, .. })
                    | DestinationKind::Teams(TeamsConfig { basic_text, .. }) = &d.kind
                    {
                        add(
                            &mut raw,
                            names("basic"),
                            Source::Inline(basic_text.clone()),
                            key("basic_text"),
                        );
                    }
                }
                origins[kind.index()].push(origin);
            }
        }
        // The fallbacks: stock templates, compiled whatever the config says.
        for (name, (_, text), registry) in [
            ("fallback.html", stock::EMAIL_HTML, &mut html),
            ("fallback.text", stock::EMAIL_TEXT, &mut raw),
        ] {
            let _ = registry.register_template_string(name, text);
        }
        for (kind, stock) in [
            (Kind::Digest, stock::DIGEST),
            (Kind::Recovery, stock::RECOVERY),
        ] {
            let p = kind.prefix();
            let _ = html.register_template_string(&format!("stock.{p}html"), stock.email_html.1);
            let _ = raw.register_template_string(&format!("stock.{p}text"), stock.email_text.1);
            let _ = raw.register_template_string(&format!("stock.{p}subject"), stock.subject);
            let _ = raw.register_template_string(&format!("stock.{p}slack"), stock.slack.1);
            let _ = raw.register_template_string(&format!("stock.{p}teams"), stock.teams.1);
        }
        if problems.is_empty() {
            Ok(Renderer {
                html,
                raw,
                destinations: config.destinations.clone(),
                origins,
            })
        } else {
            Err(problems)
        }
    }

    pub fn destinations(&self) -> &[DestinationConfig] {
        &self.destinations
    }

    /// Renders the alert for the destination named `name`.
    pub fn render_for(&self, name: &str, input: &AlertInput) -> Result<Rendered, RenderError> {
        let i = self
            .destinations
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| RenderError::UnknownDestination(name.to_owned()))?;
        self.render(i, input)
    }

    /// Renders the alert for destination number `i`.
    pub fn render(&self, i: usize, input: &AlertInput) -> Result<Rendered, RenderError> {
        let d = &self.destinations[i];
        let ctx = context::build(input, &d.name, d.script_log);
        self.render_kind(i, Kind::Alert, &ctx)
            .map(|(rendered, _)| rendered)
    }

    /// Renders a template context of `kind` for destination `i` with its configured templates.
    /// Also returns how many texts had to be cut to fit the service's limits.
    pub fn render_kind(
        &self,
        i: usize,
        kind: Kind,
        ctx: &Value,
    ) -> Result<(Rendered, usize), RenderError> {
        let p = kind.prefix();
        let names = Names {
            subject: format!("{i}.{p}subject"),
            html: format!("{i}.{p}html"),
            text: format!("{i}.{p}text"),
            json: format!("{i}.{p}formatted"),
            basic: (kind == Kind::Alert).then(|| format!("{i}.basic")),
            origin: &self.origins[kind.index()][i],
        };
        self.render_names(i, &names, ctx)
    }

    /// The same with the stock templates of `kind` (digest or recovery): what a destination
    /// sends when its own template fails.
    pub fn render_stock(
        &self,
        i: usize,
        kind: Kind,
        ctx: &Value,
    ) -> Result<(Rendered, usize), RenderError> {
        let p = kind.prefix();
        let json = match self.destinations[i].kind {
            DestinationKind::Teams(_) => format!("stock.{p}teams"),
            _ => format!("stock.{p}slack"),
        };
        let names = Names {
            subject: format!("stock.{p}subject"),
            html: format!("stock.{p}html"),
            text: format!("stock.{p}text"),
            json,
            basic: None,
            origin: "stock template",
        };
        self.render_names(i, &names, ctx)
    }

    fn render_names(
        &self,
        i: usize,
        names: &Names,
        ctx: &Value,
    ) -> Result<(Rendered, usize), RenderError> {
        let d = &self.destinations[i];
        let limit_error = |source| RenderError::Limits {
            template: names.origin.to_owned(),
            source,
        };
        match &d.kind {
            DestinationKind::Email(_) => Ok((
                Rendered::Email {
                    subject: single_line(self.run(&self.raw, &names.subject, ctx)?.trim()),
                    html: self.run(&self.html, &names.html, ctx)?,
                    text: self.run(&self.raw, &names.text, ctx)?,
                },
                0,
            )),
            DestinationKind::Slack(s) => {
                let mut payload = match (&names.basic, s.format) {
                    (Some(basic), MessageFormat::Basic) => {
                        let text = self.run(
                            &self.raw,
                            basic,
                            &with_strings(ctx, &slack_entities, &|t| t.to_owned()),
                        )?;
                        basic_slack(&text, ctx)
                    }
                    _ => self.render_json(
                        names,
                        ctx,
                        &|t| json_string_body(&slack_entities(t)),
                        &|t| json_string_body(t),
                    )?,
                };
                if let Some(root) = payload.as_object_mut() {
                    for (key, value) in [
                        ("channel", &s.channel),
                        ("username", &s.username),
                        ("icon_emoji", &s.icon_emoji),
                    ] {
                        if let Some(value) = value {
                            root.insert(key.to_owned(), json!(value));
                        }
                    }
                }
                let cuts = limits::fit_slack(&mut payload).map_err(limit_error)?;
                Ok((Rendered::Slack(payload), cuts))
            }
            DestinationKind::Teams(t) => {
                let mut payload = match (&names.basic, t.format) {
                    (Some(basic), MessageFormat::Basic) => {
                        let text = self.run(&self.raw, basic, ctx)?;
                        basic_teams(&text, ctx)
                    }
                    _ => self.render_json(names, ctx, &|t| json_string_body(t), &|t| {
                        json_string_body(t)
                    })?,
                };
                let cuts = limits::fit_teams(&mut payload).map_err(limit_error)?;
                Ok((Rendered::Teams(payload), cuts))
            }
        }
    }

    /// What destination `i` sends when its own template fails for an alert: the stock email
    /// templates, or the built-in basic Slack/Teams message (no template involved). An alert is
    /// never lost to a template bug.
    pub fn render_fallback(&self, i: usize, input: &AlertInput) -> Rendered {
        let d = &self.destinations[i];
        let ctx = context::build(input, &d.name, d.script_log);
        let app = ctx["appName"]
            .as_str()
            .or(ctx["appId"].as_str())
            .unwrap_or_default()
            .to_owned();
        let line = format!("Qlik Cloud reload failed: \"{app}\"");
        match &d.kind {
            DestinationKind::Email(_) => Rendered::Email {
                subject: single_line(&format!("❌ {line}")),
                html: self
                    .html
                    .render("fallback.html", &ctx)
                    .unwrap_or_else(|_| format!("<p>{}</p>", handlebars::html_escape(&line))),
                text: self
                    .raw
                    .render("fallback.text", &ctx)
                    .unwrap_or_else(|_| line.clone()),
            },
            _ => self.one_line(i, &line, &ctx),
        }
    }

    /// A message of one line (and the context's buttons), no template involved: the last resort.
    pub fn one_line(&self, i: usize, line: &str, ctx: &Value) -> Rendered {
        match &self.destinations[i].kind {
            DestinationKind::Email(_) => Rendered::Email {
                subject: single_line(line),
                html: format!("<p>{}</p>", handlebars::html_escape(line)),
                text: line.to_owned(),
            },
            DestinationKind::Slack(_) => {
                let mut payload = basic_slack(
                    &slack_entities(line),
                    &with_strings(ctx, &|t| t.to_owned(), &|t| t.to_owned()),
                );
                let _ = limits::fit_slack(&mut payload);
                Rendered::Slack(payload)
            }
            DestinationKind::Teams(_) => {
                let mut payload = basic_teams(line, ctx);
                let _ = limits::fit_teams(&mut payload);
                Rendered::Teams(payload)
            }
        }
    }

    fn run(
        &self,
        registry: &Handlebars<'static>,
        name: &str,
        ctx: &Value,
    ) -> Result<String, RenderError> {
        registry
            .render(name, ctx)
            .map_err(|e| RenderError::Template {
                template: name.to_owned(),
                message: e.to_string(),
            })
    }

    /// A formatted JSON template: values escaped first (`text` for text, `url` for URL keys),
    /// then rendered, then parsed.
    fn render_json(
        &self,
        names: &Names,
        ctx: &Value,
        text: &dyn Fn(&str) -> String,
        url: &dyn Fn(&str) -> String,
    ) -> Result<Value, RenderError> {
        let escaped = with_strings(ctx, text, url);
        let rendered = self.run(&self.raw, &names.json, &escaped)?;
        serde_json::from_str(&rendered).map_err(|e| RenderError::InvalidJson {
            template: names.origin.to_owned(),
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        })
    }
}

/// The registry names of one template set.
struct Names<'a> {
    subject: String,
    html: String,
    text: String,
    json: String,
    /// The basic-format line (alerts only).
    basic: Option<String>,
    origin: &'a str,
}

/// Whether destination `d` ever sends messages of `kind`.
pub fn uses(d: &DestinationConfig, kind: Kind) -> bool {
    match kind {
        Kind::Alert => true,
        Kind::Digest => d.grouping.is_some(),
        Kind::Recovery => d.notify_recovery,
    }
}

/// Destination `d`'s template sources for `kind`, stock where the config names none.
fn template_set(d: &DestinationConfig, kind: Kind) -> TemplateSet {
    let stock = match kind {
        Kind::Alert => None,
        Kind::Digest => Some(stock::DIGEST),
        Kind::Recovery => Some(stock::RECOVERY),
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
            stock.map_or(stock::SLACK, |s| s.slack),
            kind,
        ),
        (DestinationKind::Teams(t), stock) => chat_set(
            &t.template,
            &t.digest_template,
            &t.recovery_template,
            stock.map_or(stock::TEAMS, |s| s.teams),
            kind,
        ),
    }
}

fn chat_set(
    alert: &Option<std::path::PathBuf>,
    digest: &Option<std::path::PathBuf>,
    recovery: &Option<std::path::PathBuf>,
    stock: (&'static str, &'static str),
    kind: Kind,
) -> TemplateSet {
    let (path, key) = match kind {
        Kind::Alert => (alert, "template"),
        Kind::Digest => (digest, "digest_template"),
        Kind::Recovery => (recovery, "recovery_template"),
    };
    TemplateSet {
        subject: None,
        body: (Source::pick(path, stock), key),
        text: None,
    }
}

/// A copy of the context with every string passed through `text`, or `url` for URL keys.
fn with_strings(ctx: &Value, text: &dyn Fn(&str) -> String, url: &dyn Fn(&str) -> String) -> Value {
    let mut out = ctx.clone();
    map_strings(&mut out, &is_url_key, text);
    // URL keys were skipped above; give them their own treatment.
    fn urls(value: &mut Value, url: &dyn Fn(&str) -> String) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if is_url_key(key) {
                        if let Value::String(s) = v {
                            *s = url(s);
                        }
                    } else {
                        urls(v, url);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| urls(v, url)),
            _ => {}
        }
    }
    urls(&mut out, url);
    out
}

/// Buttons of the basic format: the context's `buttons` (app, hub, console, configured links).
fn buttons(ctx: &Value) -> Vec<(String, String)> {
    ctx["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            Some((
                b["text"].as_str()?.chars().take(75).collect(),
                b["url"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn basic_slack(text: &str, ctx: &Value) -> Value {
    let elements: Vec<Value> = buttons(ctx)
        .into_iter()
        .take(25)
        .map(|(label, url)| json!({"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}))
        .collect();
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})];
    if !elements.is_empty() {
        blocks.push(json!({"type": "actions", "elements": elements}));
    }
    json!({"text": text, "blocks": blocks})
}

fn basic_teams(text: &str, ctx: &Value) -> Value {
    let actions: Vec<Value> = buttons(ctx)
        .into_iter()
        .map(|(title, url)| json!({"type": "Action.OpenUrl", "title": title, "url": url}))
        .collect();
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": null,
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{"type": "TextBlock", "text": text, "wrap": true, "weight": "Bolder"}],
            "actions": actions
        }
    }]})
}

/// Where a template comes from: a file, the stock template, or a config value.
enum Source {
    File(std::path::PathBuf),
    Stock(&'static str, &'static str),
    Inline(String),
}

impl Source {
    fn pick(path: &Option<std::path::PathBuf>, stock: (&'static str, &'static str)) -> Source {
        match path {
            Some(p) => Source::File(p.clone()),
            None => Source::Stock(stock.0, stock.1),
        }
    }

    /// The template text and a name for it in messages.
    fn load(self) -> Result<(String, String), String> {
        match self {
            Source::File(path) => read(&path).map(|text| (path.display().to_string(), text)),
            Source::Stock(name, text) => Ok((format!("stock {name}"), text.to_owned())),
            Source::Inline(text) => Ok(("config value".to_owned(), text)),
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read template {}: {e}", path.display()))
}
