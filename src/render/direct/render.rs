//! Rendering a compiled template: a stack of block scopes over the borrowed context, each
//! path resolved as Handlebars resolves it, each value written as Handlebars writes it.

use std::borrow::Cow;
use std::fmt::Write as _;

use handlebars::JsonTruthy;
use serde_json::Value;

use super::{Helper, Lookup, Node, Start};
use crate::render::chat::Escapes;

/// A block's scope: its value, the key it is under (for escaping), its `@` variables.
struct Frame<'c> {
    value: &'c Value,
    key: Option<&'c str>,
    locals: Locals<'c>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Locals<'c> {
    first: Option<bool>,
    last: Option<bool>,
    index: Option<usize>,
    key: Option<&'c str>,
}

/// What a lookup found.
enum Found<'c> {
    Missing,
    /// A value of the context and the key it is under.
    Json(&'c Value, Option<&'c str>),
    /// A block's `@` variable: never escaped by key (Handlebars derives them).
    Bool(bool),
    Index(usize),
    Key(&'c str),
}

/// Handlebars reports this lookup as an error; it renders the template itself.
pub(super) struct Unsupported;

pub(super) struct Render<'c, 'e> {
    escapes: Option<&'e Escapes<'e>>,
    html: bool,
    /// The root first; the innermost block last.
    frames: Vec<Frame<'c>>,
    out: String,
}

impl<'c, 'e> Render<'c, 'e> {
    /// A render of `ctx`: strings escaped by key with `escapes`, `{{x}}` HTML-escaped if `html`.
    pub(super) fn new(ctx: &'c Value, escapes: Option<&'e Escapes<'e>>, html: bool) -> Self {
        Render {
            escapes,
            html,
            frames: vec![Frame {
                value: ctx,
                key: None,
                locals: Locals::default(),
            }],
            out: String::with_capacity(8 * 1024),
        }
    }

    /// What was written.
    pub(super) fn text(self) -> String {
        self.out
    }
}

