//! The daemon with a real mosquitto: failures become exactly one job each, whatever arrives and
//! however often; bad input is dead-lettered while the daemon keeps running.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_failure_becomes_exactly_one_job_however_often_it_arrives() {
    let broker = Broker::start();
    let daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();

    let attempt = fixture("app-reload-finished-error.json");
    let final_outcome = fixture("reload-finished-failed.json"); // same reload id
    let success = fixture("reload-finished-succeeded.json");
    publish(
        broker.port,
        &topic(),
        &[
            attempt.clone(),
            attempt.clone(),
            attempt,
            final_outcome,
            success,
        ],
    );
    daemon.wait_metric("reload_butler_events_decoded_total", 5.0);

    assert_eq!(daemon.job_count(), 1);
    let job = daemon.query("SELECT tenant_id, app_id, reload_id, failure, topic FROM jobs");
    assert_eq!(
        job[0],
        [
            TENANT,
            "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43",
            "67d3c8f1a2b4c5d6e7f80912",
            "engine_attempt_failed",
            &topic()
        ]
    );
    assert_eq!(
        daemon.metric("reload_butler_jobs_committed_total"),
        Some(1.0)
    );
    assert_eq!(
        daemon.metric("reload_butler_events_duplicate_total"),
        Some(3.0)
    );
    assert_eq!(
        daemon.metric("reload_butler_events_dropped_total{reason=\"reload_succeeded\"}"),
        Some(1.0)
    );
    assert!(daemon.log().contains("reload failure committed as job"));
}

#[test]
fn bad_input_is_dead_lettered_with_its_reason_and_the_daemon_keeps_running() {
    let broker = Broker::start();
    let daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();

    let mut truncated = fixture("reload-finished-failed.json");
    truncated.truncate(300);
    let garbage_5mb = vec![b'#'; 5 * 1024 * 1024];
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"eventType\": \"\xff\xfe\"}".to_vec(), "invalid_json"),
        (truncated, "invalid_json"),
        (b"\"just a string\"".to_vec(), "not_an_object"),
        (
            event("app-reload-finished-error.json", |v| {
                v["data"]["status"] = 7.into()
            }),
            "wrong_type",
        ),
        (
            event("app-reload-finished-error.json", |v| {
                v["extensions"]
                    .as_object_mut()
                    .map(|x| x.remove("tenantId"));
            }),
            "missing_field",
        ),
        (
            event("reload-finished-failed.json", |v| {
                v.as_object_mut().map(|x| x.remove("toplevelresourceid"));
                v["data"].as_object_mut().map(|x| x.remove("appId"));
            }),
            "missing_field",
        ),
        (garbage_5mb, "invalid_json"),
    ];
    // Well-formed events the daemon does not alert on are dropped with a reason, not kept.
    let other_type = event("app-reload-finished-error.json", |v| {
        v["eventType"] = "com.qlik.v1.app.created".into();
    });
    let placeholder = event("app-reload-finished-error.json", |v| {
        v["data"]["status"] = "string".into();
    });
    let unmonitored = event("app-reload-finished-error.json", |v| {
        v["extensions"]["tenantId"] = "SomeOtherTenant0000000000000000".into();
    });
    let mut payloads: Vec<Vec<u8>> = bad.iter().map(|(p, _)| p.clone()).collect();
    payloads.push(unmonitored);
    payloads.push(other_type);
    payloads.push(placeholder);
    publish(broker.port, &topic(), &payloads);
    daemon.wait_metric("reload_butler_events_received_total", payloads.len() as f64);

    wait_until("dead letters", Duration::from_secs(10), || {
        daemon.query("SELECT count(*) FROM dead_letters")[0][0] == bad.len().to_string()
    });
    let reasons: Vec<String> = daemon
        .query("SELECT reason FROM dead_letters ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let expected: Vec<&str> = bad.iter().map(|(_, r)| *r).collect();
    assert_eq!(reasons, expected);
    let big = daemon.query("SELECT length(payload), payload_size, detail FROM dead_letters WHERE payload_size > 1000000");
    assert_eq!(
        big.len(),
        1,
        "the 5 MB payload is kept, truncated, with its size"
    );
    assert_eq!(big[0][0], "65536");
    assert_eq!(big[0][1], (5 * 1024 * 1024).to_string());
    assert_eq!(
        daemon.metric("reload_butler_events_dropped_total{reason=\"unmonitored_tenant\"}"),
        Some(1.0)
    );
    assert_eq!(
        daemon.metric("reload_butler_dead_letters_total{reason=\"missing_field\"}"),
        Some(2.0)
    );
    for reason in ["unknown_event_type", "unknown_value"] {
        assert_eq!(
            daemon.metric(&format!(
                "reload_butler_events_dropped_total{{reason=\"{reason}\"}}"
            )),
            Some(1.0),
            "{reason}"
        );
    }
    let log = daemon.log();
    assert!(
        log.contains("malformed message kept as dead letter"),
        "{log}"
    );
    assert!(
        log.contains("SomeOtherTenant"),
        "the unmonitored tenant is named in a warning"
    );

    // Still alive, and a huge but valid failure (a 5 MB field) still becomes a job.
    let huge_valid = event("app-reload-finished-error.json", |v| {
        v["data"]["name"] = "Q\"uo\\te\nnew line 🚀 <b>".into();
        v["data"]["padding"] = "x".repeat(5 * 1024 * 1024).into();
    });
    publish(broker.port, &topic(), &[huge_valid]);
    wait_until("the job", Duration::from_secs(20), || {
        daemon.job_count() == 1
    });
    let stored = daemon.query("SELECT event FROM jobs");
    let event: serde_json::Value =
        serde_json::from_str(&stored[0][0]).expect("stored event is JSON");
    assert_eq!(event["app_name"], "Q\"uo\\te\nnew line 🚀 <b>");
    assert_eq!(daemon.http_get("/healthz").map(|r| r.0), Some(200));
}

