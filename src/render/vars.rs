//! A webhook destination's `vars`: templates see placeholders, the sender fills in the values.

use crate::config::Secret;

/// What a template sees as `vars.NAME`: a placeholder that [`fill`] replaces when the body
/// is sent, so that the stored body never holds the value (it may be a secret). Marked with
/// private-use characters, which [`strip_marks`] takes out of every value from Qlik first.
pub fn placeholder(name: &str) -> String {
    format!("\u{E000}{name}\u{E001}")
}

/// `text` without the placeholder marks: a value from Qlik can never pose as a placeholder.
pub fn strip_marks(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\u{E000}', '\u{E001}']) {
        text.replace(['\u{E000}', '\u{E001}'], "").into()
    } else {
        text.into()
    }
}

/// The body to send: each placeholder replaced by its value (JSON-escaped in a JSON body). A
/// placeholder of a variable the config no longer has becomes empty.
pub fn fill(body: &str, vars: &[(String, Secret)], json: bool) -> String {
    if !body.contains('\u{E000}') {
        return body.to_owned();
    }
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find('\u{E000}') {
        out.push_str(&rest[..start]);
        let after = &rest[start + '\u{E000}'.len_utf8()..];
        let Some(end) = after.find('\u{E001}') else {
            rest = after;
            continue;
        };
        let name = &after[..end];
        if let Some((_, value)) = vars.iter().find(|(n, _)| n == name) {
            if json {
                out.push_str(&super::escape::json_string_body(value.expose()));
            } else {
                out.push_str(value.expose());
            }
        }
        rest = &after[end + '\u{E001}'.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// A body for people to read (the console, `render`): JSON pretty-printed, each placeholder
/// shown as `<vars.NAME>`, never its value.
pub fn shown(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| body.to_owned()),
        Err(_) => body.to_owned(),
    };
    text.replace('\u{E000}', "<vars.").replace('\u{E001}', ">")
}

#[cfg(test)]
mod tests {
    use crate::config::Secret;

    #[test]
    fn vars_are_filled_in_when_sent() {
        let vars = vec![
            ("key".to_owned(), Secret::new("a\"b".to_owned())),
            ("sev".to_owned(), Secret::new("error".to_owned())),
        ];
        let body = format!(
            "{{\"k\":\"{}\",\"s\":\"{}\",\"gone\":\"{}\"}}",
            super::placeholder("key"),
            super::placeholder("sev"),
            super::placeholder("old")
        );
        let sent = super::fill(&body, &vars, true);
        assert_eq!(sent, r#"{"k":"a\"b","s":"error","gone":""}"#);
        assert!(serde_json::from_str::<serde_json::Value>(&sent).is_ok());
        assert_eq!(
            super::fill(&body, &vars, false).split('"').nth(3),
            Some("a")
        );
        assert_eq!(super::fill("plain", &vars, true), "plain");
        assert!(
            super::shown(&body).contains("\"k\": \"<vars.key>\""),
            "{}",
            super::shown(&body)
        );
    }
}