impl<'c> Render<'c, '_> {
    pub(super) fn nodes(&mut self, nodes: &'c [Node]) -> Result<(), Unsupported> {
        nodes.iter().try_for_each(|n| self.node(n))
    }

    fn node(&mut self, node: &'c Node) -> Result<(), Unsupported> {
        match node {
            Node::Text(text) => self.out.push_str(text),
            Node::Value {
                lookup,
                escaped,
                urlencode,
            } => {
                let found = self.find(lookup)?;
                let html = *escaped && self.html;
                match (*urlencode, html) {
                    (false, false) => {
                        let mut out = std::mem::take(&mut self.out);
                        self.write(&found, &mut out);
                        self.out = out;
                    }
                    _ => {
                        let text = match urlencode {
                            true => self.url_part(&found)?,
                            false => {
                                let mut text = String::new();
                                self.write(&found, &mut text);
                                text
                            }
                        };
                        match html {
                            true => self.out.push_str(&crate::render::escape::html(&text)),
                            false => self.out.push_str(&text),
                        }
                    }
                }
            }
            Node::Block {
                helper,
                param,
                body,
                inverse,
            } => {
                let found = self.find(param)?;
                match helper {
                    Helper::If | Helper::Unless => {
                        match truthy(&found) == (*helper == Helper::If) {
                            true => self.nodes(body)?,
                            false => self.nodes(inverse)?,
                        }
                    }
                    Helper::With => match found {
                        Found::Json(value, key) if truthy(&found) => {
                            // `with` keeps the enclosing block's `@` variables (Handlebars #592).
                            let locals = self.frames.last().map(|f| f.locals).unwrap_or_default();
                            self.within(value, key, locals, body)?;
                        }
                        _ => self.nodes(inverse)?,
                    },
                    Helper::Each => self.each(&found, body, inverse)?,
                }
            }
        }
        Ok(())
    }

    fn each(
        &mut self,
        found: &Found<'c>,
        body: &'c [Node],
        inverse: &'c [Node],
    ) -> Result<(), Unsupported> {
        match found {
            Found::Json(Value::Array(list), key) if !list.is_empty() => {
                for (i, item) in list.iter().enumerate() {
                    let locals = Locals {
                        first: Some(i == 0),
                        last: Some(i == list.len() - 1),
                        index: Some(i),
                        key: None,
                    };
                    self.within(item, *key, locals, body)?;
                }
                Ok(())
            }
            Found::Json(Value::Object(map), _) if !map.is_empty() => {
                for (i, (k, item)) in map.iter().enumerate() {
                    let locals = Locals {
                        first: Some(i == 0),
                        last: Some(i == map.len() - 1),
                        index: Some(i),
                        key: Some(k),
                    };
                    self.within(item, Some(k), locals, body)?;
                }
                Ok(())
            }
            _ => self.nodes(inverse),
        }
    }

    fn within(
        &mut self,
        value: &'c Value,
        key: Option<&'c str>,
        locals: Locals<'c>,
        body: &'c [Node],
    ) -> Result<(), Unsupported> {
        self.frames.push(Frame { value, key, locals });
        let done = self.nodes(body);
        self.frames.pop();
        done
    }

    fn find(&self, lookup: &'c Lookup) -> Result<Found<'c>, Unsupported> {
        // Handlebars' block list starts at the innermost block.
        let block = |level: usize| self.frames.iter().rev().nth(level);
        match lookup {
            // Only `if` and `unless` take a literal, and only its truthiness counts.
            Lookup::Literal(v) => Ok(Found::Json(v, None)),
            Lookup::Local { level, name } => {
                let locals = block(*level).map(|f| f.locals).unwrap_or_default();
                Ok(match name.as_str() {
                    "first" => locals.first.map_or(Found::Missing, Found::Bool),
                    "last" => locals.last.map_or(Found::Missing, Found::Bool),
                    "index" => locals.index.map_or(Found::Missing, Found::Index),
                    "key" => locals.key.map_or(Found::Missing, Found::Key),
                    _ => Found::Missing,
                })
            }
            Lookup::Path { start, names } => {
                let frame = match start {
                    Start::Root => self.frames.first(),
                    Start::Current => self.frames.last(),
                    // Past the outermost block Handlebars falls back to the innermost.
                    Start::Up(n) => block(*n).or(self.frames.last()),
                };
                let mut at = frame.map(|f| (f.value, f.key));
                for name in names {
                    at = match at {
                        Some((Value::Array(list), key)) => match name.parse::<usize>() {
                            Ok(i) => list.get(i).map(|v| (v, key)),
                            Err(_) => return Err(Unsupported),
                        },
                        Some((Value::Object(map), _)) => map
                            .get_key_value(name.as_str())
                            .map(|(k, v)| (v, Some(k.as_str()))),
                        _ => None,
                    };
                }
                Ok(at.map_or(Found::Missing, |(v, k)| Found::Json(v, k)))
            }
        }
    }

    /// A found value as Handlebars writes it (`JsonRender`), its strings escaped by key.
    fn write(&self, found: &Found, out: &mut String) {
        match found {
            Found::Missing => {}
            Found::Json(value, key) => self.json(value, *key, out),
            Found::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Found::Index(i) => {
                let _ = write!(out, "{i}");
            }
            Found::Key(k) => out.push_str(k),
        }
    }

    /// `{{urlencode x}}`: a string (escaped by key) or an `@key`, percent-encoded. Handlebars
    /// reports any other value (a number, a missing field) as an error.
    fn url_part(&self, found: &Found) -> Result<String, Unsupported> {
        let text = match found {
            Found::Json(Value::String(s), key) => match self.escapes {
                Some(e) => e.for_key(*key)(s),
                None => Cow::Borrowed(s.as_str()),
            },
            Found::Key(k) => Cow::Borrowed(*k),
            _ => return Err(Unsupported),
        };
        Ok(crate::render::helpers::url_part(&text))
    }

    fn json(&self, value: &Value, key: Option<&str>, out: &mut String) {
        match value {
            Value::String(s) => match self.escapes {
                Some(e) => out.push_str(&e.for_key(key)(s)),
                None => out.push_str(s),
            },
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Null => {}
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.json(item, key, out);
                }
                out.push(']');
            }
            Value::Object(_) => out.push_str("[object]"),
        }
    }
}

/// Handlebars' truthiness (`JsonTruthy` without `includeZero`; escaping never empties a string).
fn truthy(found: &Found) -> bool {
    match found {
        Found::Missing => false,
        Found::Json(value, _) => value.is_truthy(false),
        Found::Bool(b) => *b,
        Found::Index(i) => *i != 0,
        Found::Key(k) => !k.is_empty(),
    }
}
