//! The daemon's credential watch against a local server answering like Qlik Cloud's Users and
//! API-keys APIs: an API key expiring within 30 days, or a credential Qlik refuses, is a
//! warning log line, a metric and one notice to the Slack and Teams destinations, sent once a
//! day even across a restart; no secret in the log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::path::Path;

use base64::Engine as _;
use common::qlik::eventually;
use common::*;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An API key shaped like Qlik's (a JWT naming its key id); only the claims are read.
fn api_key(id: &str) -> String {
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"jti": id, "sub": "svc"}).to_string());
    format!("eyJhbGciOiJFUzM4NCJ9.{claims}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk")
}

async fn chat(server: &MockServer) {
    for route in ["/slack", "/teams"] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_string("1"))
            .mount(server)
            .await;
    }
}

fn config(broker: u16, qlik: &str, key: &str, admin: u16, state: &Path) -> String {
    format!(
        "mqtt: {{url: 'mqtt://127.0.0.1:{broker}', client_id: rb-watch-{admin}}}\n\
         poll: {{enabled: false}}\nenrich: {{enabled: true, timeout: 5s}}\n\
         state: {{path: '{}'}}\nadmin: {{listen: '127.0.0.1:{admin}'}}\n\
         tenants:\n  - {{id: {TENANT}, comment: production, url: '{qlik}', auth: {{api_key: '{key}'}}}}\n\
         destinations:\n\
         \x20 - {{name: chat, type: slack, webhook_url: '{qlik}/slack'}}\n\
         \x20 - {{name: team, type: teams, webhook_url: '{qlik}/teams'}}\n",
        state.display()
    )
}

async fn posts(server: &MockServer, route: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == route)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

async fn requests_to(server: &MockServer, route: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == route)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiring_api_key_is_noticed_once_a_day_across_a_restart() {
    let broker = Broker::start();
    let qlik = MockServer::start().await;
    chat(&qlik).await;
    let expiry = chrono::Utc::now() + chrono::Duration::days(12);
    Mock::given(method("GET"))
        .and(path("/api/v1/users/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "u1", "name": "svc"})))
        .mount(&qlik)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/api-keys/key-7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "key-7", "status": "active", "expiry": expiry.to_rfc3339()}),
        ))
        .mount(&qlik)
        .await;
    let key = api_key("key-7");
    let uri = qlik.uri();
    let mut daemon =
        Daemon::start_with(|admin, state| config(broker.port, &uri, &key, admin, state));
    eventually("the notice in Slack and Teams", || async {
        posts(&qlik, "/slack").await.len() == 1 && posts(&qlik, "/teams").await.len() == 1
    })
    .await;
    let slack: serde_json::Value = serde_json::from_str(&posts(&qlik, "/slack").await[0]).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("tenant {TENANT} (production)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("expires on {}", expiry.format("%Y-%m-%d"))),
        "{text}"
    );
    assert!(text.contains("create a new API key"), "{text}");
    let teams = posts(&qlik, "/teams").await[0].clone();
    assert!(
        teams.contains("AdaptiveCard") && teams.contains("expires on"),
        "{teams}"
    );
    let ok = format!("reload_butler_qlik_credential_ok{{tenant=\"{TENANT}\"}}");
    assert_eq!(daemon.metric(&ok), Some(0.0));
    let expiry_series =
        format!("reload_butler_qlik_api_key_expiry_timestamp_seconds{{tenant=\"{TENANT}\"}}");
    assert_eq!(
        daemon.metric(&expiry_series),
        Some(expiry.timestamp() as f64)
    );
    let log = daemon.log();
    assert!(
        log.contains("WARN") && log.contains("problem=\"expiring\""),
        "{log}"
    );
    assert!(!log.contains(&key), "the key never reaches the log");

    // Restarted, the daemon checks again, and knows the notice went out today.
    assert!(daemon.sigterm().success());
    daemon.resume();
    eventually("the second check", || async {
        requests_to(&qlik, "/api/v1/api-keys/key-7").await >= 2
            && daemon
                .log()
                .contains("credential notice already sent within the day")
    })
    .await;
    assert_eq!(posts(&qlik, "/slack").await.len(), 1, "one notice a day");
    assert_eq!(posts(&qlik, "/teams").await.len(), 1, "one notice a day");
    let rows = daemon.query("SELECT kind, failure, state FROM jobs");
    assert_eq!(
        rows,
        vec![vec![
            "notice".to_owned(),
            "credential_expiring".to_owned(),
            "routed".to_owned()
        ]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_credential_is_noticed() {
    let broker = Broker::start();
    let qlik = MockServer::start().await;
    chat(&qlik).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/me"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"errors": [{"code": "HTTP-401", "title": "Not authorized"}]}),
            ),
        )
        .mount(&qlik)
        .await;
    let key = api_key("key-8");
    let uri = qlik.uri();
    let daemon = Daemon::start_with(|admin, state| config(broker.port, &uri, &key, admin, state));
    eventually("the notice in Slack", || async {
        posts(&qlik, "/slack").await.len() == 1
    })
    .await;
    let text = posts(&qlik, "/slack").await.remove(0);
    assert!(text.contains("refuses the credential (HTTP 401)"), "{text}");
    assert_eq!(
        requests_to(&qlik, "/api/v1/api-keys/key-8").await,
        0,
        "a refused key's record is not asked for"
    );
    daemon.wait_metric_eq(
        &format!("reload_butler_qlik_credential_ok{{tenant=\"{TENANT}\"}}"),
        0.0,
    );
    daemon.wait_metric(
        &format!("reload_butler_qlik_credential_refused_total{{tenant=\"{TENANT}\"}}"),
        1.0,
    );
    assert!(!daemon.log().contains(&key));
}
