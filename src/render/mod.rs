//! Rendering: the Handlebars registry built once at start-up from the configured (or stock)
//! templates, and the per-destination rendering with the escaping each destination needs.
//!
//! Two registries: `html` escapes `{{x}}` for HTML (email bodies); `raw` does not escape, and
//! gets values already made safe for where they go (JSON strings for Slack and Teams, plain text
//! for subjects and text bodies).

pub mod context;
pub mod escape;
pub mod limits;
pub mod sample;
mod stock;

use std::path::Path;

use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::config::{Config, DestinationConfig, DestinationKind, MessageFormat, Problem};
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
    /// Where each destination's templates came from, for error messages.
    origins: Vec<String>,
}

impl Renderer {
    /// Compiles every destination's templates; a broken one is a problem naming the config key,
    /// the file and the line.
    pub fn new(config: &Config) -> Result<Renderer, Vec<Problem>> {
        let mut html = Handlebars::new();
        let mut raw = Handlebars::new();
        raw.register_escape_fn(handlebars::no_escape);
        let mut problems = Vec::new();
        let mut origins = Vec::new();
        for (i, d) in config.destinations.iter().enumerate() {
            let key = |k: &str| format!("destinations[{i}].{k}");
            let mut add = |registry: &mut Handlebars<'static>,
                           name: String,
                           source: Source,
                           config_key: String| {
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
            let origin = match &d.kind {
                DestinationKind::Email(e) => {
                    add(
                        &mut raw,
                        format!("{i}.subject"),
                        Source::Inline(e.subject.clone()),
                        key("subject"),
                    );
                    let html_origin = add(
                        &mut html,
                        format!("{i}.html"),
                        Source::pick(&e.html_template, stock::EMAIL_HTML),
                        key("html_template"),
                    );
                    add(
                        &mut raw,
                        format!("{i}.text"),
                        Source::pick(&e.text_template, stock::EMAIL_TEXT),
                        key("text_template"),
                    );
                    html_origin
                }
                DestinationKind::Slack(s) => {
                    add(
                        &mut raw,
                        format!("{i}.basic"),
                        Source::Inline(s.basic_text.clone()),
                        key("basic_text"),
                    );
                    add(
                        &mut raw,
                        format!("{i}.formatted"),
                        Source::pick(&s.template, stock::SLACK),
                        key("template"),
                    )
                }
                DestinationKind::Teams(t) => {
                    add(
                        &mut raw,
                        format!("{i}.basic"),
                        Source::Inline(t.basic_text.clone()),
                        key("basic_text"),
                    );
                    add(
                        &mut raw,
                        format!("{i}.formatted"),
                        Source::pick(&t.template, stock::TEAMS),
                        key("template"),
                    )
                }
            };
            origins.push(origin);
        }
        // The fallbacks of `render_fallback`: stock templates, compiled whatever the config says.
        let _ = html.register_template_string("fallback.html", stock::EMAIL_HTML.1);
        let _ = raw.register_template_string("fallback.text", stock::EMAIL_TEXT.1);
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
        match &d.kind {
            DestinationKind::Email(_) => Ok(Rendered::Email {
                subject: single_line(self.run(&self.raw, &format!("{i}.subject"), &ctx)?.trim()),
                html: self.run(&self.html, &format!("{i}.html"), &ctx)?,
                text: self.run(&self.raw, &format!("{i}.text"), &ctx)?,
            }),
            DestinationKind::Slack(s) => {
                let mut payload = match s.format {
                    MessageFormat::Formatted => self.render_json(
                        i,
                        &ctx,
                        &|t| json_string_body(&slack_entities(t)),
                        &|t| json_string_body(t),
                    )?,
                    MessageFormat::Basic => {
                        let text = self.run(
                            &self.raw,
                            &format!("{i}.basic"),
                            &with_strings(&ctx, &slack_entities, &|t| t.to_owned()),
                        )?;
                        basic_slack(&text, &ctx)
                    }
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
                limits::fit_slack(&mut payload).map_err(|source| self.limit_error(i, source))?;
                Ok(Rendered::Slack(payload))
            }
            DestinationKind::Teams(t) => {
                let mut payload = match t.format {
                    MessageFormat::Formatted => {
                        self.render_json(i, &ctx, &|t| json_string_body(t), &|t| {
                            json_string_body(t)
                        })?
                    }
                    MessageFormat::Basic => {
                        let text = self.run(&self.raw, &format!("{i}.basic"), &ctx)?;
                        basic_teams(&text, &ctx)
                    }
                };
                limits::fit_teams(&mut payload).map_err(|source| self.limit_error(i, source))?;
                Ok(Rendered::Teams(payload))
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
            DestinationKind::Slack(_) => {
                let mut payload = basic_slack(
                    &slack_entities(&line),
                    &with_strings(&ctx, &|t| t.to_owned(), &|t| t.to_owned()),
                );
                let _ = limits::fit_slack(&mut payload);
                Rendered::Slack(payload)
            }
            DestinationKind::Teams(_) => {
                let mut payload = basic_teams(&line, &ctx);
                let _ = limits::fit_teams(&mut payload);
                Rendered::Teams(payload)
            }
        }
    }

    fn limit_error(&self, i: usize, source: limits::LimitError) -> RenderError {
        RenderError::Limits {
            template: self.origins[i].clone(),
            source,
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
        i: usize,
        ctx: &Value,
        text: &dyn Fn(&str) -> String,
        url: &dyn Fn(&str) -> String,
    ) -> Result<Value, RenderError> {
        let escaped = with_strings(ctx, text, url);
        let rendered = self.run(&self.raw, &format!("{i}.formatted"), &escaped)?;
        serde_json::from_str(&rendered).map_err(|e| RenderError::InvalidJson {
            template: self.origins[i].clone(),
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        })
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
