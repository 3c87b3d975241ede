//! Qlik Cloud as it sends today (design §9.1), end to end with real parts: mosquitto → daemon →
//! a Qlik Cloud fake → an SMTP server (aiosmtpd) and Slack and Teams fakes. Automation
//! failures on every destination kind, and names that are never empty while the API is down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::path::Path;

use common::qlik::{api_fixture, eventually, mount_enrichment};
use common::smtp::{SmtpOptions, SmtpServer};
use common::*;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP: &str = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";
const AUTOMATION: &str = "3c9d0b8e-2f1a-11ef-9b6e-0242ac120002";

async fn accept(hooks: &MockServer, at: &str, status: u16) {
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(status).set_body_string("ok"))
        .mount(hooks)
        .await;
}

async fn posts(server: &MockServer, at: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == at)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// Email, Slack and Teams, no rate limit; Slack also sends recovery notices; `finance` takes
/// only apps tagged `finance` (an automation has no tags).
fn config(broker: u16, qlik: &str, hooks: &str, smtp: u16, admin: u16, state: &Path) -> String {
    format!(
        "timezone: Europe/Stockholm\n\
         mqtt: {{url: 'mqtt://127.0.0.1:{broker}', client_id: rb-today-{admin}, keep_alive: 5s}}\n\
         poll: {{enabled: false}}\n\
         enrich: {{enabled: true, timeout: 5s}}\n\
         state: {{path: '{}'}}\n\
         admin: {{listen: '127.0.0.1:{admin}'}}\n\
         delivery: {{retry_initial: 200ms, retry_max: 1s}}\n\
         tenants:\n  - {{id: {TENANT}, url: '{qlik}', auth: {{api_key: test-key}}}}\n\
         destinations:\n\
         \x20 - {{name: mail, type: email, from: 'Qlik alerts <qlik@acme.com>', recipients: [ops@acme.com], rate_limit: 0, smtp: {{host: 127.0.0.1, port: {smtp}, security: none}}}}\n\
         \x20 - {{name: chat, type: slack, webhook_url: '{hooks}/slack', rate_limit: 0, notify_recovery: true}}\n\
         \x20 - {{name: cards, type: teams, webhook_url: '{hooks}/teams', rate_limit: 0}}\n\
         \x20 - {{name: finance, type: slack, webhook_url: '{hooks}/finance', rate_limit: 0, only_apps_tagged: [finance]}}\n",
        state.display()
    )
}

fn send(port: u16, payloads: Vec<Vec<u8>>) {
    std::thread::spawn(move || publish(port, &topic(), &payloads))
        .join()
        .expect("publisher thread");
}

fn smtp() -> SmtpServer {
    SmtpServer::start(SmtpOptions {
        security: "none",
        pki: None,
        login: None,
        fail: None,
    })
}

