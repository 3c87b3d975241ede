//! The template registry: every destination's templates (configured, or stock where the config
//! names none) and the stock fallbacks, compiled once at start-up and named by a typed
//! [`TemplateId`], never by a string built at the call site.
//!
//! Two Handlebars registries: `html` escapes `{{x}}` for HTML (email bodies); `raw` does not
//! escape, and gets values already made safe for where they go (JSON strings for Slack and
//! Teams, plain text for subjects and text bodies).

use std::collections::HashMap;
use std::sync::OnceLock;

use handlebars::Handlebars;
use serde_json::Value;

use super::chat::Escapes;
use super::direct::Direct;
use super::reads::Reads;
use super::sources::{template_set, Source};
use super::{stock, uses, Kind, RenderError};
use crate::config::{Config, DestinationKind, Problem, SlackConfig, TeamsConfig};

/// One part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Part {
    Subject,
    /// The HTML body of an email.
    Html,
    /// The text body of an email.
    Text,
    /// The JSON payload of a chat message (the destination's own kind).
    Json,
    /// The one-line text of a chat message in the basic format.
    Basic,
    /// The stock Slack payload.
    Slack,
    /// The stock Teams payload.
    Teams,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Html => "html",
            Part::Text => "text",
            Part::Json => "json",
            Part::Basic => "basic",
            Part::Slack => "slack",
            Part::Teams => "teams",
        }
    }
}

/// A template in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum TemplateId {
    /// Destination `index`'s template of `kind`.
    Destination {
        index: usize,
        kind: Kind,
        part: Part,
    },
    /// The stock digest or recovery template: what a destination sends when its own fails.
    Stock { kind: Kind, part: Part },
    /// The stock email alert template: the fallback of an email alert.
    Fallback(Part),
}

impl TemplateId {
    /// The one place a template's registry name is spelled.
    fn name(self) -> String {
        match self {
            TemplateId::Destination { index, kind, part } => {
                format!("{index}.{}.{}", kind.name(), part.name())
            }
            TemplateId::Stock { kind, part } => format!("stock.{}.{}", kind.name(), part.name()),
            TemplateId::Fallback(part) => format!("fallback.{}", part.name()),
        }
    }

    fn part(self) -> Part {
        match self {
            TemplateId::Destination { part, .. }
            | TemplateId::Stock { part, .. }
            | TemplateId::Fallback(part) => part,
        }
    }
}

/// A template context as Handlebars holds it: `Data::from` takes a value as it is, with no copy
/// (Handlebars' `render` copies the value it is lent into one of these each time).
pub(super) type Data = handlebars::Context;

pub(super) struct Templates {
    html: Handlebars<'static>,
    raw: Handlebars<'static>,
    /// Where each destination's templates came from, for error messages: by kind, then index.
    origins: [Vec<String>; 4],
    /// What of the context each template can read.
    reads: HashMap<TemplateId, Reads>,
    /// Each template compiled for the direct renderer (`direct/`; `None`: Handlebars renders
    /// it) when it is first rendered, so none of that code runs at start-up.
    direct: HashMap<TemplateId, OnceLock<Option<Direct>>>,
}

