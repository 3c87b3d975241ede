//! A storm under Qlik's rate limit, scaled down (design §9.2, issue #15): 300 failed reloads of
//! 100 apps at once, the real daemon against a Qlik fake that allows a burst of 300 and then
//! 10 a second, and beyond that answers 429 + Retry-After and refuses everything meanwhile, like
//! Qlik. Every alert must arrive with its app's name; the requests per alert and the share of
//! 429s are printed (no timed assertion: the wait is only a bound against hanging).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::time::{Duration, Instant};

use common::qlik::budgeted_qlik_fake;
use common::qlik_budget::{storm_app_name, Limit, Load};
use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FAILURES: usize = 300;
const APPS: usize = 100;

fn app_id(n: usize) -> String {
    format!("{:08x}-5a1e-4f00-9000-{:012x}", n % APPS, n % APPS)
}

/// A `reload.finished` failure of app `n % APPS` (a distinct reload per `n`).
fn failure(n: usize) -> Vec<u8> {
    event("reload-finished-failed.json", |v| {
        v["id"] = format!("storm-{n}").into();
        v["toplevelresourceid"] = app_id(n).into();
        v["data"]["appId"] = app_id(n).into();
        v["data"]["id"] = format!("{n:024x}").into();
    })
}

/// Each Slack message as JSON text.
async fn slack_texts(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .map(|v| v.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_over_the_rate_limit_delivers_every_alert_with_its_name() {
    let broker = Broker::start();
    let (qlik, fake) = budgeted_qlik_fake(Limit {
        burst: 300,
        per_minute: 600,
        retry_after: Some(3),
    })
    .await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    // The daemon keeps its default budget (Qlik's tier 1): it does not know that others spend
    // most of it, so it meets 429s.
    let daemon = Daemon::start_with(|admin, state| {
        format!(
            "timezone: Europe/Stockholm\n\
             mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-storm-{admin}, keep_alive: 5s}}\n\
             poll: {{enabled: false}}\n\
             enrich: {{enabled: true, timeout: 10s}}\n\
             state: {{path: '{}'}}\n\
             admin: {{listen: '127.0.0.1:{admin}'}}\n\
             tenants:\n  - {{id: {TENANT}, url: '{}', auth: {{api_key: test-key}}}}\n\
             destinations:\n  - {{name: chat, type: slack, webhook_url: '{}/slack', rate_limit: 0}}\n",
            broker.port,
            state.display(),
            qlik.uri(),
            slack.uri()
        )
    });
    daemon.wait_subscribed();
    let payloads: Vec<Vec<u8>> = (0..FAILURES).map(failure).collect();
    let started = Instant::now();
    let port = broker.port;
    tokio::task::spawn_blocking(move || publish(port, &topic(), &payloads))
        .await
        .unwrap();

    let bound = Instant::now() + Duration::from_secs(300);
    let texts = loop {
        let texts = slack_texts(&slack).await;
        if texts.len() >= FAILURES || Instant::now() > bound {
            break texts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let last = started.elapsed();
    let load = &fake.load;
    let requests = Load::get(&load.requests);
    let rate_limited = Load::get(&load.rate_limited);
    let named = (0..APPS)
        .map(|n| {
            let name = storm_app_name(&app_id(n));
            texts.iter().filter(|t| t.contains(&name)).count()
        })
        .sum::<usize>();
    let without_log = texts
        .iter()
        .filter(|t| !t.contains("Script log ("))
        .collect::<Vec<_>>();
    eprintln!(
        "storm of {FAILURES} failures of {APPS} apps: {} alerts, {named} with the app name, \
         {} without the script log, last after {:.1} s; {requests} Qlik requests ({:.2} per alert), {rate_limited} answered \
         429 ({:.1} %); admitted: {} app, {} item, {} script log, {} reload",
        texts.len(),
        without_log.len(),
        last.as_secs_f64(),
        requests as f64 / FAILURES as f64,
        100.0 * rate_limited as f64 / requests.max(1) as f64,
        Load::get(&load.apps),
        Load::get(&load.items),
        Load::get(&load.logs),
        Load::get(&load.reloads),
    );
    assert_eq!(texts.len(), FAILURES, "every alert arrives");
    assert_eq!(named, FAILURES, "every alert names its app");
    assert!(
        without_log
            .iter()
            .all(|t| t.contains("Script log: could not be fetched")),
        "an alert without its script log says so"
    );
    // `reload.finished` carries the outcome: no `GET /reloads/{id}`.
    assert_eq!(Load::get(&load.reloads), 0);
    // Single flight and the cache: one answered look-up per app and item (a few more only if
    // an alert's enrich.timeout cut one off after Qlik had answered).
    assert!(Load::get(&load.apps) <= APPS as u64 + 5);
    assert!(Load::get(&load.items) <= APPS as u64 + 5);
    assert!(
        Load::get(&load.logs) <= FAILURES as u64,
        "a script log is asked once per reload at most"
    );
    let series = |s: &str| daemon.metric(s).unwrap_or(0.0);
    let tenant = format!("{{tenant=\"{TENANT}\"}}");
    assert_eq!(
        series(&format!("reload_butler_qlik_rate_limited_total{tenant}")),
        rate_limited as f64,
        "the daemon counts every 429"
    );
    if rate_limited > 0 {
        assert!(series(&format!("reload_butler_qlik_paused_seconds_total{tenant}")) >= 3.0);
    }
}
