//! The complete loop with real parts: mosquitto → daemon → enrichment from a local Qlik Cloud
//! fake → Slack and Teams fakes that answer like the real services (and an SMTP server in
//! tests/email_delivery.rs). Gating, dedupe, rate limits, retries, dead deliveries, restarts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::qlik::{eventually, qlik_fake};
use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP: &str = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";

/// Answers POSTs on `at` with `status` and `body` (Slack answers text; Teams answers 202).
async fn answer(server: &MockServer, at: &str, status: u16, body: &str, times: Option<u64>) {
    let mut mock = Mock::given(method("POST")).and(path(at)).respond_with(
        ResponseTemplate::new(status)
            .set_body_string(body)
            .insert_header("Retry-After", "1"),
    );
    if let Some(n) = times {
        mock = mock.up_to_n_times(n);
    }
    mock.mount(server).await;
}

async fn posts(server: &MockServer, at: &str) -> Vec<serde_json::Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == at)
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

/// A daemon config with enrichment from `qlik` and the given destinations.
fn config(broker: u16, qlik: &str, destinations: &str, admin: u16, state: &Path) -> String {
    format!(
        "timezone: Europe/Stockholm\n\
         mqtt: {{url: 'mqtt://127.0.0.1:{broker}', client_id: rb-delivery-{admin}, keep_alive: 5s}}\n\
         poll: {{enabled: false}}\n\
         enrich: {{enabled: true, timeout: 5s}}\n\
         state: {{path: '{}'}}\n\
         admin: {{listen: '127.0.0.1:{admin}'}}\n\
         delivery: {{retry_initial: 200ms, retry_max: 1s}}\n\
         tenants:\n  - {{id: {TENANT}, comment: Production EU, url: '{qlik}', auth: {{api_key: test-key}}}}\n\
         destinations:\n{destinations}",
        state.display()
    )
}

/// The harness publishes with rumqttc's blocking client, which runs its own runtime: call it
/// from a plain thread, outside the test's runtime.
fn send(port: u16, payloads: Vec<Vec<u8>>) {
    std::thread::spawn(move || publish(port, &topic(), &payloads))
        .join()
        .expect("publisher thread");
}

