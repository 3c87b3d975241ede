//! Holds rendered Slack and Teams payloads to the services' limits. Long texts are cut with a
//! visible marker; the result is always a valid payload, never one the service would reject for
//! its size. Limits: shared fixtures `qlik/slack-teams.md`.

use serde_json::{json, Map, Value};

use super::context::CUT_MARKER;

pub const SLACK_MAX_BLOCKS: usize = 50;
pub const SLACK_HEADER_CHARS: usize = 150;
pub const SLACK_SECTION_CHARS: usize = 3000;
pub const SLACK_FIELD_CHARS: usize = 2000;
pub const SLACK_MAX_FIELDS: usize = 10;
pub const SLACK_CONTEXT_CHARS: usize = 2000;
pub const SLACK_MAX_CONTEXT_ELEMENTS: usize = 10;
/// Notification text: Slack truncates at 40,000; 4,000 is its practical guidance.
pub const SLACK_TEXT_CHARS: usize = 4000;
/// The whole Slack payload, serialized.
pub const SLACK_MAX_BYTES: usize = 40_000;
/// The whole Teams Workflows payload, serialized: Teams rejects about 28 KB.
pub const TEAMS_MAX_BYTES: usize = 27_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the payload is not a JSON object")]
    NotAnObject,
    #[error("the payload has neither `text` nor `blocks`")]
    NoText,
    #[error("`blocks` is not a list")]
    BlocksNotAList,
    #[error("the Teams payload must be {{\"type\": \"message\", \"attachments\": [...]}} with an Adaptive Card")]
    NotATeamsMessage,
    #[error("the payload stays over {limit} bytes even with every long text cut")]
    TooLarge { limit: usize },
}

/// Fits a Slack message; returns how many texts were cut or blocks dropped.
pub fn fit_slack(payload: &mut Value) -> Result<usize, LimitError> {
    let root = payload.as_object_mut().ok_or(LimitError::NotAnObject)?;
    if !root.contains_key("text") && !root.contains_key("blocks") {
        return Err(LimitError::NoText);
    }
    let mut cuts = 0;
    if let Some(Value::String(text)) = root.get_mut("text") {
        cuts += cut(text, SLACK_TEXT_CHARS);
    }
    if let Some(blocks) = root.get_mut("blocks") {
        let blocks = blocks.as_array_mut().ok_or(LimitError::BlocksNotAList)?;
        if blocks.len() > SLACK_MAX_BLOCKS {
            let dropped = blocks.len() - (SLACK_MAX_BLOCKS - 1);
            blocks.truncate(SLACK_MAX_BLOCKS - 1);
            blocks.push(json!({"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("… {dropped} more blocks not shown")}
            ]}));
            cuts += 1;
        }
        for block in blocks.iter_mut().filter_map(Value::as_object_mut) {
            cuts += fit_block(block);
        }
    }
    cuts += fit_bytes(payload, SLACK_MAX_BYTES)?;
    Ok(cuts)
}

fn fit_block(block: &mut Map<String, Value>) -> usize {
    let mut cuts = 0;
    match block.get("type").and_then(Value::as_str) {
        Some("header") => cuts += fit_text_object(block.get_mut("text"), SLACK_HEADER_CHARS),
        Some("section") => {
            cuts += fit_text_object(block.get_mut("text"), SLACK_SECTION_CHARS);
            if let Some(Value::Array(fields)) = block.get_mut("fields") {
                if fields.len() > SLACK_MAX_FIELDS {
                    fields.truncate(SLACK_MAX_FIELDS);
                    cuts += 1;
                }
                for field in fields.iter_mut() {
                    cuts += fit_text_object(Some(field), SLACK_FIELD_CHARS);
                }
            }
        }
        Some("context") => {
            if let Some(Value::Array(elements)) = block.get_mut("elements") {
                if elements.len() > SLACK_MAX_CONTEXT_ELEMENTS {
                    elements.truncate(SLACK_MAX_CONTEXT_ELEMENTS);
                    cuts += 1;
                }
                for element in elements.iter_mut() {
                    cuts += fit_text_object(Some(element), SLACK_CONTEXT_CHARS);
                }
            }
        }
        _ => {}
    }
    cuts
}

/// A Slack text object `{"type": "mrkdwn"|"plain_text", "text": ...}`: cut to `max`, and never
/// empty (Slack rejects an empty text with invalid_blocks).
fn fit_text_object(object: Option<&mut Value>, max: usize) -> usize {
    let Some(Value::String(text)) = object.and_then(|o| o.get_mut("text")) else {
        return 0;
    };
    if text.trim().is_empty() {
        *text = "–".to_owned();
        return 0;
    }
    cut(text, max)
}

