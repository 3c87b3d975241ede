//! What Slack and Teams receive apart from the template: the context's strings escaped for a
//! JSON payload, and the built-in basic message (one line and the buttons).

use std::borrow::Cow;

use serde_json::{json, Value};

use super::reads::Reads;

/// Context keys whose values are URLs: JSON-escaped but never given Slack entities, so links work.
fn is_url_key(key: &str) -> bool {
    matches!(
        key,
        "url"
            | "appUrl"
            | "automationUrl"
            | "tenantUrl"
            | "appThumbnail"
            | "appOwnerPicture"
            | "qlikSenseQMC"
            | "qlikSenseHub"
    )
}

/// Context keys whose values are link labels from the config (`links:` and the built-in "Open
/// app", "Hub", "Console"): chat services show them as button titles, which are not Markdown.
fn is_label_key(key: &str) -> bool {
    matches!(key, "text" | "linkText")
}

/// How each kind of context string is escaped for one destination.
pub(super) struct Escapes<'a> {
    /// Values from Qlik (names, errors, logs): made safe for where they are shown.
    pub text: &'a dyn Fn(&str) -> Cow<'_, str>,
    /// URL keys.
    pub url: &'a dyn Fn(&str) -> Cow<'_, str>,
    /// Link labels (button titles).
    pub label: &'a dyn Fn(&str) -> Cow<'_, str>,
}

impl Escapes<'_> {
    /// The escape of a string under `key`: the nearest object key above it (a list's items are
    /// escaped as the list's key says: `appTags`, `engineErrors` are text).
    pub(super) fn for_key(&self, key: Option<&str>) -> &dyn Fn(&str) -> Cow<'_, str> {
        match key {
            Some(k) if is_url_key(k) => self.url,
            Some(k) if is_label_key(k) => self.label,
            _ => self.text,
        }
    }
}

/// A copy of what of the context a template `reads`, every string passed through the escape its
/// key calls for.
pub(super) fn with_strings(ctx: &Value, reads: &Reads, escapes: &Escapes) -> Value {
    fn walk(value: &mut Value, key: Option<&str>, e: &Escapes) {
        match value {
            Value::String(s) => {
                // Most values need no escaping: the copy is then the only allocation.
                let escaped = match e.for_key(key)(s) {
                    Cow::Owned(escaped) => Some(escaped),
                    Cow::Borrowed(_) => None,
                };
                if let Some(escaped) = escaped {
                    *s = escaped;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, key, e)),
            Value::Object(map) => map.iter_mut().for_each(|(k, v)| walk(v, Some(k), e)),
            _ => {}
        }
    }
    let mut out = reads.copy(ctx);
    walk(&mut out, None, escapes);
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

pub(super) fn basic_slack(text: &str, ctx: &Value) -> Value {
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

pub(super) fn basic_teams(text: &str, ctx: &Value) -> Value {
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
