//! Storm digests and recovery notices, end to end: real broker, real SMTP server, local HTTP
//! servers answering like Slack and Teams, the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::time::Duration;

use common::smtp::{SmtpOptions, SmtpServer};
use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP: &str = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";

/// Failure `n` of its own app, named `Storm app n`.
fn storm_failure(n: usize) -> Vec<u8> {
    event("app-reload-finished-error.json", |v| {
        v["eventId"] = format!("evt-storm-{n}").into();
        v["data"]["reloadId"] = format!("{n:024x}").into();
        v["data"]["name"] = format!("Storm app {n}").into();
        v["extensions"]["topLevelResourceId"] = format!("00000000-0000-4000-8000-{n:012}").into();
    })
}

/// A reload of [`APP`]: failed or succeeded, with its own ids.
fn reload_of_app(n: usize, ok: bool) -> Vec<u8> {
    let fixture = if ok {
        "app-reload-finished-ok.json"
    } else {
        "app-reload-finished-error.json"
    };
    event(fixture, |v| {
        v["eventId"] = format!("evt-app-{n}").into();
        v["data"]["reloadId"] = format!("{n:024x}").into();
        v["extensions"]["topLevelResourceId"] = APP.into();
    })
}

async fn hooks() -> MockServer {
    let hooks = MockServer::start().await;
    for (route, answer) in [("/slack", "ok"), ("/teams", "")] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(
                ResponseTemplate::new(if answer.is_empty() { 202 } else { 200 })
                    .set_body_string(answer),
            )
            .mount(&hooks)
            .await;
    }
    hooks
}

async fn posts_to(hooks: &MockServer, route: &str) -> Vec<serde_json::Value> {
    hooks
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == route)
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

