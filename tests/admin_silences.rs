//! Ad-hoc silences over the admin endpoint (`GET|POST /silences`, `DELETE /silences/{id}`)
//! against the running daemon: the round trip, bad input, the effect on the next alert, and who
//! may use them (`admin.token`, loopback).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP: &str = "44444444-4444-4444-8444-444444444444";
const TOKEN: &str = "adm1n-t0ken-for-tests";

fn client() -> reqwest::Client {
    reload_butler::tls::ensure_crypto_provider();
    reqwest::Client::new()
}

fn url(daemon: &Daemon, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", daemon.admin_port)
}

/// Sends a request and returns its status, headers and body as JSON (`Null` when empty).
async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("the admin endpoint answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"))
    };
    (status, headers, body)
}

async fn post(client: &reqwest::Client, daemon: &Daemon, body: &Value) -> (u16, Value) {
    let (status, _, body) = send(client.post(url(daemon, "/silences")).json(body)).await;
    (status, body)
}

async fn list(client: &reqwest::Client, daemon: &Daemon, query: &str) -> Vec<Value> {
    let (status, _, body) = send(client.get(url(daemon, &format!("/silences{query}")))).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("a list").clone()
}

/// A daemon on a fresh broker; `admin` replaces the harness's `admin:` line when given.
fn daemon(broker: &Broker, admin: Option<&dyn Fn(u16) -> String>, extra: &str) -> Daemon {
    daemon_with_env(broker, admin, extra, &[])
}

fn daemon_with_env(
    broker: &Broker,
    admin: Option<&dyn Fn(u16) -> String>,
    extra: &str,
    env: &[(&str, &str)],
) -> Daemon {
    let daemon = Daemon::start_with_env(env, |port, state| {
        let base = Daemon::config_for(
            &format!("mqtt://127.0.0.1:{}", broker.port),
            port,
            state,
            "",
        );
        let default = format!("admin: {{listen: '127.0.0.1:{port}'}}\n");
        assert!(base.contains(&default), "the harness's admin line");
        let base = match admin {
            Some(admin) => base.replace(&default, &admin(port)),
            None => base,
        };
        base + extra
    });
    daemon.wait_subscribed();
    daemon
}