fn subjects(smtp: &SmtpServer) -> Vec<String> {
    smtp.messages()
        .iter()
        .map(|m| m.parsed["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_automation_run_alerts_every_destination_kind_with_its_name() {
    let broker = Broker::start();
    let (qlik, hooks, mail) = (MockServer::start().await, MockServer::start().await, smtp());
    mount_enrichment(&qlik, 200).await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/automations/{AUTOMATION}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(api_fixture("automation-get.json"), "application/json"),
        )
        .mount(&qlik)
        .await;
    accept(&hooks, "/slack", 200).await;
    accept(&hooks, "/teams", 202).await;
    accept(&hooks, "/finance", 200).await;
    let daemon = Daemon::start_with(|admin, state| {
        config(
            broker.port,
            &qlik.uri(),
            &hooks.uri(),
            mail.port,
            admin,
            state,
        )
    });
    daemon.wait_subscribed();

    let failed = fixture("automation-run-ended-failed.json");
    // The failed run twice (one alert: dedupe by run id) and a test run from the editor.
    send(
        broker.port,
        vec![
            failed.clone(),
            failed,
            fixture("automation-run-ended-test-run.json"),
        ],
    );
    eventually("the three deliveries", || async {
        posts(&hooks, "/slack").await.len() == 1
            && posts(&hooks, "/teams").await.len() == 1
            && mail.messages().len() == 1
    })
    .await;
    // The automations API's name, not the event's title.
    let name = "CRM export to Salesforce";
    assert_eq!(
        subjects(&mail),
        vec![format!("❌ Qlik Automate run failed: \"{name}\"")]
    );
    let body = mail.messages()[0].raw.clone();
    assert!(body.contains("Jane Doe"), "the owner from the users API");
    let slack = &posts(&hooks, "/slack").await[0];
    let teams = &posts(&hooks, "/teams").await[0];
    for (what, text) in [("slack", slack), ("teams", teams)] {
        assert!(text.contains(name), "{what}: {text}");
        assert!(
            text.contains("401 Unauthorized from Salesforce"),
            "{what}: the run's error"
        );
        assert!(
            text.contains(&format!("/automations/{AUTOMATION}/editor")),
            "{what}: the automation's link"
        );
    }
    assert_eq!(
        daemon.metric("reload_butler_events_dropped_total{reason=\"automation_test_run\"}"),
        Some(1.0)
    );
    assert!(
        posts(&hooks, "/finance").await.is_empty(),
        "no tags: not an app tagged finance"
    );
    assert_eq!(
        daemon.query("SELECT state FROM outbox WHERE destination = 'finance'"),
        vec![vec!["suppressed".to_owned()]]
    );
    assert_eq!(
        daemon.metric("reload_butler_events_duplicate_total"),
        Some(1.0)
    );
    let jobs = daemon.query("SELECT failure, reload_id FROM jobs");
    assert_eq!(
        jobs,
        vec![vec![
            "automation_failed".to_owned(),
            "9a7e4c52-2f1a-11ef-b0c1-0242ac120002".to_owned()
        ]]
    );

    // The next run succeeds: the automation is recovered, like an app.
    send(
        broker.port,
        vec![fixture("automation-run-ended-finished.json")],
    );
    eventually("the recovery notice", || async {
        posts(&hooks, "/slack").await.len() == 2
    })
    .await;
    let recovery = &posts(&hooks, "/slack").await[1];
    assert!(
        recovery.contains("Qlik Automate run recovered: Nightly CRM export")
            && recovery.contains("1 failed run in between"),
        "{recovery}"
    );
    assert_eq!(daemon.metric("reload_butler_recoveries_total"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_qlik_api_down_every_subject_and_title_names_the_app() {
    let broker = Broker::start();
    let (qlik, hooks, mail) = (MockServer::start().await, MockServer::start().await, smtp());
    Mock::given(method("GET"))
        .and(path_regex("^/api/v1/.*"))
        .respond_with(ResponseTemplate::new(503).set_body_string("service unavailable"))
        .mount(&qlik)
        .await;
    accept(&hooks, "/slack", 200).await;
    accept(&hooks, "/teams", 202).await;
    accept(&hooks, "/finance", 200).await;
    let daemon = Daemon::start_with(|admin, state| {
        config(
            broker.port,
            &qlik.uri(),
            &hooks.uri(),
            mail.port,
            admin,
            state,
        )
    });
    daemon.wait_subscribed();

    // reload.finished carries no app name; nothing was ever remembered: `app <id>`.
    send(broker.port, vec![fixture("reload-finished-failed.json")]);
    eventually("the first alerts", || async {
        posts(&hooks, "/slack").await.len() == 1
            && posts(&hooks, "/teams").await.len() == 1
            && mail.messages().len() == 1
    })
    .await;
    let by_id = format!("app {APP}");
    assert_eq!(
        subjects(&mail),
        vec![format!("❌ Qlik Cloud reload failed: \"{by_id}\"")]
    );
    let slack: serde_json::Value = serde_json::from_str(&posts(&hooks, "/slack").await[0]).unwrap();
    assert_eq!(
        slack["text"],
        format!("❌ Qlik Cloud reload failed: {by_id}")
    );
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        format!("❌ Reload failed: {by_id}")
    );
    let teams: serde_json::Value = serde_json::from_str(&posts(&hooks, "/teams").await[0]).unwrap();
    assert_eq!(
        teams["attachments"][0]["content"]["body"][1]["text"],
        by_id.as_str()
    );

    // An engine attempt of another reload names the app; the next reload.finished failure,
    // still without the API, uses that remembered name.
    let named = event("app-reload-finished-error.json", |v| {
        v["eventId"] = "evt-named".into();
        v["data"]["reloadId"] = "aaaaaaaaaaaaaaaaaaaaaaaa".into();
        v["data"]["name"] = "Sales Dashboard".into();
    });
    let later = event("reload-finished-failed.json", |v| {
        v["id"] = "evt-later".into();
        v["data"]["id"] = "bbbbbbbbbbbbbbbbbbbbbbbb".into();
    });
    send(broker.port, vec![named, later]);
    eventually("three alerts each", || async {
        posts(&hooks, "/slack").await.len() == 3 && mail.messages().len() == 3
    })
    .await;
    let subjects = subjects(&mail);
    assert!(
        subjects.iter().all(|s| !s.contains("\"\"")),
        "no empty name in any subject: {subjects:?}"
    );
    assert_eq!(
        subjects[2], "❌ Qlik Cloud reload failed: \"Sales Dashboard\"",
        "{subjects:?}"
    );
    let last: serde_json::Value = serde_json::from_str(&posts(&hooks, "/slack").await[2]).unwrap();
    assert_eq!(
        last["blocks"][0]["text"]["text"],
        "❌ Reload failed: Sales Dashboard"
    );
    assert_eq!(
        daemon.query("SELECT name FROM app_names"),
        vec![vec!["Sales Dashboard".to_owned()]]
    );
    assert!(
        daemon
            .metric("reload_butler_enrich_failures_total{lookup=\"app\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
}

/// Gateway → broker → daemon: every signed event Qlik may send is answered 2xx, and only the
/// failure alerts; the rest is dropped with its reason, nothing is dead-lettered.
#[test]
fn through_the_gateway_every_signed_event_is_2xx_and_only_failures_alert() {
    use common::gateway::{sign, Gateway, PATH, SECRET};
    let broker = Broker::start();
    let gateway = Gateway::start(broker.port, &format!("  allowed_tenants: [{TENANT}]\n"));
    let daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();
    let bodies = [
        "qlik-doc-app-data-updated.json",
        "qlik-doc-app-created.legacy.json",
        "qlik-doc-app-reload-finished-placeholders.json",
        "reload-finished-succeeded.json",
        "automation-run-ended-test-run.json",
        "reload-finished-failed.json",
    ];
    for (name, content_type) in bodies.iter().zip([
        "application/cloudevents+json",
        "application/json",
        "application/cloudevents+json; charset=utf-8",
        "application/json; charset=utf-8",
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
    ]) {
        let body = fixture(name);
        let answer = gateway.post(
            PATH,
            &[
                ("Content-Type", content_type),
                ("Qlik-Signature", &sign(SECRET, &body)),
            ],
            &body,
        );
        assert_eq!(answer.status, 200, "{name}: {answer:?}");
    }
    daemon.wait_metric("reload_butler_events_received_total", bodies.len() as f64);
    daemon.wait_metric("reload_butler_jobs_committed_total", 1.0);
    for (reason, count) in [
        ("unknown_event_type", 2.0),
        ("unknown_value", 1.0),
        ("reload_succeeded", 1.0),
        ("automation_test_run", 1.0),
    ] {
        assert_eq!(
            daemon.metric(&format!(
                "reload_butler_events_dropped_total{{reason=\"{reason}\"}}"
            )),
            Some(count),
            "{reason}"
        );
    }
    assert_eq!(daemon.job_count(), 1);
    assert_eq!(
        daemon.query("SELECT failure FROM jobs"),
        vec![vec!["reload_failed".to_owned()]]
    );
    assert_eq!(daemon.query("SELECT count(*) FROM dead_letters")[0][0], "0");
}
