//! Reconciliation against a local server answering like the Qlik Cloud Reloads API (paged):
//! failures no event brought are alerted once, old ones are not, and a failure that also came
//! over MQTT alerts once. Polling alone (no MQTT) is a complete mode.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::qlik::{eventually, mount_enrichment};
use common::*;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A failed reload as the Reloads list shows it, ended `minutes_ago`.
fn reload(id: &str, app: &str, status: &str, minutes_ago: i64) -> serde_json::Value {
    let end = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    let start = end - chrono::Duration::seconds(30);
    json!({
        "id": id, "appId": app, "tenantId": TENANT, "userId": "6601a9b8c7d6e5f4a3b2c1d0",
        "type": "chronos", "status": status, "partial": false,
        "creationTime": start.to_rfc3339(), "startTime": start.to_rfc3339(), "endTime": end.to_rfc3339(),
        "errorCode": "EngineReloadScriptError", "errorMessage": "error in app script or datasource"
    })
}

/// The Qlik fake: enrichment answers, and the Reloads list in two pages. The first page's
/// `next` is a path on the tenant; the last page's `next` has no `href` (neither may fail the
/// poll nor stop it early).
async fn qlik_fake(page1: Vec<serde_json::Value>, page2: Vec<serde_json::Value>) -> MockServer {
    let server = MockServer::start().await;
    let next = "/api/v1/reloads?page=2";
    Mock::given(method("GET"))
        .and(path("/api/v1/reloads"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"data": page2, "links": {"self": {"href": next}, "next": {}}}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/reloads"))
        .and(query_param("sort", "-creationTime"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": page1, "links": {"next": {"href": next}}})),
        )
        .mount(&server)
        .await;
    mount_enrichment(&server, 404).await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    server
}

fn config(mqtt: &str, qlik: &str, admin: u16, state: &Path) -> String {
    format!(
        "mqtt: {mqtt}\n\
         poll: {{enabled: true, interval: 10s, lookback: 1h}}\n\
         enrich: {{enabled: true, timeout: 5s}}\n\
         alert_on: [reload_failed, reload_exceeded_limit, engine_attempt_failed]\n\
         state: {{path: '{}'}}\nadmin: {{listen: '127.0.0.1:{admin}'}}\n\
         tenants:\n  - {{id: {TENANT}, url: '{qlik}', auth: {{api_key: k}}}}\n\
         destinations:\n  - {{name: chat, type: slack, rate_limit: 0, webhook_url: '{qlik}/slack'}}\n",
        state.display()
    )
}

async fn slack_posts(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/slack")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_alone_alerts_recent_failures_once_across_pages() {
    let app = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";
    let qlik = qlik_fake(
        vec![
            reload("aaaaaaaaaaaaaaaaaaaaaa01", app, "FAILED", 10),
            reload("aaaaaaaaaaaaaaaaaaaaaa02", app, "FAILED", 180),
        ],
        vec![reload("aaaaaaaaaaaaaaaaaaaaaa03", app, "EXCEEDED_LIMIT", 5)],
    )
    .await;
    let daemon =
        Daemon::start_with(|admin, state| config("{url: null}", &qlik.uri(), admin, state));
    eventually("two alerts", || async {
        slack_posts(&qlik).await.len() == 2
    })
    .await;
    let jobs = daemon.query("SELECT reload_id, failure, topic FROM jobs ORDER BY reload_id");
    assert_eq!(
        jobs,
        [
            ["aaaaaaaaaaaaaaaaaaaaaa01", "reload_failed", "poll"],
            ["aaaaaaaaaaaaaaaaaaaaaa03", "reload_exceeded_limit", "poll"],
        ],
        "the failure outside the 1h lookback is not alerted"
    );
    assert_eq!(daemon.metric("reload_butler_poll_found_total"), Some(2.0));
    assert_eq!(
        daemon.query("SELECT count(*) FROM poll_watermarks")[0][0],
        "1"
    );
    let (status, body) = daemon.http_get("/readyz").expect("readyz");
    assert_eq!(
        (status, body.as_str()),
        (200, "store: open\nmqtt: not used\n")
    );
    let bodies = slack_posts(&qlik).await.join("\n");
    assert!(
        bodies.contains("Sales Dashboard"),
        "enriched from the app look-up: {bodies}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_came_over_mqtt_is_not_alerted_again_by_the_poll() {
    let broker = Broker::start();
    let app = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";
    // First run: the list is empty; the failure arrives over MQTT.
    let empty = qlik_fake(Vec::new(), Vec::new()).await;
    let mqtt = format!(
        "{{url: 'mqtt://127.0.0.1:{}', client_id: rb-poll, keep_alive: 5s}}",
        broker.port
    );
    let mut daemon = Daemon::start_with(|admin, state| config(&mqtt, &empty.uri(), admin, state));
    daemon.wait_subscribed();
    let port = broker.port;
    std::thread::spawn(move || publish(port, &topic(), &[fixture("reload-finished-failed.json")]))
        .join()
        .expect("publisher");
    eventually("the MQTT alert", || async {
        slack_posts(&empty).await.len() == 1
    })
    .await;
    assert!(daemon.sigterm().success());

    // Second run: the list now shows that reload; the poll must not alert it again.
    let listed = qlik_fake(
        vec![reload("67d3c8f1a2b4c5d6e7f80912", app, "FAILED", 1)],
        Vec::new(),
    )
    .await;
    let text = std::fs::read_to_string(daemon.dir.path().join("config.yaml")).expect("config");
    std::fs::write(
        daemon.dir.path().join("config.yaml"),
        text.replace(&empty.uri(), &listed.uri()),
    )
    .expect("config");
    daemon.resume();
    daemon.wait_subscribed();
    eventually("the poll to look", || async {
        listed
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .any(|r| r.url.path() == "/api/v1/reloads")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(slack_posts(&listed).await.is_empty(), "no second alert");
    assert_eq!(daemon.job_count(), 1);
    assert_eq!(daemon.metric("reload_butler_poll_found_total"), Some(0.0));
}
