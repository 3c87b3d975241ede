//! Renders the templates most destinations use straight from the alert's shared context: text,
//! `{{field}}` values, `{{urlencode field}}` and the `if`, `unless`, `each` and `with` blocks,
//! each value escaped as it is written. Handlebars renders the same templates from an escaped copy of the context
//! (`chat::with_strings`) and resolves each path by building it anew, with a few allocations per
//! `{{field}}`: in a storm, rendering that way was a quarter of the daemon's CPU.
//!
//! What this renderer does not know is left to Handlebars, whole: a template with any other
//! helper, a partial, a decorator, block parameters or hash arguments is never compiled here, and
//! a render that meets a case it does not decide (a list indexed by a name, which Handlebars
//! reports as an error) gives `None`, so the caller renders it with Handlebars. Where it answers,
//! the text is Handlebars' own; the tests compare the two on every stock template and on random
//! templates and contexts.

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, PathSeg, Template};
use serde_json::Value;

use super::chat::Escapes;
use render::Render;

mod render;

/// A template compiled for direct rendering.
#[derive(Debug)]
pub(super) struct Direct(Vec<Node>);

#[derive(Debug)]
enum Node {
    Text(String),
    /// `{{path}}` (`escaped`: the registry's escape applies) or `{{{path}}}`; with `urlencode`,
    /// `{{urlencode path}}`.
    Value {
        lookup: Lookup,
        escaped: bool,
        urlencode: bool,
    },
    Block {
        helper: Helper,
        param: Lookup,
        body: Vec<Node>,
        inverse: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Helper {
    If,
    Unless,
    Each,
    With,
}

#[derive(Debug)]
enum Lookup {
    /// `@index`, `@first`, `@last`, `@key` of the block `level` up.
    Local { level: usize, name: String },
    /// Names looked up from the current block's value, a block `n` up (`../`), or the root.
    Path { start: Start, names: Vec<String> },
    /// A literal argument (`{{#if true}}`).
    Literal(Value),
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Current,
    Up(usize),
    Root,
}

impl Direct {
    /// `template` compiled, or `None` when it uses anything beyond this renderer's part of
    /// Handlebars. `is_helper` tells a registered helper's name (`{{len}}` calls it).
    pub(super) fn of(template: &Template, is_helper: &dyn Fn(&str) -> bool) -> Option<Direct> {
        nodes(&template.elements, is_helper).map(Direct)
    }

    /// Renders with `ctx`: strings escaped as their key calls for when `escapes` is given, and
    /// `{{x}}` (not `{{{x}}}`) HTML-escaped when `html`. `None`: Handlebars must render it.
    pub(super) fn render(
        &self,
        ctx: &Value,
        escapes: Option<&Escapes>,
        html: bool,
    ) -> Option<String> {
        let mut render = Render::new(ctx, escapes, html);
        render.nodes(&self.0).ok()?;
        Some(render.text())
    }
}

fn nodes(list: &[TemplateElement], is_helper: &dyn Fn(&str) -> bool) -> Option<Vec<Node>> {
    let mut out = Vec::with_capacity(list.len());
    for element in list {
        match element {
            TemplateElement::RawString(text) => out.push(Node::Text(text.clone())),
            TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => out.push(value(
                h,
                matches!(element, TemplateElement::Expression(_)),
                is_helper,
            )?),
            TemplateElement::HelperBlock(h) => out.push(block(h, is_helper)?),
            _ => return None,
        }
    }
    Some(out)
}

/// `{{path}}`: a value, unless it names a helper (then Handlebars calls it). Handlebars looks
/// the path's whole text up among the helpers, and every helper's name is a plain word: a path
/// written with more than its one name (`this.x`, `../x`, `a.b`) is never a helper's.
/// `{{urlencode path}}` is the one helper call compiled here (the stock email bodies use it).
fn value(h: &HelperTemplate, escaped: bool, is_helper: &dyn Fn(&str) -> bool) -> Option<Node> {
    if h.block || !h.hash.is_empty() || h.block_param.is_some() {
        return None;
    }
    match (&h.name, h.params.as_slice()) {
        (Parameter::Path(path), []) => {
            let lookup = lookup(path)?;
            let helper = match &lookup {
                Lookup::Path {
                    start: Start::Current,
                    names,
                } => {
                    matches!(names.as_slice(), [name] if h.name.as_name() == Some(name) && is_helper(name))
                }
                _ => false,
            };
            (!helper).then_some(Node::Value {
                lookup,
                escaped,
                urlencode: false,
            })
        }
        (Parameter::Name(name), [Parameter::Path(path)]) if name == "urlencode" => {
            Some(Node::Value {
                lookup: lookup(path)?,
                escaped,
                urlencode: true,
            })
        }
        _ => None,
    }
}

fn block(h: &HelperTemplate, is_helper: &dyn Fn(&str) -> bool) -> Option<Node> {
    let helper = match h.name.as_name()? {
        "if" => Helper::If,
        "unless" => Helper::Unless,
        "each" => Helper::Each,
        "with" => Helper::With,
        _ => return None,
    };
    let [param] = h.params.as_slice() else {
        return None;
    };
    if !h.hash.is_empty() || h.block_param.is_some() {
        return None;
    }
    let param = match (param, helper) {
        (Parameter::Path(path), _) => lookup(path)?,
        (Parameter::Literal(v), Helper::If | Helper::Unless) => Lookup::Literal(v.clone()),
        _ => return None,
    };
    // `each` and `with` take their block's value from the context only (a local variable or a
    // literal becomes a derived value in Handlebars, looked up differently).
    if matches!(helper, Helper::Each | Helper::With) && !matches!(param, Lookup::Path { .. }) {
        return None;
    }
    let inner = |t: &Option<Template>| match t {
        Some(t) => nodes(&t.elements, is_helper),
        None => Some(Vec::new()),
    };
    Some(Node::Block {
        helper,
        param,
        body: inner(&h.template)?,
        inverse: inner(&h.inverse)?,
    })
}

/// A path as Handlebars resolves it (`parse_json_visitor`): leading `../` pick a block, `@root`
/// the root; the names follow. Any other form is left to Handlebars.
fn lookup(path: &Path) -> Option<Lookup> {
    match path {
        Path::Local((level, name, _)) => Some(Lookup::Local {
            level: *level,
            name: name.clone(),
        }),
        Path::Relative((segs, _)) => {
            let (mut ups, mut root, mut names) = (0, false, Vec::new());
            for seg in segs {
                match seg {
                    PathSeg::Named(name) => names.push(name.clone()),
                    // The grammar's rule is not exported; its name is.
                    PathSeg::Ruled(rule) => match format!("{rule:?}").as_str() {
                        "path_up" if names.is_empty() && !root => ups += 1,
                        "path_root" if names.is_empty() && ups == 0 => root = true,
                        _ => return None,
                    },
                    _ => return None,
                }
            }
            let start = match (ups, root) {
                (0, false) => Start::Current,
                (0, true) => Start::Root,
                (n, _) => Start::Up(n),
            };
            Some(Lookup::Path { start, names })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use handlebars::Handlebars;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;
    use crate::config::ScriptLogLines;
    use crate::render::chat::with_strings;
    use crate::render::context::{build, AlertInput};
    use crate::render::escape::{
        json_string_body, slack_entities, slack_fences, slack_json_text, teams_json_text,
        teams_markdown, then, unchanged,
    };
    use crate::render::reads::Reads;
    use crate::render::{sample, stock};

    fn slack_label(t: &str) -> Cow<'_, str> {
        then(slack_entities(t), json_string_body)
    }

    fn slack_basic(t: &str) -> Cow<'_, str> {
        then(slack_fences(t), slack_entities)
    }

    /// The escapes the destinations use (`mod.rs`), and none (email).
    fn escape_sets() -> Vec<Option<Escapes<'static>>> {
        vec![
            Some(Escapes {
                text: &slack_json_text,
                url: &json_string_body,
                label: &slack_label,
            }),
            Some(Escapes {
                text: &teams_json_text,
                url: &json_string_body,
                label: &json_string_body,
            }),
            Some(Escapes {
                text: &slack_basic,
                url: &unchanged,
                label: &slack_entities,
            }),
            Some(Escapes {
                text: &teams_markdown,
                url: &unchanged,
                label: &unchanged,
            }),
            None,
        ]
    }

    fn registry(html: bool) -> Handlebars<'static> {
        let mut registry = Handlebars::new();
        match html {
            true => registry.register_escape_fn(crate::render::escape::html),
            false => registry.register_escape_fn(handlebars::no_escape),
        }
        crate::render::helpers::register(&mut registry);
        registry
    }

