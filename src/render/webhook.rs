//! The body of a `type: webhook` destination: its template with every value escaped for the
//! body's content type, `vars` as placeholders (the sender fills them in), JSON checked.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::chat::{with_strings, Escapes};
use super::escape::{json_string_body, then};
use super::templates::{Data, TemplateId, Templates};
use super::{vars, RenderError};
use crate::config::WebhookConfig;

/// Renders template `id` for webhook `w`. A JSON body must parse; it is sent compact.
pub(super) fn render(
    templates: &Templates,
    id: TemplateId,
    origin: &str,
    ctx: &Value,
    w: &WebhookConfig,
) -> Result<String, RenderError> {
    let mut escaped = if w.is_json() {
        fn json(t: &str) -> Cow<'_, str> {
            then(vars::strip_marks(t), json_string_body)
        }
        with_strings(
            ctx,
            templates.reads(id),
            &Escapes {
                text: &json,
                url: &json,
                label: &json,
            },
        )
    } else {
        let plain = &vars::strip_marks;
        with_strings(
            ctx,
            templates.reads(id),
            &Escapes {
                text: plain,
                url: plain,
                label: plain,
            },
        )
    };
    if let Some(map) = escaped.as_object_mut() {
        let placeholders: serde_json::Map<String, Value> = w
            .vars
            .iter()
            .map(|(name, _)| (name.clone(), json!(vars::placeholder(name))))
            .collect();
        map.insert("vars".to_owned(), Value::Object(placeholders));
    }
    let body = templates.render_data(id, &Data::from(escaped))?;
    if !w.is_json() {
        return Ok(body);
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(value) => Ok(value.to_string()),
        Err(e) => Err(RenderError::InvalidJson {
            template: origin.to_owned(),
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// The last resort, no template involved: `{"text": line}` for a JSON body (what Google Chat,
/// Mattermost and most chat webhooks read), else the line.
pub(super) fn one_line(line: &str, w: &WebhookConfig) -> String {
    let line = vars::strip_marks(line);
    if w.is_json() {
        json!({ "text": line }).to_string()
    } else {
        line.into_owned()
    }
}
