//! Which of the context's top-level keys a compiled template can read, so that a destination's
//! escaped copy of the context holds those and not the rest (in a storm, the stock Slack and
//! Teams templates' copies held 28.5 keys each). The answer errs on the side of more: any name a
//! template mentions counts as a key, and whatever could reach the whole context (`{{this}}`
//! outside `each` or `with`, `@root`, a partial, a decorator) makes it [`Reads::Everything`].

use std::collections::BTreeSet;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, PathSeg, Template};
use serde_json::Value;

/// The context keys a template can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reads {
    /// The whole context: copied as it is.
    Everything,
    /// Only these top-level keys (and all below them).
    Keys(BTreeSet<String>),
}

impl Reads {
    /// What `template` can read.
    pub(super) fn of(template: &Template) -> Reads {
        let mut keys = BTreeSet::new();
        match elements(&template.elements, Scope::Top, &mut keys) {
            Some(()) => Reads::Keys(keys),
            None => Reads::Everything,
        }
    }

    /// A copy of what of `ctx` a template that reads this can see. The top-level keys may come
    /// in another order: only a template that walks the whole context could tell, and that one
    /// reads [`Reads::Everything`].
    pub(super) fn copy(&self, ctx: &Value) -> Value {
        match (self, ctx) {
            (Reads::Keys(keys), Value::Object(map)) => {
                let mut copy = serde_json::Map::with_capacity(keys.len());
                for (key, value) in keys.iter().filter_map(|k| Some((k, map.get(k)?))) {
                    copy.insert(key.clone(), value.clone());
                }
                Value::Object(copy)
            }
            _ => ctx.clone(),
        }
    }

    /// What either template can read (an email's subject, HTML and text share one context).
    pub(super) fn or(&self, other: &Reads) -> Reads {
        match (self, other) {
            (Reads::Keys(a), Reads::Keys(b)) => Reads::Keys(a.union(b).cloned().collect()),
            _ => Reads::Everything,
        }
    }
}

/// Whether `this` names the whole context (at the top) or an item of it (inside `each`, `with`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Top,
    Inner,
}

/// Adds the keys `list` reads; `None` when it can read the whole context.
fn elements(list: &[TemplateElement], scope: Scope, keys: &mut BTreeSet<String>) -> Option<()> {
    list.iter().try_for_each(|e| element(e, scope, keys))
}

fn element(e: &TemplateElement, scope: Scope, keys: &mut BTreeSet<String>) -> Option<()> {
    match e {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => Some(()),
        TemplateElement::Expression(h)
        | TemplateElement::HtmlExpression(h)
        | TemplateElement::HelperBlock(h) => helper(h, scope, keys),
        // Partials and decorators render with (or change) the whole context.
        _ => None,
    }
}

fn helper(h: &HelperTemplate, scope: Scope, keys: &mut BTreeSet<String>) -> Option<()> {
    param(&h.name, scope, keys)?;
    h.params.iter().try_for_each(|p| param(p, scope, keys))?;
    h.hash.values().try_for_each(|p| param(p, scope, keys))?;
    // `each` and `with` render their block with an item of what they were given, which is
    // already among the keys; any other block (`if`, `unless`) keeps the context it is in.
    let inner = match &h.name {
        Parameter::Name(name) if name == "each" || name == "with" => Scope::Inner,
        _ => scope,
    };
    if let Some(block) = &h.template {
        elements(&block.elements, inner, keys)?;
    }
    // An `{{else}}` renders with the context the helper was given.
    if let Some(inverse) = &h.inverse {
        elements(&inverse.elements, scope, keys)?;
    }
    Some(())
}

fn param(p: &Parameter, scope: Scope, keys: &mut BTreeSet<String>) -> Option<()> {
    match p {
        // A helper's name or a key: counted either way.
        Parameter::Name(name) => {
            keys.insert(name.clone());
            Some(())
        }
        Parameter::Path(path) => self::path(path, scope, keys),
        Parameter::Literal(_) => Some(()),
        Parameter::Subexpression(sub) => element(sub.as_element(), scope, keys),
        // A kind of parameter this code does not know: assume the worst.
        _ => None,
    }
}