    /// What the direct renderer writes (`None`: it leaves the template to Handlebars) and what
    /// Handlebars writes from the escaped copy, as `Templates` renders (`None`: an error).
    fn both(
        source: &str,
        ctx: &Value,
        escapes: Option<&Escapes>,
        html: bool,
    ) -> (Option<String>, Option<String>) {
        let mut registry = registry(html);
        registry.register_template_string("t", source).unwrap();
        let template = registry.get_template("t").unwrap();
        let direct = Direct::of(template, &crate::render::templates::is_helper)
            .and_then(|d| d.render(ctx, escapes, html));
        let reads = Reads::of(template);
        let copy = match escapes {
            Some(e) => with_strings(ctx, &reads, e),
            None => reads.copy(ctx),
        };
        let handlebars = registry
            .render_with_context("t", &handlebars::Context::from(copy))
            .ok();
        (direct, handlebars)
    }

    /// Asserts the direct text is Handlebars' wherever it answers; how many cases it answered.
    fn agree(source: &str, ctx: &Value) -> usize {
        let mut answered = 0;
        for escapes in escape_sets() {
            for html in [false, true] {
                let (direct, handlebars) = both(source, ctx, escapes.as_ref(), html);
                if let Some(direct) = direct {
                    assert_eq!(Some(&direct), handlebars.as_ref(), "{source}\n{ctx}");
                    answered += 1;
                }
            }
        }
        answered
    }

