//! What rendering makes: one destination's message, a chat message possibly still as its text.

use serde_json::Value;

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
    /// A webhook destination's body, `vars` still placeholders.
    Webhook(String),
    /// A Slack or Teams message that keeps every limit as its template rendered it (see
    /// `as_is.rs`): stored and sent as this text. [`Rendered::tree`] gives the `Slack` or
    /// `Teams` form.
    ChatText {
        teams: bool,
        body: ChatText,
    },
}

/// A rendered chat message as text: one JSON value (checked when it was made).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatText(String);

impl ChatText {
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The message as a JSON tree.
    pub fn value(&self) -> Value {
        // Valid JSON by construction: it parsed when it was made.
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

impl Rendered {
    /// The message with a chat text as its JSON tree (`Slack` or `Teams`).
    pub fn tree(self) -> Rendered {
        match self {
            Rendered::ChatText { teams, body } => {
                let tree = body.value();
                match teams {
                    true => Rendered::Teams(tree),
                    false => Rendered::Slack(tree),
                }
            }
            other => other,
        }
    }
}

/// `text` as a chat text, when `keeps_limits` accepts it as it is (which it does only for
/// valid JSON).
pub(super) fn chat_text(text: String, keeps_limits: fn(&str) -> bool) -> Result<ChatText, String> {
    match keeps_limits(&text) {
        true => Ok(ChatText(text)),
        false => Err(text),
    }
}
