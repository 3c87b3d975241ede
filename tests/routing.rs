//! Routing for real organisations, end to end with the real binary and broker: `match` and
//! `skip` by tenant, space name and error code; an unknown tag never dropping an alert;
//! `escalate_after` paging PagerDuty from the third failure in a row and resolving on recovery;
//! and a `type: webhook` endpoint answering 429, 500 and 400.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::qlik::{eventually, mount_enrichment};
use common::*;
use serde_json::Value;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A second monitored tenant, whose API answers 404 to everything: its alerts are unenriched.
const TENANT_2: &str = "tEsT2aaaaBBBBccccDDDDeeeeFFFF0000";
const APP: &str = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";
const PD_KEY: &str = "R0UT1NG-KEY-0123456789abcdef";

async fn accept(hooks: &MockServer, at: &str, status: u16, body: &str) {
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(hooks)
        .await;
}

async fn bodies(hooks: &MockServer, at: &str) -> Vec<Value> {
    hooks
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == at)
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
        .collect()
}

fn send(port: u16, topic: String, payloads: Vec<Vec<u8>>) {
    std::thread::spawn(move || publish(port, &topic, &payloads))
        .join()
        .expect("publisher thread");
}

/// A failed engine reload `n` of `app` in `tenant`, with engine error `code`.
fn failure(n: usize, tenant: &str, app: &str, code: &str) -> Vec<u8> {
    event("app-reload-finished-error.json", |v| {
        v["eventId"] = format!("evt-route-{n}").into();
        v["data"]["reloadId"] = format!("{n:024x}").into();
        v["extensions"]["tenantId"] = tenant.into();
        v["extensions"]["topLevelResourceId"] = app.into();
        v["data"]["errors"][0]["qError"] = code.into();
    })
}

fn success(n: usize, app: &str) -> Vec<u8> {
    event("app-reload-finished-ok.json", |v| {
        v["eventId"] = format!("evt-route-ok-{n}").into();
        v["data"]["reloadId"] = format!("{n:024x}").into();
        v["extensions"]["topLevelResourceId"] = app.into();
    })
}

/// Everything the daemon needs but its destinations: the broker, the Qlik fake for [`TENANT`]
/// (enrichment on), and [`TENANT_2`] on `http://127.0.0.1:9` (nothing answers there).
fn base(broker: u16, qlik: &str, admin: u16, state: &std::path::Path) -> String {
    format!(
        "mqtt: {{url: 'mqtt://127.0.0.1:{broker}', client_id: rb-route-{admin}, keep_alive: 5s}}\n\
         poll: {{enabled: false}}\n\
         enrich: {{enabled: true, timeout: 5s}}\n\
         state: {{path: '{}'}}\n\
         admin: {{listen: '127.0.0.1:{admin}'}}\n\
         delivery: {{retry_initial: 200ms, retry_max: 1s}}\n\
         tenants:\n\
         \x20 - {{id: {TENANT}, url: '{qlik}', auth: {{api_key: test-key}}}}\n\
         \x20 - {{id: {TENANT_2}, url: 'http://127.0.0.1:9', auth: {{api_key: test-key}}}}\n\
         destinations:\n",
        state.display()
    )
}

