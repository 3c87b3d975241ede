//! Digests and recovery notices rendered with the stock templates: within the services' limits
//! whatever the apps are called, counting what is not listed, escaping like alerts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::Path;
use std::time::Duration;

use reload_butler::config::{Config, Env, ScriptLogLines};
use reload_butler::render::context::{build, AlertInput};
use reload_butler::render::limits::{SLACK_MAX_BLOCKS, SLACK_MAX_BYTES, TEAMS_MAX_BYTES};
use reload_butler::render::notice::{digest_item, Digest, Recovery};
use reload_butler::render::{sample, Rendered, Renderer};
use serde_json::Value;

const NO_LOG: ScriptLogLines = ScriptLogLines { head: 0, tail: 0 };

const CONFIG: &str = r#"
timezone: Europe/Stockholm
poll: {enabled: false}
enrich: {enabled: false}
tenants:
  - {id: xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct, url: https://acme-analytics.eu.qlikcloud.com}
destinations:
  - {name: mail, type: email, from: a@acme.com, recipients: [b@acme.com], smtp: {host: smtp.acme.com}, group_window: 30s, notify_recovery: true}
  - {name: chat, type: slack, webhook_url: "https://hooks.slack.com/services/T0/B0/x", group_window: 30s, notify_recovery: true}
  - {name: channel, type: teams, webhook_url: "https://x.logic.azure.com/workflows/y", group_window: 30s, notify_recovery: true}
"#;

/// `n` alerts made from the sample failure, each app named `name(i)`.
fn items(config: &Config, n: usize, name: impl Fn(usize) -> String) -> Vec<Value> {
    let (event, enrichment) = (sample::event(), sample::enrichment());
    (0..n)
        .map(|i| {
            let mut event = event.clone();
            event.app_name = Some(name(i));
            // The API's name comes first (design §9.1): it must say the same.
            let mut enrichment = enrichment.clone();
            if let Some(app) = enrichment.app.as_mut() {
                app.name = Some(name(i));
            }
            let input = AlertInput::for_sample(config, &event, &enrichment);
            digest_item(&build(&input, "", NO_LOG))
        })
        .collect()
}

fn digest(items: &[Value]) -> Digest<'_> {
    let now = chrono::Utc::now();
    Digest {
        items,
        threshold: 5,
        window: Duration::from_secs(30),
        first_at: now,
        last_at: now,
        timezone: None,
    }
}

fn config() -> Config {
    Config::from_yaml(CONFIG, Path::new("notices.yaml"), &Env::new()).expect("config")
}

#[test]
fn chat_digests_fit_the_limits_and_count_the_rest() {
    let config = config();
    let renderer = Renderer::new(&config).expect("renderer");
    // Long names with everything that needs escaping: few fit, the rest is counted.
    let listed = items(&config, 300, |i| {
        format!("App {i} \"quoted\" <b>&</b> \\ 🚀 {}", "x".repeat(2500))
    });
    let d = digest(&listed);
    let Rendered::Slack(slack) = renderer.render_digest(1, &d) else {
        panic!("a Slack message")
    };
    let blocks = slack["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= SLACK_MAX_BLOCKS);
    assert!(slack.to_string().len() <= SLACK_MAX_BYTES);
    let shown = blocks.iter().filter(|b| b["type"] == "section").count();
    assert!((1..300).contains(&shown));
    let text = slack.to_string();
    assert!(
        text.contains(&format!("and {} more", 300 - shown)),
        "{text}"
    );
    assert!(
        !text.contains("[truncated]"),
        "items are left out, never cut"
    );
    assert!(text.contains("&lt;b&gt;&amp;&lt;/b&gt;"), "Slack escaping");

    let Rendered::Teams(teams) = renderer.render_digest(2, &d) else {
        panic!("a Teams message")
    };
    let card = teams.to_string();
    assert!(card.len() <= TEAMS_MAX_BYTES);
    let shown = (0..300)
        .filter(|i| card.contains(&format!("App {i} \\\"quoted")))
        .count();
    assert!((1..300).contains(&shown));
    assert!(
        card.contains(&format!("and {} more", 300 - shown)),
        "{card}"
    );
}

#[test]
fn email_digests_list_every_alert_escaped() {
    let config = config();
    let renderer = Renderer::new(&config).expect("renderer");
    let listed = items(&config, 120, |i| format!("App {i} <script>"));
    let Rendered::Email {
        subject,
        html,
        text,
    } = renderer.render_digest(0, &digest(&listed))
    else {
        panic!("an email")
    };
    assert_eq!(subject, "⚠️ 120 Qlik Cloud reloads failed");
    for i in 0..120 {
        assert!(
            html.contains(&format!(">App {i} &lt;script&gt;<")),
            "app {i}"
        );
        assert!(text.contains(&format!("- App {i} <script>")), "app {i}");
    }
    assert!(!html.contains("<script>"));
    assert!(!text.contains("more."));
}

#[test]
fn recovery_notices_say_how_long_and_how_often() {
    let config = config();
    let renderer = Renderer::new(&config).expect("renderer");
    let (event, enrichment) = (sample::event(), sample::enrichment());
    let input = AlertInput::for_sample(&config, &event, &enrichment);
    let recovered_at = chrono::Utc::now();
    let facts = Recovery {
        failing_since: recovered_at - chrono::Duration::minutes(133),
        recovered_at,
        failures: 3,
        timezone: None,
    };
    for i in 0..3 {
        let mut ctx = build(&input, "x", NO_LOG);
        facts.extend(&mut ctx);
        let message = match renderer.render_recovery(i, &ctx) {
            Rendered::Email { subject, text, .. } => format!("{subject}\n{text}"),
            Rendered::Slack(body) | Rendered::Teams(body) => body.to_string(),
            Rendered::Webhook(body) => body,
            Rendered::ChatText { body, .. } => body.json().to_owned(),
        };
        assert!(message.contains("2h 13m"), "{message}");
        assert!(message.contains("3 failed reloads in between"), "{message}");
        assert!(
            message.contains("recovered") || message.contains("Recovered"),
            "{message}"
        );
    }
}
