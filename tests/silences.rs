//! Silences: from the config and from `silence add`; a silenced alert is recorded, not sent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn failure_of(app: &str, n: usize) -> Vec<u8> {
    event("app-reload-finished-error.json", |v| {
        v["eventId"] = format!("evt-silence-{n}").into();
        v["data"]["reloadId"] = format!("{n:024x}").into();
        v["extensions"]["topLevelResourceId"] = app.into();
    })
}

fn cli(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reload-butler"))
        .arg("--config")
        .arg(config)
        .arg("silence")
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silenced_alerts_are_recorded_and_not_sent() {
    let broker = Broker::start();
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&hooks)
        .await;
    let (maintained, adhoc, normal) = (
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
        "33333333-3333-4333-8333-333333333333",
    );
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n  - {{name: chat, type: slack, rate_limit: 0, webhook_url: '{}/slack'}}\n\
                 silences:\n  - {{comment: planned maintenance, app: {maintained}, start: '2020-01-01T00:00:00Z', end: '2099-01-01T00:00:00Z'}}\n",
                hooks.uri()
            )
    });
    daemon.wait_subscribed();
    let config = daemon.dir.path().join("config.yaml");
    let (code, out) = tokio::task::spawn_blocking({
        let config = config.clone();
        let adhoc = adhoc.to_owned();
        move || {
            cli(
                &config,
                &[
                    "add",
                    "--app",
                    &adhoc,
                    "--for",
                    "2h",
                    "--comment",
                    "fixing the source",
                ],
            )
        }
    })
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{out}");
    let port = broker.port;
    let payloads = vec![
        failure_of(maintained, 1),
        failure_of(adhoc, 2),
        failure_of(normal, 3),
    ];
    std::thread::spawn(move || publish(port, &topic(), &payloads))
        .join()
        .expect("publisher");
    let start = Instant::now();
    while daemon.query("SELECT count(*) FROM outbox")[0][0] != "3" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "three outbox rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = daemon.query("SELECT j.app_id, o.state, coalesce(o.detail, '') FROM outbox o JOIN jobs j ON j.id = o.job_id ORDER BY j.app_id");
    assert_eq!(rows[0][1], "silenced");
    assert!(rows[0][2].contains("planned maintenance"), "{rows:?}");
    assert_eq!(rows[1][1], "silenced");
    assert!(rows[1][2].contains("fixing the source"), "{rows:?}");
    let start = Instant::now();
    while daemon.query("SELECT o.state FROM outbox o JOIN jobs j ON j.id = o.job_id WHERE j.app_id = '33333333-3333-4333-8333-333333333333'")[0][0] != "delivered" {
        assert!(start.elapsed() < Duration::from_secs(30), "the unsilenced alert delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posts = hooks.received_requests().await.unwrap_or_default();
    assert_eq!(posts.len(), 1, "only the unsilenced app alerted");
    assert_eq!(
        daemon.metric("reload_butler_alerts_total{destination=\"chat\",outcome=\"silenced\"}"),
        Some(2.0)
    );
}

#[test]
fn the_silence_cli_round_trips() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "poll: {{enabled: false}}\nenrich: {{enabled: false}}\nstate: {{path: '{}'}}\ntenants: [{{id: t1, url: 'https://t1.eu.qlikcloud.com'}}]\n",
            dir.path().join("state.db").display()
        ),
    )
    .expect("write");
    let (code, out) = cli(
        &config,
        &[
            "add",
            "--tag",
            "finance",
            "--error-code",
            "EngineReloadScriptError",
            "--until",
            "2099-01-01T00:00:00Z",
            "--comment",
            "year-end",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let (_, list) = cli(&config, &["list"]);
    assert!(
        list.contains("tag=finance error_code=EngineReloadScriptError")
            && list.contains("year-end"),
        "{list}"
    );
    let id = list.split('\t').next().expect("id").trim().to_owned();
    assert_eq!(cli(&config, &["remove", &id]).0, Some(0));
    assert!(cli(&config, &["list"]).1.contains("no silences"));
    assert_eq!(cli(&config, &["remove", &id]).0, Some(2), "already gone");
    assert_eq!(
        cli(&config, &["add", "--for", "1h"]).0,
        Some(2),
        "a silence needs a filter"
    );
    assert_eq!(
        cli(&config, &["add", "--app", "x"]).0,
        Some(2),
        "and an end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_silenced_by_a_resending_silence_go_out_when_it_ends() {
    let broker = Broker::start();
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&hooks)
        .await;
    let (resent, quiet) = (
        "44444444-4444-4444-8444-444444444444",
        "55555555-5555-4555-8555-555555555555",
    );
    let end = (chrono::Utc::now() + chrono::Duration::seconds(4))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n  - {{name: chat, type: slack, rate_limit: 0, webhook_url: '{}/slack'}}\n\
                 silences:\n\
                 \x20 - {{comment: upgrade, app: {resent}, end: '{end}', resend_after_silence: true}}\n\
                 \x20 - {{comment: upgrade too, app: {quiet}, end: '{end}'}}\n",
                hooks.uri()
            )
    });
    daemon.wait_subscribed();
    let port = broker.port;
    let payloads = vec![failure_of(resent, 11), failure_of(quiet, 12)];
    std::thread::spawn(move || publish(port, &topic(), &payloads))
        .join()
        .expect("publisher");
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"silenced\"}",
        2.0,
    );
    assert!(
        hooks
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing sent during the silence"
    );
    // The silence ends; the one marked resend_after_silence goes out, the other stays quiet.
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
        1.0,
    );
    let expected = vec![
        vec![resent.to_owned(), "delivered".to_owned()],
        vec![quiet.to_owned(), "silenced".to_owned()],
    ];
    wait_until("the resent alert recorded", Duration::from_secs(10), || {
        daemon.query(
            "SELECT j.app_id, o.state FROM outbox o JOIN jobs j ON j.id = o.job_id ORDER BY j.app_id",
        ) == expected
    });
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(hooks.received_requests().await.unwrap_or_default().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_added_with_resend_sends_when_it_ends() {
    let broker = Broker::start();
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&hooks)
        .await;
    let app = "66666666-6666-4666-8666-666666666666";
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, "")
            + &format!(
                "destinations:\n  - {{name: chat, type: slack, rate_limit: 0, webhook_url: '{}/slack'}}\n",
                hooks.uri()
            )
    });
    daemon.wait_subscribed();
    let config = daemon.dir.path().join("config.yaml");
    let (code, out) = tokio::task::spawn_blocking(move || {
        cli(
            &config,
            &[
                "add",
                "--app",
                app,
                "--for",
                "3s",
                "--resend",
                "--comment",
                "redeploy",
            ],
        )
    })
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{out}");
    let port = broker.port;
    std::thread::spawn(move || publish(port, &topic(), &[failure_of(app, 21)]))
        .join()
        .expect("publisher");
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"silenced\"}",
        1.0,
    );
    assert!(hooks
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
    daemon.wait_metric_eq(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
        1.0,
    );
    assert!(daemon
        .log()
        .contains("silence ended; resending the alerts it silenced"));
}