impl Templates {
    /// Compiles every destination's templates; a broken one is a problem naming the config key,
    /// the file and the line.
    pub(super) fn compile(config: &Config) -> Result<Templates, Vec<Problem>> {
        let mut templates = Templates {
            html: Handlebars::new(),
            raw: Handlebars::new(),
            origins: Default::default(),
            reads: HashMap::new(),
            direct: HashMap::new(),
        };
        templates.raw.register_escape_fn(handlebars::no_escape);
        templates.html.register_escape_fn(super::escape::html);
        for registry in [&mut templates.html, &mut templates.raw] {
            super::helpers::register(registry);
        }
        let mut problems = Vec::new();
        for (index, d) in config.destinations.iter().enumerate() {
            for kind in [Kind::Alert, Kind::Digest, Kind::Recovery, Kind::Automation] {
                // Templates a destination never uses are not compiled (nor checked).
                if !uses(d, kind) {
                    templates.origins[kind.index()].push(String::new());
                    continue;
                }
                let id = |part| TemplateId::Destination { index, kind, part };
                let key = |k: &str| format!("destinations[{index}].{k}");
                let set = template_set(d, kind);
                let body = match d.kind {
                    DestinationKind::Email(_) => Part::Html,
                    _ => Part::Json,
                };
                let origin = templates.add(id(body), set.body.0, key(set.body.1), &mut problems);
                if let Some((subject, k)) = set.subject {
                    templates.add(
                        id(Part::Subject),
                        Source::Inline(subject),
                        key(k),
                        &mut problems,
                    );
                }
                if let Some((text, k)) = set.text {
                    templates.add(id(Part::Text), text, key(k), &mut problems);
                }
                if kind == Kind::Alert {
                    if let DestinationKind::Slack(SlackConfig { basic_text, .. })
                    | DestinationKind::Teams(TeamsConfig { basic_text, .. }) = &d.kind
                    {
                        let basic = Source::Inline(basic_text.clone());
                        templates.add(id(Part::Basic), basic, key("basic_text"), &mut problems);
                    }
                }
                templates.origins[kind.index()].push(origin);
            }
        }
        // The fallbacks: stock templates, compiled whatever the config says (they are tested).
        let mut stock_problems = Vec::new();
        for (id, (name, text)) in [
            (TemplateId::Fallback(Part::Html), stock::EMAIL_HTML),
            (TemplateId::Fallback(Part::Text), stock::EMAIL_TEXT),
        ] {
            templates.add(
                id,
                Source::Stock(name, text),
                String::new(),
                &mut stock_problems,
            );
        }
        for (kind, stock) in [
            (Kind::Digest, stock::DIGEST),
            (Kind::Recovery, stock::RECOVERY),
            (Kind::Automation, stock::AUTOMATION),
        ] {
            let id = |part| TemplateId::Stock { kind, part };
            for (part, (name, text)) in [
                (Part::Html, stock.email_html),
                (Part::Text, stock.email_text),
                (Part::Subject, ("subject", stock.subject)),
                (Part::Slack, stock.slack),
                (Part::Teams, stock.teams),
            ] {
                templates.add(
                    id(part),
                    Source::Stock(name, text),
                    String::new(),
                    &mut stock_problems,
                );
            }
        }
        if problems.is_empty() {
            Ok(templates)
        } else {
            Err(problems)
        }
    }