fn failure(n: usize) -> Vec<u8> {
    event("app-reload-finished-error.json", |v| {
        v["eventId"] = format!("evt-admin-{n}").into();
        v["data"]["reloadId"] = format!("{n:024x}").into();
        v["extensions"]["topLevelResourceId"] = APP.into();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_round_trip_over_http() {
    let broker = Broker::start();
    let daemon = daemon(&broker, None, "");
    let client = client();

    let (status, headers, created) = send(client.post(url(&daemon, "/silences")).json(&json!({
        "app": APP, "for": "2h", "comment": "fixing the source"
    })))
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("an id");
    assert_eq!(created["app"], APP);
    assert_eq!(created["comment"], "fixing the source");
    assert!(created.get("tag").is_none(), "unset filters are left out");
    let ends = chrono::DateTime::parse_from_rfc3339(created["ends_at"].as_str().expect("ends_at"))
        .expect("RFC 3339");
    let left = ends.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::Duration::minutes(119) && left <= chrono::Duration::hours(2),
        "{left}"
    );
    assert_eq!(headers["location"], format!("/silences/{id}").as_str());

    let (status, other) = post(
        &client,
        &daemon,
        &json!({"tag": "finance", "error_code": "EngineReloadScriptError", "until": "2099-01-01T00:00:00+01:00"}),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    assert_eq!(other["ends_at"], "2098-12-31T23:00:00Z");

    let listed = list(&client, &daemon, "").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0], created);
    assert_eq!(listed[1]["tag"], "finance");

    // A silence that is over is listed only with ?all=true.
    let conn = rusqlite::Connection::open(daemon.state_path()).expect("db");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    conn.execute(
        "INSERT INTO silences (matcher, starts_at, ends_at, comment, created_at) VALUES (?1, 0, 1000, 'over', 0)",
        [r#"{"app":"old"}"#],
    )
    .expect("insert");
    drop(conn);
    assert_eq!(list(&client, &daemon, "").await.len(), 2);
    let all = list(&client, &daemon, "?all=true").await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().any(|s| s["comment"] == "over"));

    let (status, _, body) = send(client.delete(url(&daemon, &format!("/silences/{id}")))).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, _, body) = send(client.delete(url(&daemon, &format!("/silences/{id}")))).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], format!("no silence {id}"));
    let left = list(&client, &daemon, "").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["tag"], "finance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_and_the_daemon_keeps_running() {
    let broker = Broker::start();
    let daemon = daemon(&broker, None, "");
    let client = client();
    let raw = |body: String| {
        client
            .post(url(&daemon, "/silences"))
            .header("content-type", "application/json")
            .body(body)
    };
    let cases = [
        (
            "malformed JSON",
            r#"{"app": "a1", "for": "2h""#,
            "invalid silence",
        ),
        ("empty body", "", "invalid silence"),
        ("not an object", r#"["app", "a1"]"#, "invalid silence"),
        ("null", "null", "invalid silence"),
        ("wrong type", r#"{"app": 42, "for": "2h"}"#, "invalid type"),
        (
            "duration as a number",
            r#"{"app": "a1", "for": 7200}"#,
            "invalid type",
        ),
        (
            "unknown field",
            r#"{"app": "a1", "for": "2h", "starts": "now"}"#,
            "unknown field `starts`",
        ),
        (
            "no filter",
            r#"{"for": "2h", "comment": "everything"}"#,
            "at least one filter",
        ),
        (
            "empty filter",
            r#"{"app": "", "for": "2h"}"#,
            "`app` must not be empty",
        ),
        ("no end", r#"{"app": "a1"}"#, "give how long"),
        (
            "both ends",
            r#"{"app": "a1", "for": "2h", "until": "2099-01-01T00:00:00Z"}"#,
            "not both",
        ),
        (
            "negative duration",
            r#"{"app": "a1", "for": "-2h"}"#,
            "`for`",
        ),
        (
            "zero duration",
            r#"{"app": "a1", "for": "0s"}"#,
            "in the future",
        ),
        (
            "absurd duration",
            r#"{"app": "a1", "for": "99999999999999999999999y"}"#,
            "`for`",
        ),
        (
            "too long",
            r#"{"app": "a1", "for": "500y"}"#,
            "at most 100 years",
        ),
        (
            "until in the past",
            r#"{"app": "a1", "until": "2001-01-01T00:00:00Z"}"#,
            "in the future",
        ),
        (
            "until not a time",
            r#"{"app": "a1", "until": "next friday"}"#,
            "RFC 3339",
        ),
    ];
    for (what, body, says) in cases {
        let (status, _, answer) = send(raw(body.to_owned())).await;
        assert_eq!(status, 400, "{what}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{what}: {error}");
    }

    let (status, _, answer) = send(
        client
            .post(url(&daemon, "/silences"))
            .header("content-type", "text/plain")
            .body(r#"{"app": "a1", "for": "2h"}"#),
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    let (status, headers, answer) = send(raw(format!(
        r#"{{"app": "a1", "for": "2h", "comment": "{}"}}"#,
        "x".repeat(64 * 1024)
    )))
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        headers.get("connection").and_then(|v| v.to_str().ok()),
        Some("close"),
        "the unread body ends the connection, and the answer says so"
    );
    let (status, _, answer) = send(client.delete(url(&daemon, "/silences/abc"))).await;
    assert_eq!(status, 400, "{answer}");
    let (status, _, answer) = send(client.get(url(&daemon, "/silences?all=maybe"))).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap_or_default()
        .contains("all=true"));
    let (status, _, answer) = send(
        client
            .get(url(&daemon, "/silences"))
            .header("host", "attacker.example.com"),
    )
    .await;
    assert_eq!(status, 403, "a rebound host name is refused: {answer}");

    assert_eq!(daemon.http_get("/healthz").map(|r| r.0), Some(200));
    assert!(list(&client, &daemon, "?all=true").await.is_empty());
    assert_eq!(daemon.query("SELECT count(*) FROM silences")[0][0], "0");
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_posted_over_http_applies_to_the_next_failure() {
    let broker = Broker::start();
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&hooks)
        .await;
    let daemon = daemon(
        &broker,
        None,
        &format!(
            "destinations:\n  - {{name: chat, type: slack, rate_limit: 0, webhook_url: '{}/slack'}}\n",
            hooks.uri()
        ),
    );
    let client = client();
    let port = broker.port;
    let send_failure = |n: usize| {
        std::thread::spawn(move || publish(port, &topic(), &[failure(n)]))
            .join()
            .expect("publisher")
    };
    let state_of = |n: usize| {
        let rows = daemon.query(&format!(
            "SELECT o.state, coalesce(o.detail, '') FROM outbox o JOIN jobs j ON j.id = o.job_id \
             WHERE j.reload_id = '{n:024x}'"
        ));
        rows.into_iter().next()
    };
    let wait_for = |n: usize, want: &str| {
        let start = Instant::now();
        loop {
            if let Some(row) = state_of(n) {
                if row[0] == want {
                    return row;
                }
                assert!(
                    row[0] == "pending" || row[0] == "new",
                    "failure {n}: {row:?}"
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "failure {n} never became {want}: {:?}",
                state_of(n)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    send_failure(1);
    wait_for(1, "delivered");

    let (status, created) = post(
        &client,
        &daemon,
        &json!({"app": APP, "for": "1h", "comment": "source database down"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    send_failure(2);
    let row = wait_for(2, "silenced");
    assert!(row[1].contains("source database down"), "{row:?}");

    let id = created["id"].as_i64().expect("id");
    let (status, _, _) = send(client.delete(url(&daemon, &format!("/silences/{id}")))).await;
    assert_eq!(status, 204);
    send_failure(3);
    wait_for(3, "delivered");

    let posts = hooks.received_requests().await.unwrap_or_default();
    assert_eq!(posts.len(), 2, "failures 1 and 3 alerted, 2 was silenced");
    assert_eq!(
        daemon.metric("reload_butler_alerts_total{destination=\"chat\",outcome=\"silenced\"}"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admin_token_set_the_silences_need_it() {
    let broker = Broker::start();
    let admin = |port: u16| {
        format!("admin: {{listen: '127.0.0.1:{port}', token: '${{RB_TEST_ADMIN_TOKEN}}'}}\n")
    };
    let daemon = daemon_with_env(&broker, Some(&admin), "", &[("RB_TEST_ADMIN_TOKEN", TOKEN)]);
    let client = client();
    let body = json!({"app": APP, "for": "2h"});

    for request in [
        client.get(url(&daemon, "/silences")),
        client.post(url(&daemon, "/silences")).json(&body),
        client.delete(url(&daemon, "/silences/1")),
        client
            .post(url(&daemon, "/silences"))
            .bearer_auth("wrong-token")
            .json(&body),
        client
            .post(url(&daemon, "/silences"))
            .bearer_auth(&TOKEN[..TOKEN.len() - 1])
            .json(&body),
        client
            .post(url(&daemon, "/silences"))
            .basic_auth("admin", Some(TOKEN))
            .json(&body),
    ] {
        let (status, headers, answer) = send(request).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(answer["error"].as_str().is_some_and(|e| !e.contains(TOKEN)));
    }
    assert_eq!(daemon.query("SELECT count(*) FROM silences")[0][0], "0");

    let (status, _, created) = send(
        client
            .post(url(&daemon, "/silences"))
            .bearer_auth(TOKEN)
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, _, listed) = send(client.get(url(&daemon, "/silences")).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let id = created["id"].as_i64().expect("id");
    let (status, _, _) = send(
        client
            .delete(url(&daemon, &format!("/silences/{id}")))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 204);

    // Health and metrics stay open; the token never reaches the log.
    assert_eq!(daemon.http_get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(daemon.http_get("/metrics").map(|r| r.0), Some(200));
    let log = daemon.log();
    assert!(log.contains("admin request refused"), "{log}");
    assert!(
        log.contains("wrong_token") && log.contains("missing_token"),
        "{log}"
    );
    assert!(
        !log.contains(TOKEN) && !log.contains("wrong-token"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listener_without_token_refuses_the_silences() {
    let broker = Broker::start();
    let admin = |port: u16| format!("admin: {{listen: '0.0.0.0:{port}'}}\n");
    let daemon = daemon(&broker, Some(&admin), "");
    let client = client();

    for request in [
        client.get(url(&daemon, "/silences")),
        client
            .post(url(&daemon, "/silences"))
            .json(&json!({"app": APP, "for": "2h"})),
        client.delete(url(&daemon, "/silences/1")),
    ] {
        let (status, _, answer) = send(request).await;
        assert_eq!(status, 403, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("set admin.token")),
            "{answer}"
        );
    }
    assert_eq!(daemon.query("SELECT count(*) FROM silences")[0][0], "0");
    assert_eq!(daemon.http_get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(daemon.http_get("/readyz").map(|r| r.0), Some(200));
    assert_eq!(daemon.http_get("/metrics").map(|r| r.0), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_with_line_breaks_and_escapes_is_refused_and_forges_no_line() {
    let broker = Broker::start();
    let daemon = daemon(&broker, None, "");
    let client = client();
    let forged = "ok\r\n2026-12-02T00:00:00Z ERROR forged line\u{1b}[31m";
    let (status, answer) = post(
        &client,
        &daemon,
        &json!({"app": APP, "for": "1h", "comment": forged}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("`comment` must not contain control characters")),
        "{answer}"
    );
    assert_eq!(daemon.query("SELECT count(*) FROM silences")[0][0], "0");
    let (status, created) = post(
        &client,
        &daemon,
        &json!({"app": APP, "for": "1h", "comment": "maintenance, CHG-1234"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let log = daemon.log();
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-02T00:00:00Z")),
        "the comment's CRLF started no line of its own: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no raw escape sequence in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_capped_in_number_and_size() {
    let broker = Broker::start();
    let daemon = daemon(&broker, None, "");
    let client = client();
    let (status, answer) = post(
        &client,
        &daemon,
        &json!({"app": APP, "for": "1h", "comment": "x".repeat(15_000)}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("longer than 1000")),
        "{answer}"
    );
    for n in 0..1000 {
        let (status, answer) = post(
            &client,
            &daemon,
            &json!({"app": format!("app-{n}"), "for": "1h"}),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, answer) = post(&client, &daemon, &json!({"app": APP, "for": "1h"})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("1000 silences are in force")),
        "{answer}"
    );
    assert_eq!(daemon.query("SELECT count(*) FROM silences")[0][0], "1000");
}
