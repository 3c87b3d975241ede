//! Escaping by destination, so that no value can break a payload whatever it holds.
//!
//! Email HTML uses Handlebars' own HTML escaping of `{{x}}`. For Slack and Teams the *values* are
//! escaped before rendering (JSON string escaping, plus Slack's `& < >` entities), so `{{x}}` and
//! `{{{x}}}` are equally safe inside a JSON string of the template.

use serde_json::Value;

/// The body of a JSON string literal for `text` (what goes between the quotes).
pub fn json_string_body(text: &str) -> String {
    let quoted = Value::String(text.to_owned()).to_string();
    // A serialized JSON string always starts and ends with a quote.
    quoted[1..quoted.len() - 1].to_owned()
}

/// Slack's control characters in mrkdwn and plain text: `&`, `<`, `>` (and nothing else).
pub fn slack_entities(text: &str) -> String {
    if !text.contains(['&', '<', '>']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Text that goes into a single-line header (an email subject): line breaks and other control
/// characters become spaces, so a value can never start a new header.
pub fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Applies `f` to every string of a JSON tree, except the values of keys that `skip` names.
pub fn map_strings(value: &mut Value, skip: &dyn Fn(&str) -> bool, f: &dyn Fn(&str) -> String) {
    match value {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| map_strings(v, skip, f)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if !skip(key) {
                    map_strings(v, skip, f);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_parse_back_to_the_original() {
        for text in [
            "plain",
            "q\"uote",
            "back\\slash",
            "new\nline\ttab\r",
            "\u{0}\u{1f}",
            "🚀 \u{202e}rtl",
            "</script>",
        ] {
            let body = json_string_body(text);
            let parsed: String =
                serde_json::from_str(&format!("\"{body}\"")).expect("valid JSON string");
            assert_eq!(parsed, text);
        }
    }

    #[test]
    fn slack_escapes_exactly_three_characters() {
        assert_eq!(
            slack_entities("a & b <c> \"d\" 'e'"),
            "a &amp; b &lt;c&gt; \"d\" 'e'"
        );
    }

    #[test]
    fn single_line_removes_breaks() {
        assert_eq!(single_line("a\r\nBcc: x\tz"), "a  Bcc: x z");
    }
}
