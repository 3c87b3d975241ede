//! Rendering: one alert, digest or recovery notice for one destination, with the escaping that
//! destination needs, held to the service's limits. The templates are compiled once at start-up
//! (`templates.rs`); chat payloads outside templates are built in `chat.rs`, the last-resort
//! messages in `fallback.rs`.

mod as_is;
mod chat;
pub mod context;
mod direct;
pub mod escape;
mod fallback;
mod helpers;
pub mod limits;
pub mod notice;
mod reads;
mod rendered;
pub mod sample;
mod sources;
mod stock;
mod templates;
pub mod vars;
mod webhook;

use serde_json::{json, Value};

use crate::config::{Config, DestinationConfig, DestinationKind, MessageFormat, Problem};
use crate::qlik::event::EventKind;
use chat::{basic_slack, basic_teams, with_strings, Escapes};
use context::{AlertInput, Contexts};
use escape::{
    json_string_body, single_line, slack_entities, slack_fences, slack_json_text, teams_json_text,
    teams_markdown, then, unchanged,
};
use reads::Reads;
use rendered::chat_text;
pub use rendered::{ChatText, Rendered};
use templates::{Data, Part, TemplateId, Templates};

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

pub struct Renderer {
    templates: Templates,
    destinations: Vec<DestinationConfig>,
}

