//! Escaping by destination, so that no value can break a payload whatever it holds.
//!
//! Email HTML escapes `{{x}}` as Handlebars does ([`html`]). For Slack and Teams the *values* are
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

/// Teams Markdown's marks: `[` and `]` are enough to stop links and images (`](` and `![` need
/// them), `<` `>` stop autolinks; the rest are emphasis and code marks.
const TEAMS_MARKDOWN: &[u8] = b"\\`*_[]<>~";
/// The same as a table: a look-up per byte, not a search.
const TEAMS_MARKS: [bool; 256] = byte_set(TEAMS_MARKDOWN);
/// What JSON escapes in a string: the quote, the backslash and control characters.
const JSON_SPECIAL: [bool; 256] = with_json(byte_set(b""));
/// What a Slack text value changes in a JSON template: JSON's bytes and Slack's entities.
const SLACK_JSON: [bool; 256] = with_json(byte_set(b"&<>"));
/// The same and the backtick, which starts a fence.
const SLACK_JSON_OR_TICK: [bool; 256] = with_json(byte_set(b"&<>`"));
/// What a Teams text value changes in a JSON template: JSON's bytes and the Markdown marks.
const TEAMS_JSON: [bool; 256] = with_json(TEAMS_MARKS);

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

/// `table` with what JSON escapes added.
const fn with_json(mut table: [bool; 256]) -> [bool; 256] {
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
}

/// No escaping: for the keys a destination shows as they are.
pub fn unchanged(text: &str) -> Cow<'_, str> {
    Cow::Borrowed(text)
}

/// The body of a JSON string literal for `text` (what goes between the quotes), escaped as
/// serde_json writes strings.
pub fn json_string_body(text: &str) -> Cow<'_, str> {
    replace_ascii(text, |b| JSON_SPECIAL[usize::from(b)], push_json_escape)
}

/// JSON's escape of `b`, one of [`JSON_SPECIAL`]: the short forms, `\u00XX` for the other
/// control characters (lowercase, as serde_json writes them).
fn push_json_escape(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        _ => {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// A Slack text value for a JSON template in one pass: [`slack_fences`], then
/// [`slack_entities`], then [`json_string_body`].
pub fn slack_json_text(text: &str) -> Cow<'_, str> {
    // A backtick matters only in a run of three (a fence); most texts have neither kind of byte,
    // and one scan tells.
    match text
        .bytes()
        .position(|b| SLACK_JSON_OR_TICK[usize::from(b)])
    {
        None => Cow::Borrowed(text),
        Some(at) if text[at..].contains("```") => {
            then(then(slack_fences(text), slack_entities), json_string_body)
        }
        Some(_) => replace_ascii(
            text,
            |b| SLACK_JSON[usize::from(b)],
            |b, out| match b {
                b'&' | b'<' | b'>' => push_entity(b, out),
                _ => push_json_escape(b, out),
            },
        ),
    }
}

/// A Teams text value for a JSON template in one pass: [`teams_markdown`], then
/// [`json_string_body`] (a mark's backslash is itself escaped for JSON).
pub fn teams_json_text(text: &str) -> Cow<'_, str> {
    replace_ascii(
        text,
        |b| TEAMS_JSON[usize::from(b)],
        |b, out| match TEAMS_MARKS[usize::from(b)] {
            true => {
                out.push_str("\\\\");
                match JSON_SPECIAL[usize::from(b)] {
                    true => push_json_escape(b, out),
                    false => out.push(char::from(b)),
                }
            }
            false => push_json_escape(b, out),
        },
    )
}

/// Handlebars' HTML escaping of `{{x}}` (`handlebars::html_escape`: `<`, `>`, `"`, `&`, `'`,
/// backtick, `=`), the same entities, but with runs of other text copied whole: Handlebars' own
/// pushes one character at a time into a string that grows as it goes.
pub fn html(text: &str) -> String {
    let special = |b| matches!(b, b'<' | b'>' | b'"' | b'&' | b'\'' | b'`' | b'=');
    replace_ascii(text, special, push_html_entity).into_owned()
}