    /// Loads and registers one template; returns where it came from (empty if unreadable).
    fn add(
        &mut self,
        id: TemplateId,
        source: Source,
        config_key: String,
        problems: &mut Vec<Problem>,
    ) -> String {
        let registry = match id.part() {
            Part::Html => &mut self.html,
            _ => &mut self.raw,
        };
        match source.load() {
            Ok((origin, text)) => {
                let name = id.name();
                match registry.register_template_string(&name, text) {
                    Ok(()) => {
                        let reads = registry
                            .get_template(&name)
                            .map_or(Reads::Everything, Reads::of);
                        self.reads.insert(id, reads);
                        self.direct.insert(id, OnceLock::new());
                    }
                    Err(e) => {
                        let place = match e.pos() {
                            Some((l, c)) => format!("{origin}:{l}:{c}"),
                            None => origin.clone(),
                        };
                        problems.push(Problem {
                            path: config_key,
                            message: format!("{place}: {}", e.reason()),
                        });
                    }
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
    }

    /// Renders template `id` with `ctx` (HTML-escaping only for email HTML bodies).
    pub(super) fn render(&self, id: TemplateId, ctx: &Value) -> Result<String, RenderError> {
        self.render_data(id, &Data::from(ctx.clone()))
    }

    /// Renders template `id` with a context already handed to Handlebars: several templates
    /// rendered from one context share one copy of it.
    pub(super) fn render_data(&self, id: TemplateId, data: &Data) -> Result<String, RenderError> {
        let name = id.name();
        self.registry(id)
            .render_with_context(&name, data)
            .map_err(|e| RenderError::Template {
                template: name,
                message: e.to_string(),
            })
    }

    /// Template `id` rendered by the direct renderer from `ctx` (strings escaped as `escapes`
    /// says for their key), or `None` when Handlebars must render it.
    pub(super) fn render_direct(
        &self,
        id: TemplateId,
        ctx: &Value,
        escapes: Option<&Escapes>,
    ) -> Option<String> {
        let direct = self.direct.get(&id)?.get_or_init(|| {
            let template = self.registry(id).get_template(&id.name())?;
            Direct::of(template, &is_helper)
        });
        direct
            .as_ref()?
            .render(ctx, escapes, id.part() == Part::Html)
    }

    /// The registry of template `id`: HTML-escaping for email HTML bodies, else raw.
    fn registry(&self, id: TemplateId) -> &Handlebars<'static> {
        match id.part() {
            Part::Html => &self.html,
            _ => &self.raw,
        }
    }

    /// What of the context template `id` can read (all of it for one that is not registered).
    pub(super) fn reads(&self, id: TemplateId) -> &Reads {
        self.reads.get(&id).unwrap_or(&Reads::Everything)
    }

    /// Where destination `index`'s template of `kind` came from (a file, or `stock …`).
    pub(super) fn origin(&self, index: usize, kind: Kind) -> &str {
        self.origins[kind.index()]
            .get(index)
            .map_or("", String::as_str)
    }
}

/// Whether `{{name}}` calls a helper: Handlebars' built-in ones (handlebars 6.4, the
/// `string_helpers` feature's too) and ours (`helpers.rs`). Handlebars has no public list; the
/// test below holds this one to the registry.
pub(super) fn is_helper(name: &str) -> bool {
    const BUILT_IN: [&str; 17] = [
        "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt",
        "lte", "and", "or", "not", "len",
    ];
    const STRING: [&str; 8] = [
        "lowerCamelCase",
        "upperCamelCase",
        "snakeCase",
        "kebabCase",
        "shoutySnakeCase",
        "shoutyKebabCase",
        "titleCase",
        "trainCase",
    ];
    BUILT_IN.contains(&name) || STRING.contains(&name) || super::helpers::NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `{{name}}` calls a helper in `registry`: rendered with a context holding a marker
    /// under `name`, a value writes the marker and a helper does not.
    fn calls_a_helper(registry: &Handlebars, name: &str) -> bool {
        const MARKER: &str = "\u{1}value";
        let ctx = serde_json::json!({ name: MARKER });
        registry
            .render_template(&format!("{{{{{name}}}}}"), &ctx)
            .map_or(true, |out| out != MARKER)
    }

    #[test]
    fn the_helper_names_are_the_registrys() {
        let mut registry = Handlebars::new();
        super::super::helpers::register(&mut registry);
        let registered = ["if", "unless", "each", "with", "lookup", "len", "eq", "not"]
            .into_iter()
            .chain(super::super::helpers::NAMES);
        for name in registered {
            assert!(calls_a_helper(&registry, name) && is_helper(name), "{name}");
        }
        // Every name in the stock templates (the helpers' and the fields') is told apart.
        let mut names = std::collections::BTreeSet::new();
        for (_, text) in stock::all() {
            if let Reads::Keys(keys) = Reads::of(&handlebars::Template::compile(text).unwrap()) {
                names.extend(keys);
            }
        }
        assert!(names.len() > 50 && names.contains("urlencode"), "{names:?}");
        for name in names {
            assert_eq!(is_helper(&name), calls_a_helper(&registry, &name), "{name}");
        }
    }
}