/// What a message is: one alert, a storm digest, or a recovery notice. Each destination has a
/// template set for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Alert,
    Digest,
    Recovery,
    /// An alert for a failed Qlik Automate run.
    Automation,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Digest => "digest",
            Kind::Recovery => "recovery",
            Kind::Automation => "automation",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Renderer {
    /// Compiles every destination's templates; a broken one is a problem naming the config key,
    /// the file and the line.
    pub fn new(config: &Config) -> Result<Renderer, Vec<Problem>> {
        Ok(Renderer {
            templates: Templates::compile(config)?,
            destinations: config.destinations.clone(),
        })
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

    /// Renders the alert for destination number `i` (chat messages as trees).
    pub fn render(&self, i: usize, input: &AlertInput) -> Result<Rendered, RenderError> {
        self.render_shared(i, &mut Contexts::new(input))
            .map(Rendered::tree)
    }

    /// The same from an alert's shared contexts, a chat message as its text when it keeps the
    /// limits as rendered: what a job's destinations render from.
    pub fn render_shared(
        &self,
        i: usize,
        contexts: &mut Contexts,
    ) -> Result<Rendered, RenderError> {
        let d = &self.destinations[i];
        let kind = alert_kind(contexts.input());
        let ctx = contexts.for_destination(&d.name, d.script_log);
        self.render_names(i, &self.names(i, kind), ctx, AsIs::Allowed)
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
        self.render_names(i, &self.names(i, kind), ctx, AsIs::Never)
    }

    /// Destination `i`'s own templates of `kind`.
    fn names(&self, i: usize, kind: Kind) -> Names<'_> {
        let id = |part| TemplateId::Destination {
            index: i,
            kind,
            part,
        };
        Names {
            subject: id(Part::Subject),
            html: id(Part::Html),
            text: id(Part::Text),
            json: id(Part::Json),
            basic: (kind == Kind::Alert).then(|| id(Part::Basic)),
            origin: self.templates.origin(i, kind),
        }
    }

    /// The same with the stock templates of `kind` (digest or recovery): what a destination
    /// sends when its own template fails.
    pub fn render_stock(
        &self,
        i: usize,
        kind: Kind,
        ctx: &Value,
    ) -> Result<(Rendered, usize), RenderError> {
        let id = |part| TemplateId::Stock { kind, part };
        let json = match self.destinations[i].kind {
            DestinationKind::Teams(_) => Part::Teams,
            DestinationKind::Webhook(_) => {
                return Err(RenderError::Template {
                    template: "stock template".to_owned(),
                    message: "no stock template fits a webhook".to_owned(),
                })
            }
            _ => Part::Slack,
        };
        let names = Names {
            subject: id(Part::Subject),
            html: id(Part::Html),
            text: id(Part::Text),
            json: id(json),
            basic: None,
            origin: "stock template",
        };
        self.render_names(i, &names, ctx, AsIs::Never)
    }

    fn render_names(
        &self,
        i: usize,
        names: &Names,
        ctx: &Value,
        as_is: AsIs,
    ) -> Result<(Rendered, usize), RenderError> {
        let d = &self.destinations[i];
        let limit_error = |source| RenderError::Limits {
            template: names.origin.to_owned(),
            source,
        };
        match &d.kind {
            DestinationKind::Email(_) => {
                // What Handlebars renders shares one copy of the context, of what the three
                // templates read, made when the first of them needs it.
                let copy = std::cell::OnceCell::new();
                let render = |id| match self.templates.render_direct(id, ctx, None) {
                    Some(text) => Ok(text),
                    None => {
                        let data = copy.get_or_init(|| {
                            let reads = [names.subject, names.html, names.text]
                                .map(|id| self.templates.reads(id))
                                .iter()
                                .fold(Reads::Keys(Default::default()), |all, r| all.or(r));
                            Data::from(reads.copy(ctx))
                        });
                        self.templates.render_data(id, data)
                    }
                };
                Ok((
                    Rendered::Email {
                        subject: single_line(render(names.subject)?.trim()),
                        html: render(names.html)?,
                        text: render(names.text)?,
                    },
                    0,
                ))
            }
            DestinationKind::Slack(s) => {
                let mut payload = match (&names.basic, s.format) {
                    (Some(basic), MessageFormat::Basic) => {
                        let text = self.render_escaped(
                            *basic,
                            ctx,
                            &Escapes {
                                text: &|t| then(slack_fences(t), slack_entities),
                                url: &unchanged,
                                label: &slack_entities,
                            },
                        )?;
                        basic_slack(&text, ctx)
                    }
                    _ => {
                        let text = self.render_escaped(
                            names.json,
                            ctx,
                            &Escapes {
                                text: &slack_json_text,
                                url: &json_string_body,
                                label: &|t| then(slack_entities(t), json_string_body),
                            },
                        )?;
                        // Keys the config adds make a change: the full path adds them.
                        let keys = [&s.channel, &s.username, &s.icon_emoji];
                        let as_is = match keys.iter().all(|k| k.is_none()) {
                            true => as_is,
                            false => AsIs::Never,
                        };
                        match kept_or_parsed(names, text, as_is, as_is::slack)? {
                            Ok(body) => return Ok((Rendered::ChatText { teams: false, body }, 0)),
                            Err(tree) => tree,
                        }
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
                let cuts = limits::fit_slack(&mut payload).map_err(limit_error)?;
                Ok((Rendered::Slack(payload), cuts))
            }
            DestinationKind::Teams(t) => {
                let mut payload = match (&names.basic, t.format) {
                    (Some(basic), MessageFormat::Basic) => {
                        let text = self.render_escaped(
                            *basic,
                            ctx,
                            &Escapes {
                                text: &teams_markdown,
                                url: &unchanged,
                                label: &unchanged,
                            },
                        )?;
                        basic_teams(&text, ctx)
                    }
                    _ => {
                        let text = self.render_escaped(
                            names.json,
                            ctx,
                            &Escapes {
                                text: &teams_json_text,
                                url: &json_string_body,
                                // Button titles are plain text in Adaptive Cards.
                                label: &json_string_body,
                            },
                        )?;
                        match kept_or_parsed(names, text, as_is, as_is::teams)? {
                            Ok(body) => return Ok((Rendered::ChatText { teams: true, body }, 0)),
                            Err(tree) => tree,
                        }
                    }
                };
                let cuts = limits::fit_teams(&mut payload).map_err(limit_error)?;
                Ok((Rendered::Teams(payload), cuts))
            }
            DestinationKind::Webhook(w) => Ok((
                Rendered::Webhook(webhook::render(
                    &self.templates,
                    names.json,
                    names.origin,
                    ctx,
                    w,
                )?),
                0,
            )),
        }
    }

    /// Template `id` rendered with every string of `ctx` escaped as its key calls for: by the
    /// direct renderer when it can, else by Handlebars from an escaped copy.
    fn render_escaped(
        &self,
        id: TemplateId,
        ctx: &Value,
        escapes: &Escapes,
    ) -> Result<String, RenderError> {
        match self.templates.render_direct(id, ctx, Some(escapes)) {
            Some(text) => Ok(text),
            None => {
                let escaped = with_strings(ctx, self.templates.reads(id), escapes);
                self.templates.render_data(id, &Data::from(escaped))
            }
        }
    }
}

/// Whether a chat message may be kept as its rendered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AsIs {
    /// When it keeps the limits as it is (alerts, on the routing path).
    Allowed,
    /// Always a tree (digests, notices, fallbacks: rare, and their callers read the tree).
    Never,
}

/// A rendered chat template kept as its text when `as_is` allows it and `keeps_limits` accepts
/// it, else parsed into a tree for the full path.
fn kept_or_parsed(
    names: &Names,
    text: String,
    as_is: AsIs,
    keeps_limits: fn(&str) -> bool,
) -> Result<Result<ChatText, Value>, RenderError> {
    let text = match as_is {
        AsIs::Allowed => match chat_text(text, keeps_limits) {
            Ok(kept) => return Ok(Ok(kept)),
            Err(text) => text,
        },
        AsIs::Never => text,
    };
    parse_json(names, &text).map(Err)
}

/// A rendered JSON template parsed, or the error naming the template, line and column.
fn parse_json(names: &Names, text: &str) -> Result<Value, RenderError> {
    serde_json::from_str(text).map_err(|e| RenderError::InvalidJson {
        template: names.origin.to_owned(),
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })
}

/// The templates of one message.
struct Names<'a> {
    subject: TemplateId,
    html: TemplateId,
    text: TemplateId,
    json: TemplateId,
    /// The basic-format line (alerts only).
    basic: Option<TemplateId>,
    origin: &'a str,
}

/// The template kind of an alert: a reload's, or an automation run's.
fn alert_kind(input: &AlertInput) -> Kind {
    match input.event.kind {
        EventKind::AutomationRun => Kind::Automation,
        EventKind::EngineAttempt | EventKind::FinalOutcome => Kind::Alert,
    }
}

/// Whether destination `d` ever sends messages of `kind`.
pub fn uses(d: &DestinationConfig, kind: Kind) -> bool {
    match kind {
        Kind::Alert | Kind::Automation => true,
        Kind::Digest => d.grouping.is_some(),
        Kind::Recovery => d.notify_recovery,
    }
}
