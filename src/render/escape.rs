//! Escaping by destination, so that no value can break a payload whatever it holds.
//!
//! Email HTML uses Handlebars' own HTML escaping of `{{x}}`. For Slack and Teams the *values* are
//! escaped before rendering (JSON string escaping, plus Slack's `& < >` entities), so `{{x}}` and
//! `{{{x}}}` are equally safe inside a JSON string of the template.

use std::borrow::Cow;

use serde_json::Value;

/// `f` applied to what an earlier escape gave: borrowed as long as neither changed anything,
/// so a value with nothing to escape is never copied.
pub fn then<'a>(text: Cow<'a, str>, f: impl Fn(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    let changed = match f(&text) {
        Cow::Owned(changed) => Some(changed),
        Cow::Borrowed(_) => None,
    };
    changed.map_or(text, Cow::Owned)
}

/// No escaping: for the keys a destination shows as they are.
pub fn unchanged(text: &str) -> Cow<'_, str> {
    Cow::Borrowed(text)
}

/// The body of a JSON string literal for `text` (what goes between the quotes).
pub fn json_string_body(text: &str) -> Cow<'_, str> {
    // What serde_json escapes: the quote, the backslash and control characters. Most values
    // have none of them, and are their own body.
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return Cow::Borrowed(text);
    }
    // Serializing a string cannot fail.
    let mut quoted = serde_json::to_string(text).unwrap_or_default();
    // A serialized JSON string always starts and ends with a quote.
    quoted.pop();
    if !quoted.is_empty() {
        quoted.remove(0);
    }
    Cow::Owned(quoted)
}

/// Slack's control characters in mrkdwn and plain text: `&`, `<`, `>` (and nothing else).
pub fn slack_entities(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>']) {
        return Cow::Borrowed(text);
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
    Cow::Owned(out)
}

/// Text that goes into a single-line header (an email subject): line breaks and other control
/// characters become spaces, so a value can never start a new header.
pub fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Whether `c` may stand in a message: not a control character other than newline and tab, and
/// not a bidirectional formatting character (U+202E, right-to-left override, shows `gnp.exe` as
/// `exe.png`).
fn is_visible(c: char) -> bool {
    let control = c.is_control() && c != '\n' && c != '\t';
    let bidi = matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    !(control || bidi)
}

/// Drops, in place, what no message should carry from a value that came from Qlik users (see
/// [`is_visible`]); newlines and tabs stay.
pub fn keep_visible(text: &mut String) {
    // Printable ASCII, newlines and tabs are visible; most texts are only that.
    let plain = text
        .bytes()
        .all(|b| matches!(b, b' '..=b'~' | b'\n' | b'\t'));
    if !plain && !text.chars().all(is_visible) {
        text.retain(is_visible);
    }
}

/// Teams renders TextBlock texts and fact values as Markdown: a value's own `[text](url)`,
/// `![image](url)`, `<url>`, emphasis or code marks are escaped with a backslash, so only the
/// template's own Markdown has effect.
pub fn teams_markdown(text: &str) -> Cow<'_, str> {
    // `[` and `]` are enough to stop links and images (`](` and `![` need them), `<` `>` stop
    // autolinks; the rest are emphasis and code marks.
    const SPECIAL: &[char] = &['\\', '`', '*', '_', '[', ']', '<', '>', '~'];
    if !text.contains(SPECIAL) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// A value inside a Slack code block must not close it: a run of three or more backticks gets a
/// zero-width space after each backtick, so it reads the same and fences nothing.
pub fn slack_fences(text: &str) -> Cow<'_, str> {
    if !text.contains("```") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        out.push(c);
        if c == '`' {
            out.push('\u{200B}');
        }
    }
    Cow::Owned(out)
}

/// Applies `f` to every string of a JSON tree, in place.
pub fn strings_in_place(value: &mut Value, f: &dyn Fn(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| strings_in_place(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| strings_in_place(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_dropped_newlines_and_tabs_kept() {
        let mut text = "a\u{0}b\u{7}c\u{202E}gnp.exe\u{2066}\r\nline\ttab\u{85}".to_owned();
        keep_visible(&mut text);
        assert_eq!(text, "abcgnp.exe\nline\ttab");
    }

    #[test]
    fn every_ascii_character_is_judged_as_by_the_full_check() {
        for byte in 0u8..128 {
            let mut text = format!("x{}y", byte as char);
            let mut expected = text.clone();
            expected.retain(is_visible);
            keep_visible(&mut text);
            assert_eq!(text, expected, "byte {byte:#04x}");
        }
    }

    #[test]
    fn teams_markdown_escapes_links_images_and_emphasis() {
        assert_eq!(
            teams_markdown("[x](http://e) ![i](u) *b* <http://e>"),
            "\\[x\\](http://e) !\\[i\\](u) \\*b\\* \\<http://e\\>"
        );
        assert_eq!(teams_markdown("plain text, 42."), "plain text, 42.");
    }

    #[test]
    fn slack_fences_cannot_close_a_code_block() {
        let broken = slack_fences("x ``` y");
        assert!(!broken.contains("```"));
        assert_eq!(broken.replace('\u{200B}', ""), "x ``` y");
        assert_eq!(slack_fences("one `tick`"), "one `tick`");
    }

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