#[test]
fn admin_endpoint_reports_health_readiness_and_metrics() {
    let broker = Broker::start();
    let daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();
    assert_eq!(daemon.http_get("/healthz"), Some((200, "ok\n".to_owned())));
    let (status, body) = daemon.http_get("/readyz").expect("readyz");
    assert_eq!(
        (status, body.as_str()),
        (200, "store: open\nmqtt: connected\n")
    );
    let (status, body) = daemon.http_get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    for name in [
        "reload_butler_events_received_total 0",
        "reload_butler_mqtt_connected 1",
        "# TYPE reload_butler_events_dropped_total counter",
        "reload_butler_dead_letters_total{reason=\"invalid_json\"} 0",
    ] {
        assert!(body.contains(name), "{name} missing from\n{body}");
    }
    assert_eq!(daemon.http_get("/nope").map(|r| r.0), Some(404));
}

#[test]
fn no_log_line_carries_a_secret() {
    let broker = Broker::start();
    let daemon = Daemon::start_with(|admin, state| {
        Daemon::config_for(
            &format!("mqtt://127.0.0.1:{}", broker.port),
            admin,
            state,
            "  username: alerts\n  password: mqtt-pass-8d1f\n",
        ) + "destinations:\n  - {name: chat, type: slack, webhook_url: 'https://hooks.slack.com/services/T0/B0/tok-5e2a'}\n"
    });
    daemon.wait_subscribed();
    publish(
        broker.port,
        &topic(),
        &[distinct_failure(1), b"junk".to_vec()],
    );
    wait_until("the job", Duration::from_secs(10), || {
        daemon.job_count() == 1
    });
    let log = daemon.log();
    assert!(log.contains("reload failure committed as job"));
    for secret in ["mqtt-pass-8d1f", "tok-5e2a"] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
}

#[test]
fn the_healthcheck_command_asks_the_admin_endpoint() {
    let broker = Broker::start();
    let daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();
    let healthcheck = |address: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_reload-butler"))
            .args(["healthcheck", "--address", &address])
            .output()
            .expect("runs")
            .status
            .code()
    };
    assert_eq!(
        healthcheck(format!("127.0.0.1:{}", daemon.admin_port)),
        Some(0)
    );
    assert_eq!(
        healthcheck(format!("127.0.0.1:{}", free_port())),
        Some(1),
        "nothing listening"
    );
}