fn path(path: &Path, scope: Scope, keys: &mut BTreeSet<String>) -> Option<()> {
    match path {
        // `@root` alone is the whole context; `@index`, `@first`, `@key` are the block's own.
        Path::Local((_, name, _)) => (name != "root").then_some(()),
        Path::Relative((segs, _)) => {
            // The first name, whatever comes before it (`../`, `@root.`, `this.`), may be a key.
            let first = segs.iter().find_map(|s| match s {
                PathSeg::Named(name) => Some(name),
                _ => None,
            });
            match first {
                Some(name) => {
                    keys.insert(name.clone());
                    Some(())
                }
                // `{{this}}` is an item inside a block; anything else without a name (`{{..}}`,
                // `{{@root}}`, `{{this}}` at the top) may be the whole context.
                None => (segs.is_empty() && scope == Scope::Inner).then_some(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(source: &str) -> Reads {
        Reads::of(&Template::compile(source).unwrap())
    }

    fn keys(names: &[&str]) -> Reads {
        Reads::Keys(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn names_paths_and_block_params_count_as_keys() {
        assert_eq!(
            reads("{{appName}} {{a.b}} {{c/d}}"),
            keys(&["a", "appName", "c"])
        );
        assert_eq!(
            reads("{{#if x}}{{y}}{{else if z}}{{w}}{{else}}{{v}}{{/if}}"),
            keys(&["if", "v", "w", "x", "y", "z"])
        );
        assert_eq!(
            reads("{{#each buttons}}{{#unless @first}},{{/unless}}{{text}}{{this}}{{@index}}{{/each}}"),
            keys(&["buttons", "each", "text", "unless"])
        );
        assert_eq!(
            reads("{{#each list}}{{../appName}}{{@root.tenantId}}{{/each}}"),
            keys(&["appName", "each", "list", "tenantId"])
        );
        assert_eq!(
            reads(r#"{{truncate (urlencode appOwnerEmail) 10}} {{lookup tags "x"}} {{a k=b}}"#),
            keys(&[
                "a",
                "appOwnerEmail",
                "b",
                "lookup",
                "tags",
                "truncate",
                "urlencode"
            ])
        );
        assert_eq!(
            reads("{{#with owner}}{{this}}{{name}}{{/with}}"),
            keys(&["name", "owner", "with"])
        );
        assert_eq!(
            reads("{{#each appTags}}{{this}}{{/each}}"),
            keys(&["appTags", "each"])
        );
        assert_eq!(reads("no fields"), keys(&[]));
    }

    #[test]
    fn what_may_reach_the_whole_context_reads_everything() {
        for source in [
            "{{this}}",
            "{{@root}}",
            "{{#each this}}{{@key}}{{/each}}",
            "{{#if x}}{{this}}{{/if}}",
            "{{#unknown x}}{{this}}{{/unknown}}",
            "{{#each list}}{{../this}}{{/each}}",
            "{{#each list}}x{{else}}{{this}}{{/each}}",
            "{{lookup this \"appName\"}}",
            "{{> partial}}",
            "{{#*inline \"p\"}}x{{/inline}}",
        ] {
            assert_eq!(reads(source), Reads::Everything, "{source}");
        }
    }

    #[test]
    fn a_template_renders_the_same_from_the_copy_of_what_it_reads() {
        let ctx = serde_json::json!({
            "appName": "Sales", "appId": "a1", "tenantId": "t1", "unused": "x",
            "owner": {"name": "Ann", "email": "ann@example.com"},
            "engineErrors": ["e1", "e2"],
            "buttons": [{"text": "Open", "url": "https://x/1"}, {"text": "Hub", "url": "https://x/2"}],
            "list": [{"appName": "inner"}],
        });
        let mut registry = handlebars::Handlebars::new();
        for (i, source) in [
            "{{appName}} {{owner.name}} {{#with owner}}{{email}} {{../appId}}{{/with}}",
            "{{#each engineErrors}}{{#unless @first}}, {{/unless}}{{this}}{{/each}}",
            "{{#each buttons}}{{text}}={{url}} {{@root.tenantId}} {{../appName}};{{/each}}",
            "{{#each list}}{{appName}}{{/each}} {{#if missing}}x{{else}}{{appId}}{{/if}}",
            "{{lookup this \"appId\"}} {{#each this}}{{@key}} {{/each}}",
            "{{lookup owner \"email\"}} {{#if owner}}{{owner.name}}{{/if}}",
        ]
        .into_iter()
        .enumerate()
        {
            let name = i.to_string();
            registry.register_template_string(&name, source).unwrap();
            let reads = Reads::of(registry.get_template(&name).unwrap());
            assert_eq!(
                registry.render(&name, &reads.copy(&ctx)).unwrap(),
                registry.render(&name, &ctx).unwrap(),
                "{source}"
            );
        }
    }

    #[test]
    fn the_stock_alert_templates_read_a_part_of_the_context() {
        use crate::render::stock;
        for (name, text) in [
            stock::SLACK,
            stock::TEAMS,
            stock::EMAIL_HTML,
            stock::EMAIL_TEXT,
            stock::AUTOMATION.slack,
            stock::AUTOMATION.teams,
        ] {
            assert!(matches!(reads(text), Reads::Keys(_)), "{name}");
        }
    }

    #[test]
    fn either_of_two_templates_reads_both_key_sets() {
        assert_eq!(reads("{{a}}").or(&reads("{{b}}")), keys(&["a", "b"]));
        assert_eq!(reads("{{a}}").or(&reads("{{this}}")), Reads::Everything);
    }
}
