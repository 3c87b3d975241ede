//! Text from Qlik users (app, owner and space names, error texts, script logs) stays text in every
//! message: rendered for every destination kind, singles, digests and recovery notices, with the
//! stock templates, the hostile sample must add no Markdown link or image to a Teams card (read
//! by a CommonMark parser, as Teams reads TextBlocks), no code fence to a Slack message, and no
//! control or bidi-override character anywhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::Path;
use std::time::Duration;

use pulldown_cmark::{Event, Parser, Tag};
use reload_butler::config::{Config, Env, ScriptLogLines};
use reload_butler::qlik::event::ReloadEvent;
use reload_butler::qlik::model::Enrichment;
use reload_butler::render::context::{build, AlertInput};
use reload_butler::render::notice::{digest_item, Digest, Recovery};
use reload_butler::render::{sample, Rendered, Renderer};
use serde_json::Value;

const CONFIG: &str = r#"
timezone: Europe/Stockholm
poll: {enabled: false}
enrich: {enabled: false}
links:
  - {id: runbook, text: "On_call *runbook*", url: "https://wiki.acme.com/qlik?a=1&b=2"}
tenants:
  - {id: xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct, url: https://acme-analytics.eu.qlikcloud.com}
destinations:
  - {name: mail, type: email, from: a@acme.com, recipients: [b@acme.com], smtp: {host: smtp.acme.com}, group_window: 30s, notify_recovery: true}
  - {name: chat, type: slack, webhook_url: "https://hooks.slack.com/services/T0/B0/x", group_window: 30s, notify_recovery: true}
  - {name: channel, type: teams, webhook_url: "https://x.logic.azure.com/workflows/y", group_window: 30s, notify_recovery: true}
  - {name: chat-basic, type: slack, format: basic, webhook_url: "https://hooks.slack.com/services/T0/B0/y"}
  - {name: channel-basic, type: teams, format: basic, webhook_url: "https://x.logic.azure.com/workflows/z"}
"#;

const LOG: ScriptLogLines = ScriptLogLines { head: 5, tail: 5 };

fn config() -> Config {
    Config::from_yaml(CONFIG, Path::new("hostile.yaml"), &Env::new()).expect("config")
}

/// Every message each destination sends for `sample`: the alert, a digest of 12 such alerts
/// and the recovery notice.
fn messages(
    config: &Config,
    renderer: &Renderer,
    sample: &(ReloadEvent, Enrichment),
) -> Vec<(String, Rendered)> {
    let (event, enrichment) = sample;
    let input = AlertInput::for_sample(config, event, enrichment);
    let items: Vec<Value> = (0..12)
        .map(|_| digest_item(&build(&input, "", LOG)))
        .collect();
    let now = chrono::Utc::now();
    let digest = Digest {
        items: &items,
        threshold: 5,
        window: Duration::from_secs(30),
        first_at: now,
        last_at: now,
        timezone: None,
    };
    let recovery = Recovery {
        failing_since: now - chrono::Duration::hours(1),
        recovered_at: now,
        failures: 3,
        timezone: None,
    };
    let mut out = Vec::new();
    for (i, d) in renderer.destinations().iter().enumerate() {
        let alert = renderer.render(i, &input).expect("the alert renders");
        out.push((format!("{} alert", d.name), alert));
        if d.grouping.is_some() {
            out.push((
                format!("{} digest", d.name),
                renderer.render_digest(i, &digest),
            ));
        }
        if d.notify_recovery {
            let mut ctx = build(&input, &d.name, LOG);
            recovery.extend(&mut ctx);
            out.push((
                format!("{} recovery", d.name),
                renderer.render_recovery(i, &ctx),
            ));
        }
    }
    out
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The texts a Teams card renders as Markdown: TextBlock texts and fact values.
fn teams_markdown_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("TextBlock") {
                if let Some(text) = map.get("text").and_then(Value::as_str) {
                    out.push(text.to_owned());
                }
            }
            if let (Some(_), Some(Value::String(v))) = (map.get("title"), map.get("value")) {
                out.push(v.clone());
            }
            map.values().for_each(|v| teams_markdown_texts(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| teams_markdown_texts(v, out)),
        _ => {}
    }
}

/// Link and image destinations a CommonMark reader finds in `text`.
fn links(text: &str) -> Vec<String> {
    Parser::new(text)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

/// All strings of a message, as the service receives them.
fn all_strings(rendered: &Rendered) -> Vec<String> {
    match rendered {
        Rendered::Email {
            subject,
            html,
            text,
        } => vec![subject.clone(), html.clone(), text.clone()],
        Rendered::Slack(payload) | Rendered::Teams(payload) => {
            let mut out = Vec::new();
            strings(payload, &mut out);
            out
        }
        Rendered::ChatText { body, .. } => {
            let mut out = Vec::new();
            strings(&serde_json::from_str(body.json()).expect("json"), &mut out);
            out
        }
        Rendered::Webhook(body) => match serde_json::from_str(body) {
            Ok(payload) => {
                let mut out = Vec::new();
                strings(&payload, &mut out);
                out
            }
            Err(_) => vec![body.clone()],
        },
    }
}

fn fences(rendered: &Rendered) -> usize {
    all_strings(rendered)
        .iter()
        .map(|s| s.matches("```").count())
        .sum()
}

#[test]
fn the_hostile_sample_carries_every_trick() {
    // The sample this file (and `check`) renders must hold what it claims to test.
    for needle in [
        "](http://evil.example",
        "![x]",
        "```",
        "\u{0}",
        "\u{7}",
        "\u{202e}",
        "<!channel>",
        "\r\n",
        "\u{e000}routing_key\u{e001}",
    ] {
        assert!(sample::HOSTILE.contains(needle), "{needle:?}");
    }
}

#[test]
fn no_control_or_bidi_character_reaches_any_message() {
    let config = config();
    let renderer = Renderer::new(&config).expect("templates compile");
    for (name, rendered) in messages(&config, &renderer, &sample::hostile()) {
        for text in all_strings(&rendered) {
            let bad: Vec<char> = text
                .chars()
                .filter(|c| {
                    (c.is_control() && *c != '\n' && *c != '\t' && *c != '\r')
                        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
                })
                .collect();
            assert!(bad.is_empty(), "{name}: {bad:?} in {:.200}", text);
        }
        // Email bodies may carry CRLF (the MIME builder's line ends); JSON payloads none but the
        // template's own, and no user value brings a bare CR.
        if let Rendered::Slack(p) | Rendered::Teams(p) = &rendered {
            let mut out = Vec::new();
            strings(p, &mut out);
            assert!(out.iter().all(|s| !s.contains('\r')), "{name}: a CR");
        }
    }
}

#[test]
fn teams_cards_link_only_where_the_template_does() {
    let config = config();
    let renderer = Renderer::new(&config).expect("templates compile");
    let benign = messages(&config, &renderer, &(sample::event(), sample::enrichment()));
    let hostile = messages(&config, &renderer, &sample::hostile());
    let mut teams_seen = 0;
    for ((name, normal), (_, attacked)) in benign.iter().zip(&hostile) {
        let (Rendered::Teams(normal), Rendered::Teams(attacked)) = (normal, attacked) else {
            continue;
        };
        teams_seen += 1;
        let found = |payload: &Value| {
            let mut texts = Vec::new();
            teams_markdown_texts(payload, &mut texts);
            texts.iter().flat_map(|t| links(t)).collect::<Vec<_>>()
        };
        let attacked_links = found(attacked);
        assert!(
            attacked_links.iter().all(|l| !l.contains("evil.example")),
            "{name}: a user value became a link: {attacked_links:?}"
        );
        assert!(
            attacked_links.len() <= found(normal).len(),
            "{name}: more links than the template has: {attacked_links:?}"
        );
        // The text itself still arrives: the escapes only take the Markdown meaning away.
        let mut texts = Vec::new();
        teams_markdown_texts(attacked, &mut texts);
        assert!(
            texts.iter().any(|t| t.contains("click me")),
            "{name}: the app name is shown"
        );
    }
    assert!(
        teams_seen >= 4,
        "alerts, digest and recovery of both Teams destinations"
    );
}

#[test]
fn slack_messages_have_no_more_code_fences_than_their_templates() {
    let config = config();
    let renderer = Renderer::new(&config).expect("templates compile");
    let benign = messages(&config, &renderer, &(sample::event(), sample::enrichment()));
    let hostile = messages(&config, &renderer, &sample::hostile());
    let mut slack_seen = 0;
    for ((name, normal), (_, attacked)) in benign.iter().zip(&hostile) {
        if !matches!(normal, Rendered::Slack(_)) {
            continue;
        }
        slack_seen += 1;
        assert!(
            fences(attacked) <= fences(normal),
            "{name}: {} fences, the template has {}",
            fences(attacked),
            fences(normal)
        );
        let text = all_strings(attacked).join("\n");
        assert!(
            !text.contains("<!channel>"),
            "{name}: a mention got through"
        );
    }
    assert!(
        slack_seen >= 4,
        "alerts, digest and recovery of both Slack destinations"
    );
}

#[test]
fn an_owner_address_cannot_extend_a_mailto_link() {
    let config = config();
    let renderer = Renderer::new(&config).expect("templates compile");
    let mut emails = 0;
    for (name, rendered) in messages(&config, &renderer, &sample::hostile()) {
        let Rendered::Email { html, .. } = rendered else {
            continue;
        };
        for href in html.split("href=\"mailto:").skip(1) {
            emails += 1;
            let target = &href[..href.find('"').expect("a closed attribute")];
            assert!(
                !target.contains(['?', '&', '\n', '\r', ',']),
                "{name}: mailto:{target}"
            );
            assert!(
                target.starts_with("jane@example.com%3Fbody%3Dphish"),
                "{target}"
            );
        }
    }
    assert!(
        emails >= 2,
        "the alert and the digest link the owner's address"
    );
}

#[test]
fn teams_button_titles_are_plain_text_and_not_escaped() {
    // Button titles (Action.OpenUrl) are not Markdown: the configured link text arrives as
    // written, while the same characters in a Qlik value are escaped.
    let config = config();
    let renderer = Renderer::new(&config).expect("templates compile");
    let (event, enrichment) = (sample::event(), sample::enrichment());
    let input = AlertInput::for_sample(&config, &event, &enrichment);
    let i = renderer
        .destinations()
        .iter()
        .position(|d| d.name == "channel")
        .expect("the Teams destination");
    let Rendered::Teams(card) = renderer.render(i, &input).expect("renders") else {
        panic!("a Teams card")
    };
    let mut all = Vec::new();
    strings(&card, &mut all);
    assert!(all.iter().any(|s| s == "On_call *runbook*"), "{all:?}");
    assert!(
        all.iter()
            .any(|s| s == "https://wiki.acme.com/qlik?a=1&b=2"),
        "URLs are left alone"
    );
}
