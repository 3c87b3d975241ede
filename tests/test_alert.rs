//! `test-alert` sends the sample failure through the real senders and prints each answer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::process::Command;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alert_prints_each_services_answer() {
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&hooks)
        .await;
    Mock::given(method("POST"))
        .and(path("/teams"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&hooks)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(
            ResponseTemplate::new(202).set_body_string(
                r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
            ),
        )
        .mount(&hooks)
        .await;
    Mock::given(method("POST"))
        .and(path("/archived"))
        .respond_with(ResponseTemplate::new(410).set_body_string("channel_is_archived"))
        .mount(&hooks)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "poll: {{enabled: false}}\nenrich: {{enabled: false}}\n\
             tenants: [{{id: xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct, url: 'https://acme.eu.qlikcloud.com'}}]\n\
             destinations:\n\
             \x20 - {{name: good, type: slack, webhook_url: '{0}/ok'}}\n\
             \x20 - {{name: cards, type: teams, webhook_url: '{0}/teams'}}\n\
             \x20 - {{name: old, type: slack, webhook_url: '{0}/archived'}}\n\
             \x20 - {{name: off, type: slack, enabled: false, webhook_url: '{0}/ok'}}\n\
             \x20 - {{name: pager, type: webhook, url: '{0}/v2/enqueue', template: 'stock:pagerduty', vars: {{routing_key: rk-123456789}}}}\n",
            hooks.uri()
        ),
    )
    .expect("write");
    let run = move |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().expect("utf-8"), "test-alert"];
        all.extend_from_slice(args);
        Command::new(env!("CARGO_BIN_EXE_reload-butler"))
            .args(&all)
            .output()
            .expect("runs")
    };
    let out = tokio::task::spawn_blocking(move || (run(&[]), run(&["--destination", "off"])))
        .await
        .expect("join");
    let (all, one) = out;
    let stdout = String::from_utf8_lossy(&all.stdout);
    assert_eq!(
        all.status.code(),
        Some(1),
        "one destination refused: {stdout}"
    );
    assert!(stdout.contains("good: delivered (200 ok)"), "{stdout}");
    assert!(stdout.contains("cards: delivered (202"), "{stdout}");
    assert!(
        stdout.contains("pager: delivered (202 {\"status\":\"success\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("old: refused: ") && stdout.contains("channel_is_archived"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("off:"),
        "disabled destinations are skipped unless named"
    );
    assert!(!stdout.contains(&hooks.uri()), "webhook URLs are secrets");
    assert_eq!(
        one.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&one.stdout)
    );
    let requests = hooks.received_requests().await.unwrap_or_default();
    assert_eq!(requests.iter().filter(|r| r.url.path() == "/ok").count(), 2);
    let page = requests
        .iter()
        .find(|r| r.url.path() == "/v2/enqueue")
        .expect("the webhook got the sample");
    let page: serde_json::Value = serde_json::from_slice(&page.body).expect("JSON");
    assert_eq!(page["routing_key"], "rk-123456789");
    assert_eq!(page["event_action"], "trigger");
}
