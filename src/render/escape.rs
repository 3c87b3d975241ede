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

/// The bytes that some escape of a chat destination changes, besides JSON's own (the quote, the
/// backslash, control characters). All are ASCII, so a byte scan finds them in any UTF-8 text.
pub struct Special([bool; 256]);

impl Special {
    const fn of(extra: &[u8]) -> Special {
        let mut table = byte_set(extra);
        let mut b = 0;
        while b < 0x20 {
            table[b] = true;
            b += 1;
        }
        table[b'"' as usize] = true;
        table[b'\\' as usize] = true;
        Special(table)
    }

    /// Whether `text` has none of these bytes: every escape of the set leaves it as it is.
    pub fn absent_from(&self, text: &str) -> bool {
        !text.bytes().any(|b| self.0[b as usize])
    }
}

/// What Slack's escapes change: [`slack_entities`], [`slack_fences`], [`json_string_body`].
pub const SLACK_SPECIAL: Special = Special::of(b"&<>`");
/// What Teams' escapes change: [`teams_markdown`], [`json_string_body`].
pub const TEAMS_SPECIAL: Special = Special::of(TEAMS_MARKDOWN);

/// Teams Markdown's marks: `[` and `]` are enough to stop links and images (`](` and `![` need
/// them), `<` `>` stop autolinks; the rest are emphasis and code marks.
const TEAMS_MARKDOWN: &[u8] = b"\\`*_[]<>~";
/// The same as a table: a look-up per byte, not a search.
const TEAMS_MARKS: [bool; 256] = byte_set(TEAMS_MARKDOWN);

/// A table of `bytes`, for a look-up per byte.
const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
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
    replace_ascii(
        text,
        |b| matches!(b, b'&' | b'<' | b'>'),
        |b, out| {
            out.push_str(match b {
                b'&' => "&amp;",
                b'<' => "&lt;",
                _ => "&gt;",
            })
        },
    )
}

/// `text` with each ASCII byte that `special` picks replaced by what `replace` writes; runs of
/// other text are copied whole. Borrowed when there is none.
fn replace_ascii(
    text: &str,
    special: impl Fn(u8) -> bool,
    replace: impl Fn(u8, &mut String),
) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let Some(first) = bytes.iter().position(|&b| special(b)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if special(b) {
            // An ASCII byte never sits inside a multi-byte character: `i` is a boundary.
            out.push_str(&text[start..i]);
            replace(b, &mut out);
            start = i + 1;
        }
    }
    out.push_str(&text[start..]);
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
    replace_ascii(
        text,
        |b| TEAMS_MARKS[usize::from(b)],
        |b, out| {
            out.push('\\');
            out.push(char::from(b));
        },
    )
}

/// A value inside a Slack code block must not close it: a run of three or more backticks gets a
/// zero-width space after each backtick, so it reads the same and fences nothing.
pub fn slack_fences(text: &str) -> Cow<'_, str> {
    if !text.as_bytes().windows(3).any(|w| w == b"```") {
        return Cow::Borrowed(text);
    }
    replace_ascii(text, |b| b == b'`', |_, out| out.push_str("`\u{200B}"))
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
    fn a_text_without_special_bytes_is_left_as_it_is_by_every_escape() {
        fn slack(t: &str) -> Cow<'_, str> {
            then(then(slack_fences(t), slack_entities), json_string_body)
        }
        fn teams(t: &str) -> Cow<'_, str> {
            then(teams_markdown(t), json_string_body)
        }
        for byte in 0u8..128 {
            let c = byte as char;
            for text in [format!("x{c}y"), format!("{c}{c}{c}")] {
                for (special, escaped) in [
                    (&SLACK_SPECIAL, slack(&text)),
                    (&TEAMS_SPECIAL, teams(&text)),
                ] {
                    if special.absent_from(&text) {
                        assert_eq!(escaped, text, "byte {byte:#04x}");
                    } else {
                        assert!(byte < 0x20 || !byte.is_ascii_alphanumeric(), "{byte:#04x}");
                    }
                }
            }
        }
        assert!(SLACK_SPECIAL.absent_from("Sales_2024 [EU] *ä* ✓"));
        assert!(!TEAMS_SPECIAL.absent_from("Sales_2024"));
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