fn publish_all(port: u16, payloads: Vec<Vec<u8>>) {
    std::thread::spawn(move || publish(port, &topic(), &payloads))
        .join()
        .expect("publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_becomes_one_digest_per_destination() {
    let pki_dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(pki_dir.path());
    let smtp = SmtpServer::start(SmtpOptions {
        security: "starttls",
        pki: Some(&pki),
        login: None,
        fail: None,
    });
    let broker = Broker::start();
    let hooks = hooks().await;
    let group = "group_window: 4s\n    group_threshold: 5\n    rate_limit: 0";
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n\
                 \x20 - name: chat\n    type: slack\n    webhook_url: '{hooks}/slack'\n    {group}\n\
                 \x20 - name: channel\n    type: teams\n    webhook_url: '{hooks}/teams'\n    {group}\n\
                 \x20 - name: mail\n    type: email\n    from: qlik@acme.com\n    recipients: [ops@acme.com]\n    {group}\n\
                 \x20   smtp: {{host: localhost, port: {}, ca_file: '{}'}}\n",
                smtp.port,
                pki.ca_file.display(),
                hooks = hooks.uri(),
            )
    });
    daemon.wait_subscribed();
    publish_all(broker.port, (1..=50).map(storm_failure).collect());
    for destination in ["chat", "channel", "mail"] {
        daemon.wait_metric_eq(
            &format!(
                "reload_butler_alerts_total{{destination=\"{destination}\",outcome=\"delivered\"}}"
            ),
            1.0,
        );
    }
    // Nothing else follows the digests.
    std::thread::sleep(Duration::from_millis(500));

    let rows = daemon.query(
        "SELECT destination, state, count(*) FROM outbox GROUP BY destination, state ORDER BY destination, state",
    );
    let expected: Vec<Vec<String>> = ["channel", "chat", "mail"]
        .iter()
        .flat_map(|d| {
            [
                vec![d.to_string(), "delivered".into(), "1".into()],
                vec![d.to_string(), "digested".into(), "49".into()],
            ]
        })
        .collect();
    assert_eq!(
        rows, expected,
        "one digest and 49 listed alerts per destination"
    );
    assert_eq!(
        daemon.metric("reload_butler_alerts_total{destination=\"chat\",outcome=\"digested\"}"),
        Some(49.0)
    );
    assert_eq!(daemon.metric("reload_butler_digests_total"), Some(3.0));

    // Slack: one message within Slack's limits, listing what fits and counting the rest.
    let slack = posts_to(&hooks, "/slack").await;
    assert_eq!(slack.len(), 1, "one Slack message");
    let blocks = slack[0]["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50, "Slack allows 50 blocks");
    assert!(slack[0]["text"]
        .as_str()
        .unwrap_or_default()
        .contains("50 Qlik Cloud reloads failed"));
    let listed = blocks.iter().filter(|b| b["type"] == "section").count();
    let body = slack[0].to_string();
    assert!((10..50).contains(&listed), "{listed} apps listed");
    assert!(
        body.contains(&format!("and {} more", 50 - listed)),
        "the rest is counted: {body}"
    );
    assert!(
        body.contains("Storm app 1*") || body.contains("Storm app 1>"),
        "{body}"
    );

    // Teams: one message under its size limit, the same way.
    let teams = posts_to(&hooks, "/teams").await;
    assert_eq!(teams.len(), 1, "one Teams message");
    let card = teams[0].to_string();
    assert!(card.len() < 27_000, "within the Teams limit");
    assert!(card.contains("50 Qlik Cloud reloads failed"));
    let shown = (1..=50)
        .filter(|n| card.contains(&format!("Storm app {n}]")))
        .count();
    if shown < 50 {
        assert!(card.contains(&format!("and {} more", 50 - shown)), "{card}");
    }

    // Email: one message listing all 50.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one digest email");
    let m = &mails[0].parsed;
    assert!(m["subject"]
        .as_str()
        .unwrap_or_default()
        .contains("50 Qlik Cloud reloads failed"));
    let parts = m["parts"].as_array().expect("parts");
    let text = parts[0]["body"]
        .as_str()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let html = parts[1]["body"].as_str().unwrap_or_default();
    for n in 1..=50 {
        assert!(
            text.contains(&format!("- Storm app {n}\n")),
            "app {n} in the text part: {text}"
        );
        assert!(
            html.contains(&format!(">Storm app {n}<")),
            "app {n} in the HTML part"
        );
    }
    assert!(!text.contains("more."), "email lists everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_failures_in_the_window_go_out_one_by_one() {
    let broker = Broker::start();
    let hooks = hooks().await;
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n  - {{name: chat, type: slack, webhook_url: '{}/slack', group_window: 2s, group_threshold: 5, rate_limit: 0}}\n",
                hooks.uri()
            )
    });
    daemon.wait_subscribed();
    publish_all(broker.port, (1..=5).map(storm_failure).collect());
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
        5.0,
    );
    let slack = posts_to(&hooks, "/slack").await;
    assert_eq!(
        slack.len(),
        5,
        "at the threshold, each alert is its own message"
    );
    assert!(slack.iter().all(|p| p["text"]
        .as_str()
        .unwrap_or_default()
        .contains("reload failed")));
    assert_eq!(
        daemon.metric("reload_butler_alerts_total{destination=\"chat\",outcome=\"digested\"}"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_app_says_so_once() {
    let broker = Broker::start();
    let hooks = hooks().await;
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n\
                 \x20 - {{name: chat, type: slack, webhook_url: '{hooks}/slack', notify_recovery: true, rate_limit: 1h}}\n\
                 \x20 - {{name: quiet, type: teams, webhook_url: '{hooks}/teams', rate_limit: 1h}}\n",
                hooks = hooks.uri(),
            )
    });
    daemon.wait_subscribed();
    // Two failures (the second rate limited), then a success, then another success.
    publish_all(
        broker.port,
        vec![reload_of_app(1, false), reload_of_app(2, false)],
    );
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
        1.0,
    );
    publish_all(broker.port, vec![reload_of_app(3, true)]);
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
        2.0,
    );
    publish_all(
        broker.port,
        vec![reload_of_app(4, true), reload_of_app(3, true)],
    );
    daemon.wait_metric_eq("reload_butler_events_decoded_total", 5.0);
    std::thread::sleep(Duration::from_millis(500));

    let slack = posts_to(&hooks, "/slack").await;
    assert_eq!(
        slack.len(),
        2,
        "one alert, one recovery notice, nothing more"
    );
    let recovery = slack[1].to_string();
    assert_eq!(
        slack[1]["text"],
        "✅ Qlik Cloud reload recovered: Sales Dashboard &lt;EU&gt; &amp; \"Nordics\"",
        "Slack-escaped app name"
    );
    assert!(
        recovery.contains("2 failed reloads in between"),
        "{recovery}"
    );
    assert!(recovery.contains("Failing for "), "{recovery}");
    // Teams alerted but has no notify_recovery: one message only.
    assert_eq!(posts_to(&hooks, "/teams").await.len(), 1);
    assert_eq!(daemon.metric("reload_butler_recoveries_total"), Some(1.0));
    assert_eq!(
        daemon.query("SELECT count(*) FROM failing_apps")[0][0],
        "0",
        "the streak ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_recovery_notice_where_nobody_was_alerted() {
    let broker = Broker::start();
    let hooks = hooks().await;
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n  - {{name: chat, type: slack, webhook_url: '{}/slack', notify_recovery: true}}\n\
                 silences:\n  - {{comment: maintenance, app: {APP}}}\n",
                hooks.uri()
            )
    });
    daemon.wait_subscribed();
    publish_all(broker.port, vec![reload_of_app(1, false)]);
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"silenced\"}",
        1.0,
    );
    publish_all(broker.port, vec![reload_of_app(2, true)]);
    daemon.wait_metric_eq("reload_butler_recoveries_total", 1.0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        posts_to(&hooks, "/slack").await.is_empty(),
        "the failure was silenced, so there is nothing to recover from here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_digest_template_falls_back_to_the_stock_digest() {
    let broker = Broker::start();
    let hooks = hooks().await;
    let daemon = Daemon::start_with(|admin, state| {
        let template = state.with_file_name("digest.json.hbs");
        std::fs::write(
            &template,
            "{\"text\": \"{{#each alerts}}{{no_such_helper appName}}{{/each}}\"}",
        )
        .expect("template");
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n  - {{name: chat, type: slack, webhook_url: '{}/slack', group_window: 1s, group_threshold: 1, rate_limit: 0, digest_template: '{}'}}\n",
                hooks.uri(),
                template.display()
            )
    });
    daemon.wait_subscribed();
    publish_all(broker.port, (1..=3).map(storm_failure).collect());
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
        1.0,
    );
    let slack = posts_to(&hooks, "/slack").await;
    assert_eq!(slack.len(), 1);
    assert_eq!(
        slack[0]["text"], "⚠️ 3 Qlik Cloud reloads failed",
        "the stock digest"
    );
    assert!(daemon.log().contains("the digest template failed"));
}
