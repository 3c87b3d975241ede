//! More than one machine (design §9.5): two daemons in one MQTT shared group, both polling, on
//! one real PostgreSQL server. A daemon SIGKILLed while Slack fails loses nothing and sends
//! nothing twice but what it had in flight; the polls alert nothing again; a database restart
//! in the middle of a storm loses nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::qlik::mount_enrichment;
use common::*;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Waits (up to `bound`) for an async condition.
async fn eventually<F, Fut>(what: &str, bound: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < bound, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reload_id(n: usize) -> String {
    format!("{n:024x}")
}

/// A failed reload as the Reloads list shows it: the same reload that event `n` is about.
fn listed(n: usize) -> serde_json::Value {
    let end = chrono::Utc::now() - chrono::Duration::minutes(1);
    let start = end - chrono::Duration::seconds(30);
    json!({
        "id": reload_id(n), "appId": "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43", "tenantId": TENANT,
        "userId": "6601a9b8c7d6e5f4a3b2c1d0", "type": "chronos", "status": "FAILED",
        "partial": false, "creationTime": start.to_rfc3339(), "startTime": start.to_rfc3339(),
        "endTime": end.to_rfc3339(), "errorCode": "EngineReloadScriptError",
        "errorMessage": "error in app script or datasource"
    })
}

/// The Reloads list names `failures` from now on.
async fn list_reloads(server: &MockServer, failures: usize, priority: u8) {
    let data: Vec<_> = (0..failures).map(listed).collect();
    Mock::given(method("GET"))
        .and(path("/api/v1/reloads"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": data, "links": {"next": {}}})),
        )
        .with_priority(priority)
        .mount(server)
        .await;
}

/// Qlik (enrichment, and an empty Reloads list) and Slack, answering 500 until
/// [`slack_recovers`].
async fn fakes() -> MockServer {
    let server = MockServer::start().await;
    list_reloads(&server, 0, 5).await;
    mount_enrichment(&server, 404).await;
    // Slow as well as failing, so that sends are in flight whenever a daemon is killed.
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string("internal_error")
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    server
}

/// From now on Slack accepts everything. Returns the Slack requests received before (all 500)
/// and after (all 200) the switch; one that arrived during it counts in neither.
async fn slack_recovers(server: &MockServer) -> (usize, usize) {
    let before = slack_bodies(server).await.len();
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(1)
        .mount(server)
        .await;
    (before, slack_bodies(server).await.len())
}

async fn slack_bodies(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/slack")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

async fn reloads_polled(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/v1/reloads")
        .count()
}

/// How many times Slack accepted an alert of each reload: the stock template names it as
/// ``Reload `<id>` ``.
fn per_reload(bodies: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for body in bodies {
        if let Some(rest) = body.split("Reload `").nth(1) {
            if let Some(id) = rest.split('`').next() {
                *counts.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    counts
}

fn config(broker: u16, fakes: &str, url: &str, admin: u16) -> String {
    format!(
        "mqtt: {{url: 'mqtt://127.0.0.1:{broker}', client_id: rb-shared-{admin}, keep_alive: 5s, shared_group: butlers}}\n\
         poll: {{enabled: true, interval: 10s, lookback: 1h}}\n\
         enrich: {{enabled: false}}\n\
         alert_on: [reload_failed, engine_attempt_failed]\n\
         state: {{url: '{url}', lease: 5s}}\n\
         admin: {{listen: '127.0.0.1:{admin}'}}\n\
         delivery: {{retry_initial: 200ms, retry_max: 1s}}\n\
         tenants:\n  - {{id: {TENANT}, url: '{fakes}', auth: {{api_key: k}}}}\n\
         destinations:\n  - {{name: chat, type: slack, rate_limit: 0, webhook_url: '{fakes}/slack'}}\n"
    )
}

fn count(server: &Postgres, url: &str, sql: &str) -> usize {
    server.query(url, sql)[0][0].parse().expect("a count")
}

/// The harness publishes with rumqttc's blocking client, which runs its own runtime.
fn send(port: u16, payloads: Vec<Vec<u8>>) {
    std::thread::spawn(move || publish(port, &topic(), &payloads))
        .join()
        .expect("publisher thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_with_deliveries_pending_loses_nothing_and_the_polls_add_nothing() {
    const FAILURES: usize = 80;
    let server = Postgres::start();
    let url = server.database();
    let broker = Broker::start();
    let fakes = fakes().await;
    let mut a = Daemon::start_with(|admin, _| config(broker.port, &fakes.uri(), &url, admin));
    let b = Daemon::start_with(|admin, _| config(broker.port, &fakes.uri(), &url, admin));
    a.wait_subscribed();
    b.wait_subscribed();

    send(broker.port, (0..FAILURES).map(distinct_failure).collect());
    eventually(
        "every failure routed and tried once while Slack fails",
        Duration::from_secs(60),
        || async {
            count(
                &server,
                &url,
                "SELECT count(*) FROM outbox WHERE attempts > 0",
            ) == FAILURES
        },
    )
    .await;

    // A dies while it sends: the rows it was sending stay claimed until their lease runs out.
    let a_pid = a.pid();
    let claimed_by_a = format!("SELECT count(*) FROM outbox WHERE lease_owner LIKE '%:{a_pid}:%'");
    eventually("A sending", Duration::from_secs(30), || async {
        count(&server, &url, &claimed_by_a) > 0
    })
    .await;
    a.sigkill();
    let in_flight = count(&server, &url, &claimed_by_a);
    assert!(in_flight > 0, "A was killed with sends in flight");
    let (_, after) = slack_recovers(&fakes).await;
    eventually(
        "every alert delivered by the survivor",
        Duration::from_secs(90),
        || async {
            count(
                &server,
                &url,
                "SELECT count(*) FROM outbox WHERE state = 'delivered'",
            ) == FAILURES
        },
    )
    .await;
    // Every failure came over MQTT. Now the Reloads API lists them all and one more that no
    // event brought, and a poll round of the survivor commits after that: it alerts the new
    // one, and none of the others again.
    assert_eq!(
        count(
            &server,
            &url,
            "SELECT count(*) FROM jobs WHERE topic = 'poll'"
        ),
        0
    );
    let watermark = "SELECT coalesce(max(polled_until), 0) FROM poll_watermarks";
    let before = count(&server, &url, watermark);
    list_reloads(&fakes, FAILURES + 1, 1).await;
    eventually(
        "a poll after the deliveries",
        Duration::from_secs(60),
        || async { count(&server, &url, watermark) > before },
    )
    .await;
    eventually(
        "the poll's own find delivered",
        Duration::from_secs(30),
        || async {
            count(
                &server,
                &url,
                "SELECT count(*) FROM outbox WHERE state = 'delivered'",
            ) == FAILURES + 1
        },
    )
    .await;

    let by_poll = "SELECT reload_id FROM jobs WHERE topic = 'poll'";
    assert_eq!(
        server.query(&url, by_poll),
        vec![vec![reload_id(FAILURES)]],
        "the polls found one"
    );
    assert_eq!(
        count(&server, &url, "SELECT count(*) FROM jobs"),
        FAILURES + 1
    );
    assert_eq!(
        count(&server, &url, "SELECT count(*) FROM outbox"),
        FAILURES + 1
    );
    let accepted = per_reload(&slack_bodies(&fakes).await[after..]);
    for n in 0..=FAILURES {
        assert!(
            accepted.contains_key(&reload_id(n)),
            "reload {n} delivered: {accepted:?}"
        );
    }
    let twice: Vec<_> = accepted.iter().filter(|(_, &times)| times > 1).collect();
    eprintln!(
        "in flight at the kill: {in_flight}; sent twice: {}; Reloads polled: {}; topics: {:?}",
        twice.len(),
        reloads_polled(&fakes).await,
        server.query(&url, "SELECT topic, count(*) FROM jobs GROUP BY topic")
    );
    assert!(
        accepted.values().all(|&times| times <= 2) && twice.len() <= in_flight,
        "at most one duplicate per send in flight at the kill ({in_flight}): {twice:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_in_the_middle_of_a_storm_loses_nothing() {
    const FAILURES: usize = 200;
    let mut server = Postgres::start();
    let url = server.database();
    let broker = Broker::start();
    let fakes = fakes().await;
    slack_recovers(&fakes).await;
    let a = Daemon::start_with(|admin, _| config(broker.port, &fakes.uri(), &url, admin));
    let b = Daemon::start_with(|admin, _| config(broker.port, &fakes.uri(), &url, admin));
    a.wait_subscribed();
    b.wait_subscribed();
    let events: Vec<Vec<u8>> = (0..FAILURES).map(distinct_failure).collect();

    send(broker.port, events[..80].to_vec());
    server.stop();
    // The daemons see the database gone: not ready, nothing acked meanwhile.
    eventually(
        "both daemons not ready",
        Duration::from_secs(30),
        || async {
            [&a, &b].iter().all(|d| {
                d.http_get("/readyz")
                    .is_some_and(|(status, _)| status == 503)
            })
        },
    )
    .await;
    send(broker.port, events[80..160].to_vec());
    server.resume();
    send(broker.port, events[160..].to_vec());
    eventually(
        "every alert delivered",
        Duration::from_secs(120),
        || async { per_reload(&slack_bodies(&fakes).await).len() == FAILURES },
    )
    .await;
    eventually(
        "both daemons ready again",
        Duration::from_secs(30),
        || async {
            [&a, &b].iter().all(|d| {
                d.http_get("/readyz")
                    .is_some_and(|(status, _)| status == 200)
            })
        },
    )
    .await;
    assert_eq!(count(&server, &url, "SELECT count(*) FROM jobs"), FAILURES);
    assert_eq!(
        count(
            &server,
            &url,
            "SELECT count(*) FROM outbox WHERE state = 'delivered'"
        ),
        FAILURES
    );
}
