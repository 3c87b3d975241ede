//! What Slack and Teams receive apart from the template: the context's strings escaped for a
//! JSON payload, and the built-in basic message (one line and the buttons).

use serde_json::{json, Value};

use super::escape::map_strings;

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

/// A copy of the context with every string passed through `text`, or `url` for URL keys.
pub(super) fn with_strings(
    ctx: &Value,
    text: &dyn Fn(&str) -> String,
    url: &dyn Fn(&str) -> String,
) -> Value {
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