    fn contexts() -> Vec<Value> {
        let utc = crate::zone::Zone::named("UTC");
        let links = [crate::config::LinkConfig {
            id: "runbook".into(),
            text: "Run<book> & \"more\"".into(),
            url: "https://example.com/a?b=1&c=\"2\"".into(),
        }];
        let samples = [
            (sample::event(), sample::enrichment()),
            sample::hostile(),
            sample::automation(),
            sample::hostile_automation(),
            (sample::event(), Default::default()),
        ];
        let mut out = Vec::new();
        for (event, enrichment) in &samples {
            for links in [&links[..], &[]] {
                let input = AlertInput {
                    event,
                    enrichment,
                    tenant: None,
                    links,
                    timezone: utc.as_ref(),
                    remembered_name: None,
                };
                out.push(build(&input, "ops", ScriptLogLines { head: 2, tail: 5 }));
            }
        }
        out
    }

    #[test]
    fn stock_templates_render_as_handlebars_renders_them() {
        let contexts = contexts();
        for (name, text) in stock::all() {
            let answered: usize = contexts.iter().map(|ctx| agree(text, ctx)).sum();
            // Every stock template for email and chat is the direct renderer's.
            assert_eq!(answered, contexts.len() * 10, "{name}");
        }
    }

    #[test]
    fn each_construct_renders_as_in_handlebars() {
        let ctx = json!({
            "appName": "Sales <\"Q1\"> & `x` *y* 'z'", "appId": "a1", "empty": "", "zero": 0,
            "half": 0.5, "yes": true, "no": false, "nothing": null,
            "owner": {"name": "Ann [x](y)", "email": "ann@example.com"},
            "engineErrors": ["e1 \"quoted\"", "```fence```"],
            "buttons": [{"text": "Open <app>", "url": "https://x/1?a=1&b=\"2\""}, {"text": "Hub", "url": "https://x/2"}],
            "tags": {"first": "one", "second": "<two>", "url": "u<\"&", "text": "t<\"&*"},
            "nested": [[1, "a<b"], {"k": "v"}], "list": [{"appName": "inner", "url": "u<"}],
            "emptyList": [], "emptyMap": {},
        });
        let cases = [
            "plain text only",
            "{{appName}}|{{{appName}}}|{{appId}}|{{missing}}|{{owner.name}}|{{owner/email}}",
            "{{zero}} {{half}} {{yes}} {{no}} {{nothing}} {{engineErrors}} {{nested}} {{owner}}",
            "{{this}} {{this.appId}} {{./appId}} {{@root.appId}} {{@root}}",
            "{{#if appName}}y{{else}}n{{/if}}{{#if empty}}y{{else}}n{{/if}}{{#if zero}}y{{/if}}",
            "{{#if half}}h{{/if}}{{#if emptyList}}l{{/if}}{{#if emptyMap}}m{{/if}}{{#if nothing}}x{{/if}}",
            "{{#unless no}}u{{else}}v{{/unless}}{{#if true}}t{{/if}}{{#if 0}}z{{else}}nz{{/if}}",
            "{{#if missing}}a{{else if zero}}b{{else if owner}}{{owner.name}}{{else}}d{{/if}}",
            "{{#each engineErrors}}{{@index}}:{{this}}{{#if @first}}F{{/if}}{{#if @last}}L{{/if}};{{/each}}",
            "{{#each engineErrors}}{{#if @index}}i{{else}}z{{/if}}{{#unless @key}}k{{/unless}}{{/each}}",
            "{{#each buttons}}{{#unless @first}},{{/unless}}{{text}}={{url}} {{../appId}} {{@root.appName}}{{/each}}",
            "{{#each tags}}{{@key}}={{this}} {{@index}} {{@first}}{{@last}};{{/each}}",
            "{{#each emptyList}}x{{else}}none{{/each}}{{#each missing}}x{{else}}gone{{/each}}{{#each appId}}s{{/each}}",
            "{{#each nested}}[{{#each this}}{{this}}/{{@../index}}{{/each}}]{{/each}}",
            "{{#each list}}{{appName}} {{url}} {{../appName}} {{../../appName}}{{/each}}",
            "{{#with owner}}{{name}} {{email}} {{../appId}} {{@index}}{{/with}}{{#with missing}}x{{else}}w{{/with}}",
            "{{#each buttons}}{{#with this}}{{text}}@{{@index}}{{/with}}{{/each}}",
            "{{buttons.0.url}} {{buttons.1.text}} {{buttons.5.text}} {{engineErrors.1}}",
            "{{#each engineErrors}}\n  - {{this}}\n{{/each}}\n{{#if yes}}\n    yes\n{{/if}}\n",
            "a {{~#if yes~}}  b  {{~/if~}}  c {{~appId}} {{appId~}} d",
            "{{! a comment }}{{!-- another --}}{{appId}}",
            "{{urlencode appName}}|{{{urlencode appName}}}|{{urlencode owner.email}}|{{urlencode empty}}",
            "{{#each tags}}{{urlencode @key}}={{urlencode this}}&{{/each}}{{#each buttons}}{{urlencode url}}{{/each}}",
        ];
        let declined: Vec<_> = cases.iter().filter(|s| agree(s, &ctx) != 10).collect();
        assert!(declined.is_empty(), "{declined:#?}");
    }

