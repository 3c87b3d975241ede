//! Whether a rendered Slack or Teams message already keeps every limit of `limits.rs` as its
//! template wrote it. Most do; they are then stored and sent as rendered, never built into a
//! JSON tree, fitted and written out again (in a storm that round trip was a fifth of the
//! daemon's work). The check reads a borrowed view of the text and answers "as is" only when
//! `limits::fit_slack` / `fit_teams` would change nothing and report no error; anything else
//! (a cut to make, an odd shape, a duplicate key) takes the full path, so the outcome is the same.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::limits::{
    SLACK_CONTEXT_CHARS, SLACK_FIELD_CHARS, SLACK_HEADER_CHARS, SLACK_MAX_BLOCKS, SLACK_MAX_BYTES,
    SLACK_MAX_CONTEXT_ELEMENTS, SLACK_MAX_FIELDS, SLACK_SECTION_CHARS, SLACK_TEXT_CHARS,
    TEAMS_MAX_BYTES,
};

/// Whether `rendered` is one JSON value, a Slack message within every limit exactly as it is.
/// The byte limit is checked on the rendered text itself, which is what is sent.
pub fn slack(rendered: &str) -> bool {
    if rendered.len() > SLACK_MAX_BYTES {
        return false;
    }
    let Ok(message) = serde_json::from_str::<SlackMessage>(rendered) else {
        return false;
    };
    let text = message.text.and_then(|t| t.0);
    let blocks = match message.blocks.map(|b| b.0) {
        None => None,
        Some(Some(blocks)) => Some(blocks),
        // Not a list: the full path reports it.
        Some(None) => return false,
    };
    if text.is_none() && blocks.is_none() {
        return false;
    }
    let text_fits = text.is_none_or(|t| chars_at_most(&t, SLACK_TEXT_CHARS));
    let blocks_fit = blocks.is_none_or(|blocks| {
        blocks.len() <= SLACK_MAX_BLOCKS
            && blocks.iter().all(|b| b.0.as_ref().is_none_or(Block::fits))
    });
    text_fits && blocks_fit
}

/// Whether `rendered` is one JSON value, a Teams Workflows message within its limit as it is.
pub fn teams(rendered: &str) -> bool {
    if rendered.len() > TEAMS_MAX_BYTES {
        return false;
    }
    let Ok(message) = serde_json::from_str::<TeamsMessage>(rendered) else {
        return false;
    };
    let is_message = message.kind.and_then(|k| k.0).as_deref() == Some("message");
    let cards = message.attachments.and_then(|a| a.0).is_some_and(|all| {
        !all.is_empty()
            && all.iter().all(|a| {
                let content = a.0.as_ref().and_then(|a| a.content.as_ref()?.0.as_ref());
                content.and_then(|c| c.kind.as_ref()?.0.as_deref()) == Some("AdaptiveCard")
            })
    });
    is_message && cards
}

fn chars_at_most(text: &str, max: usize) -> bool {
    text.len() <= max || text.chars().count() <= max
}

#[derive(Deserialize)]
struct SlackMessage<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    blocks: Option<List<Obj<Block<'a>>>>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Obj<TextObject<'a>>>,
    #[serde(borrow)]
    fields: Option<List<Obj<TextObject<'a>>>>,
    #[serde(borrow)]
    elements: Option<List<Obj<TextObject<'a>>>>,
}

impl Block<'_> {
    /// What `limits::fit_block` checks, without changing anything.
    fn fits(&self) -> bool {
        let list_fits = |list: &Option<List<Obj<TextObject>>>, count: usize, chars: usize| {
            list.as_ref()
                .and_then(|l| l.0.as_ref())
                .is_none_or(|items| {
                    items.len() <= count && items.iter().all(|i| text_fits(i.0.as_ref(), chars))
                })
        };
        match self.kind.as_ref().and_then(|k| k.0.as_deref()) {
            Some("header") => text_fits(self.text_object(), SLACK_HEADER_CHARS),
            Some("section") => {
                text_fits(self.text_object(), SLACK_SECTION_CHARS)
                    && list_fits(&self.fields, SLACK_MAX_FIELDS, SLACK_FIELD_CHARS)
            }
            Some("context") => list_fits(
                &self.elements,
                SLACK_MAX_CONTEXT_ELEMENTS,
                SLACK_CONTEXT_CHARS,
            ),
            _ => true,
        }
    }

    fn text_object(&self) -> Option<&TextObject<'_>> {
        self.text.as_ref()?.0.as_ref()
    }
}

/// A Slack text object: fits when its text (if it has one) is not blank and not too long.
fn text_fits(object: Option<&TextObject>, max: usize) -> bool {
    match object.and_then(|o| o.text.as_ref()?.0.as_deref()) {
        Some(text) => !text.trim().is_empty() && chars_at_most(text, max),
        None => true,
    }
}

#[derive(Deserialize)]
struct TextObject<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct TeamsMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    attachments: Option<List<Obj<Attachment<'a>>>>,
}