/// (destination, state, detail) of every outbox row of job `job`, by destination.
fn rows_of(daemon: &Daemon, job: usize) -> Vec<(String, String, String)> {
    daemon
        .query(&format!(
            "SELECT destination, state, coalesce(detail, '') FROM outbox WHERE job_id = {job} ORDER BY destination"
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_spaces_and_error_codes_route_each_alert_to_its_own_channel() {
    let broker = Broker::start();
    let (qlik, hooks) = (MockServer::start().await, MockServer::start().await);
    mount_enrichment(&qlik, 200).await;
    for at in [
        "/prod",
        "/test",
        "/finance",
        "/hr",
        "/quiet",
        "/sales",
        "/automate",
    ] {
        accept(&hooks, at, 200, "ok").await;
    }
    let h = hooks.uri();
    let daemon = Daemon::start_with(|admin, state| {
        base(broker.port, &qlik.uri(), admin, state)
            + &format!(
                "\x20 - {{name: prod, type: slack, webhook_url: '{h}/prod', rate_limit: 0, match: {{tenant: {TENANT}}}}}\n\
                 \x20 - {{name: test, type: slack, webhook_url: '{h}/test', rate_limit: 0, match: {{tenant: [other, {TENANT_2}]}}}}\n\
                 \x20 - {{name: finance, type: slack, webhook_url: '{h}/finance', rate_limit: 0, match: {{space: finance eu}}}}\n\
                 \x20 - {{name: hr, type: slack, webhook_url: '{h}/hr', rate_limit: 0, match: {{space: HR}}}}\n\
                 \x20 - {{name: quiet, type: slack, webhook_url: '{h}/quiet', rate_limit: 0, skip: {{error_code: enginereloadscripterror}}}}\n\
                 \x20 - {{name: sales, type: slack, webhook_url: '{h}/sales', rate_limit: 0, match: {{app_tag: sales}}}}\n\
                 \x20 - {{name: automate, type: slack, webhook_url: '{h}/automate', rate_limit: 0, match: {{kind: automation}}}}\n"
            )
    });
    daemon.wait_subscribed();
    // Job 1: the production tenant, enriched (space "Finance EU", tags finance and
    // alert-owner). Job 2: the test tenant, unenriched (space name and tags unknown).
    send(
        broker.port,
        topic(),
        vec![failure(1, TENANT, APP, "EngineReloadScriptError")],
    );
    daemon.wait_metric(
        "reload_butler_alerts_total{destination=\"prod\",outcome=\"delivered\"}",
        1.0,
    );
    send(
        broker.port,
        format!("qscloud/app/reload/{TENANT_2}"),
        vec![failure(2, TENANT_2, "app-in-test", "EngineOutOfMemory")],
    );
    daemon.wait_metric(
        "reload_butler_alerts_total{destination=\"test\",outcome=\"delivered\"}",
        1.0,
    );
    // Job 3: a failed Qlik Automate run, which only `kind: automation` takes of these two.
    send(
        broker.port,
        topic(),
        vec![fixture("automation-run-ended-failed.json")],
    );
    daemon.wait_metric(
        "reload_butler_alerts_total{destination=\"automate\",outcome=\"delivered\"}",
        1.0,
    );
    eventually("every routed row is final", || async {
        daemon.query("SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0] == "0"
            && daemon.job_count() == 3
    })
    .await;

    let prod = rows_of(&daemon, 1);
    let state = |rows: &[(String, String, String)], d: &str| {
        rows.iter()
            .find(|r| r.0 == d)
            .map(|r| (r.1.clone(), r.2.clone()))
            .unwrap_or_else(|| panic!("no row for {d}: {rows:?}"))
    };
    assert_eq!(state(&prod, "prod").0, "delivered");
    assert_eq!(
        state(&prod, "test"),
        (
            "suppressed".into(),
            "match.tenant does not cover this alert".into()
        )
    );
    assert_eq!(
        state(&prod, "finance").0,
        "delivered",
        "space matched by its name, ignoring case"
    );
    assert_eq!(
        state(&prod, "hr"),
        (
            "suppressed".into(),
            "match.space does not cover this alert".into()
        )
    );
    assert_eq!(
        state(&prod, "quiet"),
        ("suppressed".into(), "skip covers this alert".into())
    );
    assert_eq!(
        state(&prod, "sales"),
        (
            "suppressed".into(),
            "match.app_tag does not cover this alert".into()
        ),
        "known tags exclude"
    );

    let test = rows_of(&daemon, 2);
    assert_eq!(
        state(&test, "prod").1,
        "match.tenant does not cover this alert"
    );
    assert_eq!(state(&test, "test").0, "delivered");
    // Unenriched: the space's name and the tags are unknown, which never drops an alert.
    for d in ["finance", "hr", "sales", "quiet"] {
        assert_eq!(state(&test, d).0, "delivered", "{d}");
    }

    for job in [1, 2] {
        assert_eq!(
            state(&rows_of(&daemon, job), "automate").1,
            "match.kind does not cover this alert"
        );
    }
    assert_eq!(state(&rows_of(&daemon, 3), "automate").0, "delivered");
    assert_eq!(state(&rows_of(&daemon, 3), "test").0, "suppressed");

    let text = |v: &Value| v["text"].as_str().unwrap_or_default().to_owned();
    let prod_posts = bodies(&hooks, "/prod").await;
    assert_eq!(
        prod_posts.len(),
        2,
        "the reload and the automation run of this tenant"
    );
    assert!(
        text(&prod_posts[0]).contains("Sales Dashboard"),
        "{prod_posts:?}"
    );
    assert_eq!(bodies(&hooks, "/test").await.len(), 1);
    let automate = bodies(&hooks, "/automate").await;
    assert_eq!(automate.len(), 1);
    assert!(text(&automate[0]).contains("Qlik Automate"), "{automate:?}");
    assert_eq!(
        bodies(&hooks, "/finance").await.len(),
        3,
        "and the automation in that space"
    );
    assert_eq!(bodies(&hooks, "/hr").await.len(), 1, "job 2 (unknown) only");
    assert_eq!(
        bodies(&hooks, "/quiet").await.len(),
        2,
        "an automation has no engine error code"
    );
    assert_eq!(
        daemon.metric("reload_butler_alerts_total{destination=\"quiet\",outcome=\"suppressed\"}"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tag_never_drops_an_alert() {
    let broker = Broker::start();
    let (qlik, hooks) = (MockServer::start().await, MockServer::start().await);
    // The item look-up (the tags) fails; everything else answers.
    Mock::given(method("GET"))
        .and(path("/api/v1/items"))
        .respond_with(ResponseTemplate::new(404).set_body_string("{\"errors\":[]}"))
        .mount(&qlik)
        .await;
    mount_enrichment(&qlik, 200).await;
    for at in ["/only", "/skip", "/owner"] {
        accept(&hooks, at, 200, "ok").await;
    }
    let h = hooks.uri();
    let daemon = Daemon::start_with(|admin, state| {
        base(broker.port, &qlik.uri(), admin, state)
            + &format!(
                "\x20 - {{name: only, type: slack, webhook_url: '{h}/only', rate_limit: 0, match: {{app_tag: finance}}}}\n\
                 \x20 - {{name: skip, type: slack, webhook_url: '{h}/skip', rate_limit: 0, skip: {{app_tag: [finance, sales]}}}}\n\
                 \x20 - {{name: owner, type: slack, webhook_url: '{h}/owner', rate_limit: 0, match: {{owner: jane.doe@example.com, app_tag: finance}}}}\n"
            )
    });
    daemon.wait_subscribed();
    send(
        broker.port,
        topic(),
        vec![failure(1, TENANT, APP, "EngineReloadScriptError")],
    );
    for d in ["only", "skip", "owner"] {
        daemon.wait_metric(
            &format!("reload_butler_alerts_total{{destination=\"{d}\",outcome=\"delivered\"}}"),
            1.0,
        );
    }
    assert_eq!(
        daemon.metric("reload_butler_enrich_failures_total{lookup=\"item\"}"),
        Some(1.0),
        "the tags were unknown"
    );
    for at in ["/only", "/skip", "/owner"] {
        assert_eq!(bodies(&hooks, at).await.len(), 1, "{at}");
    }
}

/// PagerDuty's Events API v2: 202 with its JSON answer.
async fn pagerduty(hooks: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(ResponseTemplate::new(202).set_body_raw(
            r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
            "application/json",
        ))
        .mount(hooks)
        .await;
}

/// What the Events API v2 requires of an event (developer.pagerduty.com, "Send an Alert Event").
fn assert_pagerduty_event(event: &Value, action: &str) {
    assert_eq!(
        event["routing_key"], PD_KEY,
        "the routing key is filled in when sent"
    );
    assert_eq!(event["event_action"], action);
    let dedup = event["dedup_key"].as_str().expect("dedup_key");
    assert_eq!(dedup, format!("reload-butler/{TENANT}/{APP}"));
    assert!(dedup.len() <= 255);
    if action == "trigger" {
        let payload = &event["payload"];
        let summary = payload["summary"].as_str().expect("summary");
        assert!(!summary.is_empty() && summary.chars().count() <= 1024);
        assert!(summary.contains("Sales Dashboard"), "{summary}");
        assert!(!payload["source"].as_str().expect("source").is_empty());
        assert!(["critical", "error", "warning", "info"]
            .contains(&payload["severity"].as_str().expect("severity")));
        assert!(
            chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().expect("ts"))
                .is_ok()
        );
        assert!(payload["custom_details"].is_object());
        let link = &event["links"][0];
        assert!(link["href"].as_str().expect("href").ends_with(APP));
    } else {
        assert!(
            event.get("payload").is_none(),
            "a resolve carries no payload"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_after_three_pages_from_the_third_failure_and_resolves_on_recovery() {
    let broker = Broker::start();
    let (qlik, hooks) = (MockServer::start().await, MockServer::start().await);
    mount_enrichment(&qlik, 200).await;
    pagerduty(&hooks).await;
    accept(&hooks, "/slack", 200, "ok").await;
    let h = hooks.uri();
    let daemon = Daemon::start_with_env(&[("PD_ROUTING_KEY", PD_KEY)], |admin, state| {
        base(broker.port, &qlik.uri(), admin, state)
            + &format!(
                "\x20 - {{name: chat, type: slack, webhook_url: '{h}/slack', rate_limit: 0}}\n\
                 \x20 - name: on-call\n    type: webhook\n    url: '{h}/v2/enqueue'\n    template: 'stock:pagerduty'\n\
                 \x20   recovery_template: 'stock:pagerduty-recovered'\n    notify_recovery: true\n\
                 \x20   escalate_after: 3\n    rate_limit: 0\n    vars: {{routing_key: '${{PD_ROUTING_KEY}}'}}\n"
            )
    });
    daemon.wait_subscribed();
    for n in 1..=4 {
        send(
            broker.port,
            topic(),
            vec![failure(n, TENANT, APP, "EngineReloadScriptError")],
        );
        daemon.wait_metric(
            "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
            n as f64,
        );
    }
    daemon.wait_metric(
        "reload_butler_alerts_total{destination=\"on-call\",outcome=\"delivered\"}",
        2.0,
    );
    let pages = bodies(&hooks, "/v2/enqueue").await;
    assert_eq!(
        pages.len(),
        2,
        "failures 3 and 4 page; 1 and 2 do not: {pages:?}"
    );
    for page in &pages {
        assert_pagerduty_event(page, "trigger");
    }
    let held_back = daemon.query(
        "SELECT j.failures, o.state, o.detail FROM outbox o JOIN jobs j ON j.id = o.job_id \
         WHERE o.destination = 'on-call' ORDER BY j.id",
    );
    assert_eq!(
        held_back[..2],
        [
            vec![
                "1".to_owned(),
                "suppressed".into(),
                "failure 1 in a row; escalate_after is 3".into()
            ],
            vec![
                "2".to_owned(),
                "suppressed".into(),
                "failure 2 in a row; escalate_after is 3".into()
            ],
        ]
    );
    let stored = daemon.query(
        "SELECT p.payload FROM outbox o JOIN outbox_payloads p ON p.id = o.id
         WHERE o.destination = 'on-call'",
    );
    assert!(
        stored.iter().all(|r| !r[0].contains(PD_KEY)),
        "the routing key is never at rest in the state store"
    );

    send(broker.port, topic(), vec![success(10, APP)]);
    eventually("the incident is resolved", || async {
        bodies(&hooks, "/v2/enqueue").await.len() == 3
    })
    .await;
    let resolve = &bodies(&hooks, "/v2/enqueue").await[2];
    assert_pagerduty_event(resolve, "resolve");

    // A new streak starts from one again: its first failure does not page.
    send(
        broker.port,
        topic(),
        vec![failure(20, TENANT, APP, "EngineReloadScriptError")],
    );
    daemon.wait_metric(
        "reload_butler_alerts_total{destination=\"chat\",outcome=\"delivered\"}",
        5.0,
    );
    eventually("the new failure is routed", || async {
        daemon.query("SELECT count(*) FROM outbox WHERE destination = 'on-call'")[0][0] == "6"
    })
    .await;
    assert_eq!(bodies(&hooks, "/v2/enqueue").await.len(), 3);
}

/// Answers with `script` in turn, then with its last answer.
struct Script(Vec<ResponseTemplate>, AtomicUsize);

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.1.fetch_add(1, Ordering::SeqCst);
        self.0[i.min(self.0.len() - 1)].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_429_500_and_400_is_retried_or_dead_like_slack() {
    let broker = Broker::start();
    let (qlik, hooks) = (MockServer::start().await, MockServer::start().await);
    mount_enrichment(&qlik, 200).await;
    let flaky = Script(
        vec![
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_string("slow down"),
            ResponseTemplate::new(500).set_body_string("upstream broke"),
            ResponseTemplate::new(201).set_body_string("{\"id\":\"T-1\"}"),
        ],
        AtomicUsize::new(0),
    );
    Mock::given(method("PUT"))
        .and(path_regex("^/tickets$"))
        .respond_with(flaky)
        .mount(&hooks)
        .await;
    // The answer echoes the credential, as some services' error pages do.
    accept(
        &hooks,
        "/broken",
        400,
        "invalid payload: field `summary` is required (token tok-3f9a8b7c6d5e)",
    )
    .await;
    let h = hooks.uri();
    let dir = tempfile::tempdir().expect("dir");
    let template = dir.path().join("ticket.json.hbs");
    std::fs::write(
        &template,
        "{\"title\": \"{{appName}} failed\", \"team\": \"{{vars.team}}\", \"error\": \"{{errorMessage}}\"}",
    )
    .expect("template");
    let daemon = Daemon::start_with_env(&[("TICKET_TOKEN", "tok-3f9a8b7c6d5e")], |admin, state| {
        base(broker.port, &qlik.uri(), admin, state)
            + &format!(
                "\x20 - name: tickets\n    type: webhook\n    url: '{h}/tickets'\n    method: PUT\n\
                 \x20   headers: {{Authorization: 'Bearer ${{TICKET_TOKEN}}', X-Source: reload-butler}}\n\
                 \x20   template: '{}'\n    vars: {{team: bi}}\n    rate_limit: 0\n\
                 \x20 - {{name: broken, type: webhook, url: '{h}/broken', template: '{}', rate_limit: 0, headers: {{Authorization: 'Bearer ${{TICKET_TOKEN}}'}}}}\n",
                template.display(),
                template.display()
            )
    });
    daemon.wait_subscribed();
    send(
        broker.port,
        topic(),
        vec![failure(1, TENANT, APP, "EngineReloadScriptError")],
    );
    daemon.wait_metric(
        "reload_butler_alerts_total{destination=\"tickets\",outcome=\"delivered\"}",
        1.0,
    );
    daemon.wait_metric(
        "reload_butler_alerts_total{destination=\"broken\",outcome=\"dead\"}",
        1.0,
    );
    let rows = daemon.query(
        "SELECT destination, state, attempts, coalesce(last_error, ''), coalesce(detail, '') FROM outbox ORDER BY destination",
    );
    assert_eq!(
        rows[0][..3],
        ["broken", "dead", "1"],
        "a 4xx is not retried"
    );
    assert_eq!(
        rows[0][3], "HTTP 400 invalid payload: field `summary` is required (token <secret>)",
        "dead with the service's text, without the credential it echoed"
    );
    assert_eq!(
        rows[1][..3],
        ["tickets", "delivered", "3"],
        "429 and 500 retried: {rows:?}"
    );
    assert!(rows[1][4].starts_with("201"), "{rows:?}");

    let requests: Vec<Request> = hooks
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/tickets")
        .collect();
    assert_eq!(requests.len(), 3);
    let last = &requests[2];
    assert_eq!(
        last.headers.get("authorization").map(|v| v.as_bytes()),
        Some(&b"Bearer tok-3f9a8b7c6d5e"[..])
    );
    assert_eq!(
        last.headers.get("x-source").map(|v| v.as_bytes()),
        Some(&b"reload-butler"[..])
    );
    assert_eq!(
        last.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let body: Value = serde_json::from_slice(&last.body).expect("JSON");
    assert_eq!(body["team"], "bi");
    assert_eq!(
        body["title"], "Sales Dashboard <EU> & \"Nordics\" failed",
        "JSON-escaped values"
    );
    assert!(
        !daemon.log().contains("tok-3f9a8b7c6d5e"),
        "the header secret is never logged"
    );
}