    #[test]
    fn what_it_does_not_render_is_left_to_handlebars() {
        let ctx = json!({"appName": "x", "buttons": [{"text": "t"}], "n": 3});
        for source in [
            "{{buttons.text}}",
            "{{#each buttons}}{{this.x.y}}{{/each}}{{buttons.first}}",
            "{{len buttons}}",
            "{{len}}",
            "{{urlencode}}",
            "{{urlencode n}}",
            "{{urlencode missing}}",
            "{{urlencode buttons}}",
            "{{urlencode appName n}}",
            "{{urlencode \"lit\"}}",
            "{{urlencode (urlencode appName)}}",
            "{{#each buttons}}{{urlencode @index}}{{/each}}",
            "{{#if (eq n 3)}}x{{/if}}",
            "{{#if n includeZero=true}}x{{/if}}",
            "{{#each buttons as |b|}}{{b.text}}{{/each}}",
            "{{> partial}}",
            "{{#*inline \"p\"}}x{{/inline}}",
            "{{lookup buttons 0}}",
            "{{#appName}}x{{/appName}}",
            "{{#each @index}}x{{/each}}",
        ] {
            let (direct, _) = both(source, &ctx, None, false);
            assert_eq!(direct, None, "{source}");
        }
    }

    /// Random templates of the direct renderer's part of Handlebars on random contexts: the
    /// output is Handlebars' own wherever it answers, and it answers most of them.
    #[test]
    fn random_templates_render_as_in_handlebars() {
        let mut rng = StdRng::seed_from_u64(21);
        let (mut cases, mut answered) = (0, 0);
        for _ in 0..1000 {
            let ctx = random_value(&mut rng, 0, true);
            let source = random_template(&mut rng, 0);
            cases += 10;
            answered += agree(&source, &ctx);
        }
        assert!(answered * 10 > cases * 7, "{answered} of {cases}");
    }