#[derive(Deserialize)]
struct Attachment<'a> {
    #[serde(borrow)]
    content: Option<Obj<Card<'a>>>,
}

#[derive(Deserialize)]
struct Card<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
}

/// Any JSON value: its text when it is a string.
struct Str<'a>(Option<Cow<'a, str>>);

/// Any JSON value: `T` when it is an object.
struct Obj<T>(Option<T>);

/// Any JSON value: its items when it is a list.
struct List<T>(Option<Vec<T>>);

/// The visitor methods of JSON's scalars (bool, numbers, null), each giving `$none`.
macro_rules! scalars {
    ($none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| Str(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Str(None))
            }
            scalars!(Str(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Obj(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            scalars!(Obj(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(seq)).map(|v| List(Some(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| List(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(List(None))
            }
            scalars!(List(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::limits::{fit_slack, fit_teams};

    /// `as_is` says yes only where the full path changes nothing and reports no error.
    fn agrees(
        text: &str,
        as_is: fn(&str) -> bool,
        fit: fn(&mut Value) -> Result<usize, super::super::limits::LimitError>,
    ) -> bool {
        let said = as_is(text);
        if said {
            let before: Value = serde_json::from_str(text).expect("json");
            let mut after = before.clone();
            assert_eq!(fit(&mut after), Ok(0), "{text}");
            assert_eq!(after, before, "{text}");
        }
        said
    }

    fn slack(value: Value) -> bool {
        agrees(&value.to_string(), super::slack, fit_slack)
    }

    fn section(text: &str) -> Value {
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    }

    #[test]
    fn slack_messages_within_the_limits_are_kept_as_they_are() {
        let button = json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open app"}, "url": "https://x"}
        ]});
        assert!(slack(
            json!({"text": "a \"q\" & <b> ✓\n", "blocks": [section("x"), button]})
        ));
        assert!(slack(
            json!({"blocks": [{"type": "divider"}, {"type": "header", "text": {"type": "plain_text", "text": "h"}}]})
        ));
        assert!(slack(
            json!({"text": "only text", "unfurl_links": false, "n": 1.5, "z": null})
        ));
        assert!(agrees(
            "  {\"text\": \"spaced\"}\n",
            super::slack,
            fit_slack
        ));
    }

    #[test]
    fn slack_messages_that_need_a_change_or_an_error_take_the_full_path() {
        let many: Vec<Value> = (0..51).map(|_| section("x")).collect();
        let fields: Vec<Value> = (0..11)
            .map(|_| json!({"type": "mrkdwn", "text": "f"}))
            .collect();
        let elements: Vec<Value> = (0..11)
            .map(|_| json!({"type": "mrkdwn", "text": "e"}))
            .collect();
        for needs_work in [
            json!({"text": "t".repeat(4001)}),
            json!({"text": "é".repeat(4001)}),
            json!({"blocks": many}),
            json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
            json!({"blocks": [section(&"s".repeat(3001))]}),
            json!({"blocks": [section(" ")]}),
            json!({"blocks": [{"type": "section", "fields": fields}]}),
            json!({"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f".repeat(2001)}]}]}),
            json!({"blocks": [{"type": "context", "elements": elements}]}),
            json!({"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": ""}]}]}),
            json!({"blocks": {"not": "a list"}}),
            json!({"no_text": true}),
            json!({"text": 42}),
            json!(["not", "an", "object"]),
            json!({"blocks": vec![section(&"y".repeat(2999)); 14]}),
        ] {
            assert!(!slack(needs_work.clone()), "{needs_work}");
        }
        // Not JSON: a raw line break in a string, a trailing comma, text after the value.
        for broken in [
            "{\"text\": \"a\nb\"}",
            "{\"text\": \"a\",}",
            "{\"text\": \"a\"} x",
        ] {
            assert!(!super::slack(broken), "{broken}");
        }
        // A duplicate key is left to the full parse (the last one wins there).
        assert!(!agrees(
            r#"{"text": "a", "text": "b"}"#,
            super::slack,
            fit_slack
        ));
    }

    #[test]
    fn teams_messages_are_kept_only_with_an_adaptive_card_under_the_limit() {
        let card = |body: Value| {
            json!({"type": "message", "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {"type": "AdaptiveCard", "version": "1.4", "body": body}
            }]})
        };
        let teams = |v: Value| agrees(&v.to_string(), super::teams, fit_teams);
        assert!(teams(card(json!([{"type": "TextBlock", "text": "hi"}]))));
        assert!(!teams(card(
            json!([{"type": "TextBlock", "text": "z".repeat(30_000)}])
        )));
        assert!(!teams(json!({"type": "message", "attachments": []})));
        assert!(!teams(
            json!({"type": "message", "attachments": [{"content": {"type": "Other"}}]})
        ));
        assert!(!teams(json!({"type": "message", "attachments": ["text"]})));
        assert!(!teams(json!({"text": "legacy"})));
    }
}
