//! The Handlebars helpers every template may use beyond the built-in ones: `urlencode`,
//! `truncate` and `html` (docs/templates.md).

use handlebars::Handlebars;

/// What `{{urlencode x}}` encodes: controls, space, and what would end or extend a URL part
/// (`mailto:{{urlencode appOwnerEmail}}` cannot gain a `?body=` or a second address).
const URL_PART: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'#')
    .add(b'?')
    .add(b'&')
    .add(b'=')
    .add(b'%')
    .add(b',')
    .add(b';')
    .add(b'/')
    .add(b'\\')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'^');

handlebars::handlebars_helper!(urlencode: |text: str| url_part(text));

/// `text` percent-encoded as `{{urlencode text}}` writes it (the direct renderer's too).
pub(super) fn url_part(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, URL_PART).to_string()
}

/// A helper's text argument: a string as it is, null as nothing, anything else as its JSON.
fn text_of(value: &serde_json::Value) -> std::borrow::Cow<'_, str> {
    match value {
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Null => "".into(),
        other => other.to_string().into(),
    }
}

// `<`, `>` and `&` for services that read a little HTML in their text (Google Chat cards). None
// of them is part of a JSON escape, so this is safe on values already escaped for JSON.
handlebars::handlebars_helper!(html: |text: Json| {
    text_of(text).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
});

// `{{truncate text N}}`: the first N characters of `text`, with `…` when it was longer. A JSON
// escape (`\n`, `\"`, `\u00e9`) counts as the one character it stands for and is never cut in
// half, so a value escaped for a JSON body stays valid JSON.
handlebars::handlebars_helper!(truncate: |text: Json, limit: u64| {
    cut(&text_of(text), usize::try_from(limit).unwrap_or(usize::MAX))
});

fn cut(text: &str, limit: usize) -> String {
    // The byte end of each character, an escape being one; one more than `limit` is enough.
    let mut ends: Vec<usize> = Vec::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        let mut end = at + c.len_utf8();
        if c == '\\' {
            let rest = if text[end..].starts_with('u') { 5 } else { 1 };
            for (i, d) in chars.by_ref().take(rest) {
                end = i + d.len_utf8();
            }
        }
        ends.push(end);
        if ends.len() > limit {
            break;
        }
    }
    if ends.len() <= limit {
        return text.to_owned();
    }
    // The ellipsis takes the place of the last character kept.
    let keep = limit.saturating_sub(1);
    let end = keep
        .checked_sub(1)
        .and_then(|i| ends.get(i))
        .copied()
        .unwrap_or(0);
    format!("{}…", &text[..end])
}

/// The names `register` gives its helpers.
pub(super) const NAMES: [&str; 3] = ["urlencode", "html", "truncate"];

pub(super) fn register(registry: &mut Handlebars) {
    registry.register_helper("urlencode", Box::new(urlencode));
    registry.register_helper("html", Box::new(html));
    registry.register_helper("truncate", Box::new(truncate));
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn truncation_counts_characters_and_keeps_escapes_whole() {
        assert_eq!(cut("abcdef", 10), "abcdef");
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("åäöåäö", 3), "åä…");
        // `\n` and `\u00e9` are one character each.
        assert_eq!(cut(r"a\nb\u00e9c", 5), r"a\nb\u00e9c");
        assert_eq!(cut(r"a\nb\u00e9cd", 5), r"a\nb\u00e9…");
        for n in 1..12 {
            let text = cut(r#"x\"y\\z\u00e9\n"#.repeat(3).as_str(), n);
            let json = format!("\"{text}\"");
            assert!(serde_json::from_str::<String>(&json).is_ok(), "{n}: {json}");
        }
    }
}