/// Fits a Teams Workflows message (the `{"type":"message","attachments":[card]}` envelope).
pub fn fit_teams(payload: &mut Value) -> Result<usize, LimitError> {
    let is_message = payload.get("type").and_then(Value::as_str) == Some("message")
        && payload
            .get("attachments")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                !a.is_empty()
                    && a.iter().all(|att| {
                        att.pointer("/content/type").and_then(Value::as_str) == Some("AdaptiveCard")
                    })
            });
    if !is_message {
        return Err(LimitError::NotATeamsMessage);
    }
    fit_bytes(payload, TEAMS_MAX_BYTES)
}

/// Cuts the longest texts of the tree, halving one at a time, until the serialized payload is
/// at most `limit` bytes.
fn fit_bytes(payload: &mut Value, limit: usize) -> Result<usize, LimitError> {
    let mut cuts = 0;
    while serialized_len(payload) > limit {
        let Some(longest) = longest_string(payload) else {
            return Err(LimitError::TooLarge { limit });
        };
        let chars = longest.chars().count();
        if chars <= 64 {
            return Err(LimitError::TooLarge { limit });
        }
        cut(longest, chars / 2);
        cuts += 1;
    }
    Ok(cuts)
}

fn serialized_len(value: &Value) -> usize {
    /// Counts the bytes instead of keeping them.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

fn longest_string(value: &mut Value) -> Option<&mut String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) => items
            .iter_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        Value::Object(map) => map
            .values_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        _ => None,
    }
}

/// Cuts `text` to at most `max` characters including the marker; returns 1 if it cut. The cut
/// never splits a Slack entity (`&amp;`) and closes a code block it opened.
pub fn cut(text: &mut String, max: usize) -> usize {
    if text.chars().count() <= max {
        return 0;
    }
    let marker = CUT_MARKER.trim_start();
    let keep = max.saturating_sub(marker.chars().count() + 4);
    let mut end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    if let Some(amp) = text[..end].rfind('&') {
        if !text[amp..end].contains(';') && end - amp <= 5 {
            end = amp;
        }
    }
    text.truncate(end);
    text.push(' ');
    text.push_str(marker);
    if text.matches("```").count() % 2 == 1 {
        text.push_str("```");
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_entities_whole_and_closes_code_blocks() {
        let mut s = format!("```{}", "a&amp;".repeat(1000));
        assert_eq!(cut(&mut s, 100), 1);
        assert!(s.chars().count() <= 100, "{}", s.chars().count());
        assert!(s.ends_with("```"));
        let body = s
            .trim_end_matches("```")
            .trim_end_matches(CUT_MARKER.trim_start())
            .trim_end();
        assert!(body.ends_with("a&amp;") || body.ends_with('a'), "{body}");
    }

    #[test]
    fn slack_limits_are_enforced() {
        let blocks: Vec<Value> = (0..60)
            .map(|_| json!({"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(5000)}}))
            .collect();
        let header =
            json!({"type": "header", "text": {"type": "plain_text", "text": "h".repeat(300)}});
        let all: Vec<Value> = std::iter::once(header).chain(blocks).collect();
        let mut payload = json!({"text": "y".repeat(50_000), "blocks": all});
        assert!(fit_slack(&mut payload).expect("fits") > 0);
        let blocks = payload["blocks"].as_array().expect("blocks");
        assert_eq!(blocks.len(), SLACK_MAX_BLOCKS);
        assert!(
            blocks[0]["text"]["text"]
                .as_str()
                .expect("header")
                .chars()
                .count()
                <= SLACK_HEADER_CHARS
        );
        for b in &blocks[1..49] {
            assert!(
                b["text"]["text"].as_str().expect("text").chars().count() <= SLACK_SECTION_CHARS
            );
        }
        assert!(serde_json::to_vec(&payload).expect("json").len() <= SLACK_MAX_BYTES);
    }

    #[test]
    fn empty_slack_texts_are_filled() {
        let mut payload =
            json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": " "}}]});
        fit_slack(&mut payload).expect("fits");
        assert_eq!(payload["blocks"][0]["text"]["text"], "–");
    }

    #[test]
    fn teams_payloads_are_held_under_the_byte_limit() {
        let mut payload = json!({"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"type": "AdaptiveCard", "version": "1.4", "body": [
                {"type": "TextBlock", "text": "z".repeat(100_000)},
                {"type": "TextBlock", "text": "w".repeat(30_000)}
            ]}
        }]});
        assert!(fit_teams(&mut payload).expect("fits") > 0);
        assert!(serde_json::to_vec(&payload).expect("json").len() <= TEAMS_MAX_BYTES);
        assert!(fit_teams(&mut json!({"text": "legacy"})).is_err());
    }
}