fn push_html_entity(b: u8, out: &mut String) {
    out.push_str(match b {
        b'<' => "&lt;",
        b'>' => "&gt;",
        b'"' => "&quot;",
        b'&' => "&amp;",
        b'\'' => "&#x27;",
        b'`' => "&#x60;",
        _ => "&#x3D;",
    })
}

/// Slack's control characters in mrkdwn and plain text: `&`, `<`, `>` (and nothing else).
pub fn slack_entities(text: &str) -> Cow<'_, str> {
    replace_ascii(text, |b| matches!(b, b'&' | b'<' | b'>'), push_entity)
}

/// Slack's entity for `&`, `<` or `>`.
fn push_entity(b: u8, out: &mut String) {
    out.push_str(match b {
        b'&' => "&amp;",
        b'<' => "&lt;",
        _ => "&gt;",
    })
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
    if !is_plain_ascii(text.as_bytes()) && !text.chars().all(is_visible) {
        text.retain(is_visible);
    }
}

/// Whether every byte is printable ASCII, a newline or a tab. Checked 32 bytes at a time without
/// an early exit inside a block, which the compiler makes vector instructions of (the script
/// log's lines are an alert's longest texts).
fn is_plain_ascii(bytes: &[u8]) -> bool {
    let plain = |b: u8| (b.wrapping_sub(b' ') < 95) | (b == b'\n') | (b == b'\t');
    let mut blocks = bytes.chunks_exact(32);
    blocks
        .by_ref()
        .all(|block| block.iter().fold(true, |all, &b| all & plain(b)))
        && blocks.remainder().iter().all(|&b| plain(b))
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
    fn html_escapes_exactly_as_handlebars_does() {
        for text in [
            "",
            "plain text, nothing to escape",
            "<b>\"Sales\" & 'EU'</b> `x` a=b",
            "ÅÄÖ <→> 🚨&amp;",
            "&<>\"'`=",
        ] {
            assert_eq!(html(text), handlebars::html_escape(text), "{text}");
        }
    }

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
    fn a_character_anywhere_in_a_long_text_is_judged_as_by_the_full_check() {
        // Blocks of 32 bytes and the rest after them: each byte at each place of 70.
        for c in (0u8..128)
            .map(char::from)
            .chain(['\u{202E}', '\u{85}', 'ä'])
        {
            for at in 0..70 {
                let mut text: String = (0..70).map(|i| if i == at { c } else { 'a' }).collect();
                let mut expected = text.clone();
                expected.retain(is_visible);
                keep_visible(&mut text);
                assert_eq!(text, expected, "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn the_one_pass_escapes_are_the_escapes_in_turn() {
        let mut texts: Vec<String> = (0u8..128)
            .flat_map(|b| {
                let c = char::from(b);
                [
                    format!("x{c}y"),
                    format!("{c}{c}{c}"),
                    format!("ä{c}\u{202e}"),
                ]
            })
            .collect();
        texts.extend(
            [
                "",
                "Sales_2024 [EU] *ä* ✓",
                "a ``` b & <c> \"q\"\n",
                "\\*\\\u{1}",
            ]
            .map(String::from),
        );
        for text in &texts {
            let slack = then(then(slack_fences(text), slack_entities), json_string_body);
            let teams = then(teams_markdown(text), json_string_body);
            assert_eq!(slack_json_text(text), slack, "{text:?}");
            assert_eq!(teams_json_text(text), teams, "{text:?}");
            // Nothing to escape: borrowed, never copied.
            assert_eq!(
                matches!(slack_json_text(text), Cow::Borrowed(_)),
                slack == **text
            );
            assert_eq!(
                matches!(teams_json_text(text), Cow::Borrowed(_)),
                teams == **text
            );
        }
    }

    #[test]
    fn json_bodies_are_what_serde_json_writes() {
        for b in 0u8..128 {
            let text = format!("a{}ü", char::from(b));
            let quoted = serde_json::to_string(&text).expect("a string serializes");
            assert_eq!(
                json_string_body(&text),
                quoted[1..quoted.len() - 1],
                "byte {b:#04x}"
            );
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