    const KEYS: [&str; 7] = ["a", "b", "url", "text", "list", "appName", "0"];

    fn random_value(rng: &mut StdRng, depth: usize, object: bool) -> Value {
        const TEXTS: [&str; 9] = [
            "", "x", "a\"b\\c", "<&>", "```x```", "*_[]~", "l1\nl2", "é\u{1}", "0",
        ];
        let kind = match (object, depth >= 3) {
            (true, _) => 0,
            (false, true) => rng.random_range(2..7),
            (false, false) => rng.random_range(0..7),
        };
        match kind {
            0 | 6 if depth < 3 => Value::Object(
                (0..rng.random_range(0..5))
                    .map(|_| {
                        let key = KEYS[rng.random_range(0..KEYS.len())].to_owned();
                        (key, random_value(rng, depth + 1, false))
                    })
                    .collect(),
            ),
            1 => Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| random_value(rng, depth + 1, false))
                    .collect(),
            ),
            2 | 3 => json!(TEXTS[rng.random_range(0..TEXTS.len())]),
            4 => [json!(0), json!(1), json!(-2), json!(0.5), json!(1e-310)][rng.random_range(0..5)]
                .clone(),
            5 => json!(rng.random_bool(0.5)),
            _ => Value::Null,
        }
    }

    fn random_path(rng: &mut StdRng) -> String {
        const SPECIAL: [&str; 12] = [
            "this",
            "@index",
            "@first",
            "@last",
            "@key",
            "@../index",
            "../a",
            "../../list",
            "@root.a",
            "this.b",
            "list.0",
            "list.1.url",
        ];
        match rng.random_range(0..3) {
            0 => SPECIAL[rng.random_range(0..SPECIAL.len())].to_owned(),
            1 => format!(
                "{}.{}",
                KEYS[rng.random_range(0..6)],
                KEYS[rng.random_range(0..KEYS.len())]
            ),
            _ => KEYS[rng.random_range(0..6)].to_owned(),
        }
    }

    fn random_template(rng: &mut StdRng, depth: usize) -> String {
        let mut out = String::new();
        for _ in 0..rng.random_range(1..4) {
            let choice = match depth >= 3 {
                true => rng.random_range(0..3),
                false => rng.random_range(0..8),
            };
            let path = random_path(rng);
            match choice {
                0 => out.push_str([" ", "-", "\n", "x\n  "][rng.random_range(0..4)]),
                1 if rng.random_bool(0.2) => out.push_str(&format!("{{{{urlencode {path}}}}}")),
                1 => out.push_str(&format!("{{{{{path}}}}}")),
                2 => out.push_str(&format!("{{{{{{{path}}}}}}}")),
                3..=6 => {
                    let helper = ["if", "unless", "each", "with"][choice - 3];
                    // `each` and `with` of an `@` variable are left to Handlebars.
                    let path = match helper {
                        "each" | "with" => path.replace('@', ""),
                        _ => path,
                    };
                    let body = random_template(rng, depth + 1);
                    out.push_str(&format!("{{{{#{helper} {path}}}}}{body}"));
                    match rng.random_range(0..3) {
                        0 => {}
                        1 => {
                            let inverse = random_template(rng, depth + 1);
                            out.push_str(&format!("{{{{else}}}}{inverse}"));
                        }
                        _ if helper == "if" => {
                            let (test, inner) = (random_path(rng), random_template(rng, depth + 1));
                            out.push_str(&format!("{{{{else if {test}}}}}{inner}"));
                        }
                        _ => {}
                    }
                    out.push_str(&format!("{{{{/{helper}}}}}"));
                }
                _ => {
                    let (path, body) = (path.replace('@', ""), random_template(rng, depth + 1));
                    out.push_str(&format!(
                        "{{{{#each {path}}}}}[{{{{@index}}}}]{body}{{{{/each}}}}"
                    ));
                }
            }
        }
        out
    }
}