fn outbox(daemon: &Daemon) -> Vec<Vec<String>> {
    daemon.query("SELECT destination, state, attempts, coalesce(last_error, ''), coalesce(detail, '') FROM outbox ORDER BY id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_reaches_slack_and_teams_once_with_enriched_content() {
    let broker = Broker::start();
    let (qlik, hooks) = (qlik_fake().await, MockServer::start().await);
    answer(&hooks, "/slack", 200, "ok", None).await;
    answer(&hooks, "/teams", 202, "", None).await;
    let destinations = format!(
        "  - {{name: chat, type: slack, webhook_url: '{0}/slack'}}\n  - {{name: cards, type: teams, webhook_url: '{0}/teams'}}\n",
        hooks.uri()
    );
    let daemon = Daemon::start_with(|admin, state| {
        config(broker.port, &qlik.uri(), &destinations, admin, state)
    });
    daemon.wait_subscribed();

    let attempt = fixture("app-reload-finished-error.json");
    let outcome = fixture("reload-finished-failed.json");
    send(broker.port, vec![attempt.clone(), outcome, attempt]);
    eventually("both deliveries", || async {
        posts(&hooks, "/slack").await.len() == 1 && posts(&hooks, "/teams").await.len() == 1
    })
    .await;

    let slack = &posts(&hooks, "/slack").await[0];
    let text = slack.to_string();
    assert!(
        text.contains("Sales Dashboard &lt;EU&gt; &amp; \\\"Nordics\\\""),
        "{text}"
    );
    assert!(
        text.contains("Jane Doe") && text.contains("Finance EU"),
        "enriched: {text}"
    );
    assert!(text.contains("Execution Failed"), "script log tail: {text}");
    let teams = posts(&hooks, "/teams").await[0].to_string();
    assert!(
        teams.contains("AdaptiveCard") && teams.contains("EngineReloadScriptError"),
        "{teams}"
    );
    eventually("rows delivered", || async {
        outbox(&daemon)
            .iter()
            .filter(|r| r[1] == "delivered")
            .count()
            == 2
    })
    .await;
    // The three messages were one reload: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(posts(&hooks, "/slack").await.len(), 1);
    assert_eq!(
        daemon.metric("reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_gating_holds_for_every_destination_type_and_is_recorded() {
    let broker = Broker::start();
    let (qlik, hooks) = (qlik_fake().await, MockServer::start().await);
    for at in ["/slack-finance", "/slack-sales", "/teams-skip"] {
        answer(&hooks, at, 200, "ok", None).await;
    }
    let destinations = format!(
        "  - {{name: slack-finance, type: slack, webhook_url: '{0}/slack-finance', only_apps_tagged: [Finance]}}\n\
         \x20 - {{name: slack-sales, type: slack, webhook_url: '{0}/slack-sales', only_apps_tagged: [sales]}}\n\
         \x20 - {{name: teams-skip, type: teams, webhook_url: '{0}/teams-skip', skip_apps_tagged: [alert-owner]}}\n\
         \x20 - {{name: mail-sales, type: email, from: a@acme.com, recipients: [x@acme.com], smtp: {{host: 127.0.0.1, port: 9, security: none}}, only_apps_tagged: [sales]}}\n",
        hooks.uri()
    );
    let daemon = Daemon::start_with(|admin, state| {
        config(broker.port, &qlik.uri(), &destinations, admin, state)
    });
    daemon.wait_subscribed();
    send(broker.port, vec![fixture("reload-finished-failed.json")]);
    eventually("the finance delivery", || async {
        posts(&hooks, "/slack-finance").await.len() == 1
    })
    .await;
    eventually("four outbox rows", || async { outbox(&daemon).len() == 4 }).await;
    let rows = outbox(&daemon);
    let state = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .map(|r| (r[1].clone(), r[4].clone()))
            .expect(name)
    };
    assert_eq!(state("slack-finance").0, "delivered");
    for name in ["slack-sales", "teams-skip", "mail-sales"] {
        let (s, reason) = state(name);
        assert_eq!(s, "suppressed", "{name}");
        assert!(reason.contains("apps_tagged"), "{name}: {reason}");
    }
    assert!(posts(&hooks, "/slack-sales").await.is_empty());
    assert!(posts(&hooks, "/teams-skip").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_failure_of_an_app_inside_the_window_is_suppressed() {
    let broker = Broker::start();
    let (qlik, hooks) = (qlik_fake().await, MockServer::start().await);
    answer(&hooks, "/slack", 200, "ok", None).await;
    let destinations = format!(
        "  - {{name: chat, type: slack, webhook_url: '{}/slack', rate_limit: 5m}}\n",
        hooks.uri()
    );
    let daemon = Daemon::start_with(|admin, state| {
        config(broker.port, &qlik.uri(), &destinations, admin, state)
    });
    daemon.wait_subscribed();
    send(broker.port, vec![distinct_failure(1)]);
    eventually("first alert", || async {
        posts(&hooks, "/slack").await.len() == 1
    })
    .await;
    let other_app = event("app-reload-finished-error.json", |v| {
        v["eventId"] = "evt-other-app".into();
        v["data"]["reloadId"] = "00000000000000000000abcd".into();
        v["extensions"]["topLevelResourceId"] = "11111111-2222-4333-8444-555555555555".into();
    });
    send(broker.port, vec![distinct_failure(2), other_app]);
    eventually("three rows", || async { outbox(&daemon).len() == 3 }).await;
    eventually("the other app's alert", || async {
        posts(&hooks, "/slack").await.len() == 2
    })
    .await;
    let rows = outbox(&daemon);
    assert_eq!(
        rows.iter().filter(|r| r[1] == "suppressed").count(),
        1,
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r[1] == "suppressed" && r[4].contains("rate limited")),
        "{rows:?}"
    );
    assert_eq!(
        daemon.metric("reload_butler_alerts_total{destination=\"chat\",outcome=\"suppressed\"}"),
        Some(1.0)
    );
    let bodies: Vec<String> = posts(&hooks, "/slack")
        .await
        .iter()
        .map(|b| b.to_string())
        .collect();
    assert!(bodies
        .iter()
        .any(|b| b.contains("11111111-2222-4333-8444-555555555555")));
    let _ = APP;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_the_service_and_permanent_errors_are_dead_at_once() {
    let broker = Broker::start();
    let (qlik, hooks) = (qlik_fake().await, MockServer::start().await);
    answer(&hooks, "/slack-429", 429, "rate_limited", Some(1)).await;
    answer(&hooks, "/slack-429", 200, "ok", None).await;
    answer(&hooks, "/teams-500", 500, "server error", Some(2)).await;
    answer(&hooks, "/teams-500", 202, "", None).await;
    answer(&hooks, "/slack-400", 400, "invalid_blocks", None).await;
    let destinations = format!(
        "  - {{name: busy, type: slack, webhook_url: '{0}/slack-429'}}\n\
         \x20 - {{name: flaky, type: teams, webhook_url: '{0}/teams-500'}}\n\
         \x20 - {{name: broken, type: slack, webhook_url: '{0}/slack-400'}}\n",
        hooks.uri()
    );
    let daemon = Daemon::start_with(|admin, state| {
        config(broker.port, &qlik.uri(), &destinations, admin, state)
    });
    daemon.wait_subscribed();
    send(broker.port, vec![fixture("reload-finished-failed.json")]);
    eventually("busy and flaky delivered", || async {
        let rows = outbox(&daemon);
        rows.iter().filter(|r| r[1] == "delivered").count() == 2
            && rows.iter().any(|r| r[1] == "dead")
    })
    .await;
    let rows = outbox(&daemon);
    let row = |name: &str| rows.iter().find(|r| r[0] == name).cloned().expect(name);
    assert_eq!(
        row("busy")[2],
        "2",
        "429 then delivered on the second attempt"
    );
    assert_eq!(row("flaky")[2], "3", "500, 500, then delivered");
    assert_eq!(row("broken")[1], "dead");
    assert!(
        row("broken")[3].contains("invalid_blocks"),
        "{:?}",
        row("broken")
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(posts(&hooks, "/slack-429").await.len(), 2);
    assert_eq!(posts(&hooks, "/teams-500").await.len(), 3);
    assert_eq!(
        posts(&hooks, "/slack-400").await.len(),
        1,
        "permanent errors are not retried"
    );
    assert!(daemon
        .log()
        .contains("delivery dead: the service refused it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_down_does_not_hold_teams_back_and_pending_rows_survive_a_kill() {
    let broker = Broker::start();
    let (qlik, hooks) = (qlik_fake().await, MockServer::start().await);
    answer(&hooks, "/slack", 503, "down", None).await;
    answer(&hooks, "/teams", 202, "", None).await;
    let destinations = format!(
        "  - {{name: chat, type: slack, webhook_url: '{0}/slack'}}\n  - {{name: cards, type: teams, webhook_url: '{0}/teams'}}\n",
        hooks.uri()
    );
    let mut daemon = Daemon::start_with(|admin, state| {
        config(broker.port, &qlik.uri(), &destinations, admin, state)
    });
    daemon.wait_subscribed();
    send(broker.port, vec![distinct_failure(1), distinct_failure(2)]);
    eventually("teams delivered while slack fails", || async {
        let rows = outbox(&daemon);
        rows.iter()
            .filter(|r| r[0] == "cards" && r[1] == "delivered")
            .count()
            == 1
            && rows
                .iter()
                .filter(|r| r[0] == "chat" && r[1] == "pending" && r[2] != "0")
                .count()
                == 1
    })
    .await;
    // distinct_failure(2) is the same app inside the window: suppressed for both destinations.
    daemon.sigkill();
    hooks.reset().await;
    answer(&hooks, "/slack", 200, "ok", None).await;
    answer(&hooks, "/teams", 202, "", None).await;
    daemon.resume();
    eventually("the pending slack row delivered after restart", || async {
        outbox(&daemon)
            .iter()
            .any(|r| r[0] == "chat" && r[1] == "delivered")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        posts(&hooks, "/slack").await.len(),
        1,
        "sent exactly once after the restart"
    );
    assert!(
        posts(&hooks, "/teams").await.is_empty(),
        "teams was already delivered"
    );
    let rows = outbox(&daemon);
    assert_eq!(
        rows.iter().filter(|r| r[1] == "pending").count(),
        0,
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_fails_for_one_event_falls_back_to_the_basic_message() {
    let broker = Broker::start();
    let hooks = MockServer::start().await;
    answer(&hooks, "/slack", 200, "ok", None).await;
    // Valid JSON only when rowLimit is known: reload.finished events do not carry it.
    let dir = tempfile::tempdir().expect("dir");
    let template = dir.path().join("fragile.json.hbs");
    std::fs::write(
        &template,
        "{\"text\": \"{{appName}}\", \"rows\": {{rowLimit}} }",
    )
    .expect("write");
    let destinations = format!(
        "  - {{name: chat, type: slack, webhook_url: '{}/slack', template: '{}'}}\n",
        hooks.uri(),
        template.display()
    );
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(
            &format!("mqtt://127.0.0.1:{}", broker.port),
            admin,
            state,
            "",
        ) + "destinations:\n"
            + &destinations
    });
    daemon.wait_subscribed();
    send(broker.port, vec![fixture("reload-finished-failed.json")]);
    eventually("the fallback message", || async {
        posts(&hooks, "/slack").await.len() == 1
    })
    .await;
    let body = posts(&hooks, "/slack").await[0].to_string();
    assert!(body.contains("Qlik Cloud reload failed"), "{body}");
    assert!(daemon
        .log()
        .contains("sending the built-in message instead"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_traffic_pass_promtool() {
    let broker = Broker::start();
    let (qlik, hooks) = (qlik_fake().await, MockServer::start().await);
    answer(&hooks, "/slack", 200, "ok", None).await;
    let destinations = format!(
        "  - {{name: \"chat \\\"ops\\\"\", type: slack, webhook_url: '{}/slack'}}\n",
        hooks.uri()
    );
    let daemon = Daemon::start_with(|admin, state| {
        config(broker.port, &qlik.uri(), &destinations, admin, state)
    });
    daemon.wait_subscribed();
    send(
        broker.port,
        vec![fixture("app-reload-finished-error.json"), b"{".to_vec()],
    );
    let delivered =
        "reload_butler_alerts_total{destination=\"chat \\\"ops\\\"\",outcome=\"delivered\"}";
    daemon.wait_metric(delivered, 1.0);
    daemon.wait_metric(
        "reload_butler_dead_letters_total{reason=\"invalid_json\"}",
        1.0,
    );

    let (status, body) = daemon.http_get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    for series in [
        "reload_butler_qlik_requests_total{outcome=\"ok\"}",
        "reload_butler_events_decoded_total",
        "reload_butler_delivery_duration_seconds_count",
    ] {
        assert!(
            daemon.metric(series).is_some_and(|v| v >= 1.0),
            "{series} in\n{body}"
        );
    }
    promtool_check(&body);
}
