//! The Qlik Cloud client and enrichment against a local HTTP server that answers like Qlik Cloud
//! (bodies from `fixtures/api/`), including its error answers: 429 with Retry-After, 5xx, 401,
//! 403, 404.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::sync::Arc;
use std::time::Duration;

use reload_butler::config::{EnrichConfig, Secret, TenantAuth, TenantConfig, TenantRateLimit};
use reload_butler::metrics::{Lookup, Metrics, QlikOutcome};
use reload_butler::qlik::api::{ApiError, QlikClient, SCRIPT_LOG_LIMIT};
use reload_butler::qlik::enrich::{client_for, enrich};
use reload_butler::qlik::event::{decode, ReloadEvent};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP: &str = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";
const RELOAD: &str = "67d3c8f1a2b4c5d6e7f80912";
const OWNER: &str = "65f1c2d3e4a5b6c7d8e9f012";
const SPACE: &str = "6628d931342648bd8b3de5af";
const KEY: &str = "qlik-api-key-do-not-log-7f3a";
const CLIENT_SECRET: &str = "oauth-client-secret-do-not-log-91c2";

fn app_path() -> String {
    format!("/api/v1/apps/{APP}")
}
fn reload_path() -> String {
    format!("/api/v1/reloads/{RELOAD}")
}
fn log_path() -> String {
    format!("/api/v1/apps/{APP}/reloads/logs/{RELOAD}")
}
fn user_path() -> String {
    format!("/api/v1/users/{OWNER}")
}
fn space_path() -> String {
    format!("/api/v1/spaces/{SPACE}")
}
const ITEMS_PATH: &str = "/api/v1/items";

fn fixture(name: &str) -> Vec<u8> {
    let file = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("api/{name}"))).unwrap()
}

/// The fixture event, reloaded by its owner (one user look-up serves both).
fn event() -> ReloadEvent {
    let mut event = decode(&fixture("events/app-reload-finished-error.json")).unwrap();
    event.user_id = Some(OWNER.to_owned());
    event
}

fn answer(name: &str) -> ResponseTemplate {
    let mime = if name.ends_with(".txt") {
        "text/plain; charset=UTF-8"
    } else {
        "application/json"
    };
    ResponseTemplate::new(200).set_body_raw(fixture(&format!("api/{name}")), mime)
}

fn qlik_error(status: u16, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(fixture(&format!("api/{name}")), "application/json")
}

fn settings(timeout: Duration) -> EnrichConfig {
    EnrichConfig {
        enabled: true,
        timeout,
        cache_ttl: Duration::from_secs(600),
    }
}

fn tenant(server: &MockServer, auth: TenantAuth) -> TenantConfig {
    TenantConfig {
        id: "xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct".into(),
        comment: "test".into(),
        url: server.uri().parse().expect("url"),
        auth: Some(auth),
        qmc_url: None,
        hub_url: None,
        rate_limit: TenantRateLimit::default(),
    }
}

fn client_with(
    server: &MockServer,
    auth: TenantAuth,
    timeout: Duration,
) -> (QlikClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let client = client_for(&tenant(server, auth), &settings(timeout), metrics.clone())
        .unwrap()
        .unwrap();
    (client, metrics)
}

fn api_key_client(server: &MockServer) -> (QlikClient, Arc<Metrics>) {
    client_with(
        server,
        TenantAuth::ApiKey(Secret::new(KEY)),
        Duration::from_secs(5),
    )
}

fn oauth() -> TenantAuth {
    TenantAuth::OAuth {
        client_id: "k3r48pbga2va492emvhrbnpmpnuar4ok".into(),
        client_secret: Secret::new(CLIENT_SECRET),
    }
}

fn token(access_token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
    }))
}

/// Mounts every look-up with its fixture answer, lowest priority, so a test can put an error
/// answer in front of any of them.
async fn mount_qlik(server: &MockServer) {
    let get = |p: String, body: &str| {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(answer(body))
            .with_priority(10)
    };
    get(reload_path(), "reload-get-failed.json")
        .mount(server)
        .await;
    get(app_path(), "app-get.json").mount(server).await;
    get(user_path(), "user-get.json").mount(server).await;
    get(space_path(), "space-get.json").mount(server).await;
    get(log_path(), "reload-log-failed.txt").mount(server).await;
    Mock::given(method("GET"))
        .and(path(ITEMS_PATH))
        .and(query_param("resourceType", "app"))
        .and(query_param("resourceId", APP))
        .and(query_param("noActions", "true"))
        .respond_with(answer("items-app.json"))
        .with_priority(10)
        .mount(server)
        .await;
}

async fn hits(server: &MockServer, p: &str) -> usize {
    let requests = server.received_requests().await.unwrap();
    requests.iter().filter(|r| r.url.path() == p).count()
}

async fn bearers(server: &MockServer, p: &str) -> Vec<String> {
    let requests = server.received_requests().await.unwrap();
    requests
        .iter()
        .filter(|r| r.url.path() == p)
        .filter_map(|r| {
            r.headers
                .get("authorization")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn full_enrichment_fills_every_part_from_the_answers() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    let (client, metrics) = api_key_client(&server);

    let e = enrich(&client, &event(), &metrics).await;

    assert_eq!(e.failures, vec![]);
    let reload = e.reload.unwrap();
    assert_eq!(reload.status.as_deref(), Some("FAILED"));
    assert_eq!(reload.trigger.as_deref(), Some("chronos"));
    assert_eq!(
        reload.error_code.as_deref(),
        Some("EngineReloadScriptError")
    );
    assert_eq!(
        reload.error_message.as_deref(),
        Some("error in app script or datasource")
    );
    assert!(reload
        .log
        .unwrap()
        .contains("Unknown statement: ThisFailsForSure\r\n"));
    assert_eq!(
        reload.end_time.unwrap().to_rfc3339(),
        "2025-03-14T06:12:40.322+00:00"
    );
    let app = e.app.unwrap();
    assert_eq!(
        app.name.as_deref(),
        Some("Sales Dashboard <EU> & \"Nordics\"")
    );
    assert_eq!(
        app.description.as_deref(),
        Some("Daily sales KPIs for EU region")
    );
    assert_eq!(app.owner_id.as_deref(), Some(OWNER));
    assert_eq!(app.space_id.as_deref(), Some(SPACE));
    assert_eq!(
        (app.publish_time, app.has_section_access),
        (None, Some(false))
    );
    let item = e.item.unwrap();
    assert_eq!(item.tags, ["finance", "alert-owner"]);
    assert_eq!(item.app_file_size, Some(41_943_040));
    assert_eq!(item.app_memory_size, Some(183_500_800));
    assert_eq!(
        item.open_url.as_deref(),
        Some("https://acme-analytics.eu.qlikcloud.com/sense/app/8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43")
    );
    let owner = e.owner.unwrap();
    assert_eq!(owner.id, OWNER);
    assert_eq!(owner.name.as_deref(), Some("Jane Doe"));
    assert_eq!(owner.email.as_deref(), Some("jane.doe@example.com"));
    let space = e.space.unwrap();
    assert_eq!(
        (space.id.as_str(), space.name.as_deref()),
        (SPACE, Some("Finance EU"))
    );
    assert_eq!(space.kind.as_deref(), Some("shared"));
    let log = String::from_utf8(fixture("api/reload-log-failed.txt")).unwrap();
    assert_eq!(e.script_log.as_deref(), Some(log.as_str()));
    assert!(
        log.contains("\r\n"),
        "the fixture log keeps its CRLF line endings"
    );
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::Ok), 6);
    assert_eq!(metrics.qlik_request_seconds.count(), 6);
}

#[tokio::test]
async fn every_request_carries_the_api_key_as_bearer() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(path(app_path()))
        .respond_with(answer("app-get.json"))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _) = api_key_client(&server);
    client.app(APP).await.unwrap();
    assert_eq!(
        bearers(&server, &app_path()).await,
        [format!("Bearer {KEY}")]
    );
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    Mock::given(path(reload_path()))
        .respond_with(qlik_error(429, "error-429.json").insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let (client, metrics) = api_key_client(&server);

    let reload = client.reload(RELOAD).await.unwrap();

    assert_eq!(reload.status.as_deref(), Some("FAILED"));
    assert_eq!(hits(&server, &reload_path()).await, 2);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::RateLimited), 1);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::Ok), 1);
    assert_eq!(metrics.qlik_request_seconds.count(), 2);
}

#[tokio::test]
async fn server_error_is_retried_with_backoff() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    Mock::given(path(app_path()))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let (client, metrics) = api_key_client(&server);

    let app = client.app(APP).await.unwrap();

    assert_eq!(
        app.name.as_deref(),
        Some("Sales Dashboard <EU> & \"Nordics\"")
    );
    assert_eq!(hits(&server, &app_path()).await, 2);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::ServerError), 1);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::Ok), 1);
}

#[tokio::test]
async fn gives_up_after_three_retries() {
    let server = MockServer::start().await;
    Mock::given(path(reload_path()))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    let (client, metrics) = api_key_client(&server);

    let error = client.reload(RELOAD).await.unwrap_err();

    assert_eq!(error.status(), Some(503));
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::ServerError), 4);
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    Mock::given(path(space_path()))
        .respond_with(answer("space-get.json").set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let (client, metrics) = client_with(
        &server,
        TenantAuth::ApiKey(Secret::new(KEY)),
        Duration::from_millis(300),
    );

    let space = client.space(SPACE).await.unwrap();

    assert_eq!(space.name.as_deref(), Some("Finance EU"));
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::Timeout), 1);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::Ok), 1);
}

#[tokio::test]
async fn missing_script_log_costs_only_the_script_log() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    Mock::given(path(log_path()))
        .respond_with(qlik_error(404, "error-404-reloads.json"))
        .with_priority(1)
        .mount(&server)
        .await;
    let (client, metrics) = api_key_client(&server);

    let e = enrich(&client, &event(), &metrics).await;

    assert_eq!(e.script_log, None);
    assert_eq!(e.failures.len(), 1);
    assert_eq!(e.failures[0].lookup, "script_log");
    assert!(
        e.failures[0].error.contains("HTTP 404"),
        "{}",
        e.failures[0].error
    );
    assert!(
        e.failures[0].error.contains("Reload not found"),
        "{}",
        e.failures[0].error
    );
    assert!(e.reload.is_some() && e.app.is_some() && e.item.is_some());
    assert!(e.owner.is_some() && e.space.is_some());
    assert_eq!(hits(&server, &log_path()).await, 1, "404 is not retried");
    assert_eq!(metrics.enrich_failures.get(Lookup::ScriptLog), 1);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::NotFound), 1);
}

#[tokio::test]
async fn forbidden_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path(app_path()))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "errors": [{"code": "APPS-403", "title": "Forbidden", "detail": "no access to app"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (client, metrics) = api_key_client(&server);

    let error = client.app(APP).await.unwrap_err();

    assert_eq!(error.status(), Some(403));
    assert_eq!(
        error.to_string(),
        "GET /api/v1/apps/{appId}: HTTP 403 (Forbidden: no access to app)"
    );
    assert_eq!(hits(&server, &app_path()).await, 1);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::Unauthorized), 1);
}

#[tokio::test]
async fn oauth_token_is_fetched_once_for_many_calls() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_json(json!({
            "client_id": "k3r48pbga2va492emvhrbnpmpnuar4ok",
            "client_secret": CLIENT_SECRET,
            "grant_type": "client_credentials",
            "scope": "user_default",
        })))
        .respond_with(answer("oauth-token-response.json"))
        .expect(1)
        .mount(&server)
        .await;
    let (client, metrics) = client_with(&server, oauth(), Duration::from_secs(5));

    let e = enrich(&client, &event(), &metrics).await;
    client.reload(RELOAD).await.unwrap();

    assert_eq!(e.failures, vec![]);
    let issued = fixture_json("oauth-token-response.json")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = format!("Bearer {issued}");
    let requests = server.received_requests().await.unwrap();
    let api_calls: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() != "/oauth/token")
        .collect();
    assert_eq!(api_calls.len(), 7);
    for request in api_calls {
        assert_eq!(
            request.headers["authorization"],
            expected.as_str(),
            "{}",
            request.url
        );
    }
    assert_eq!(hits(&server, "/oauth/token").await, 1);
}

#[tokio::test]
async fn oauth_token_refused_with_401_is_renewed_once() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    Mock::given(path("/oauth/token"))
        .respond_with(token("old-token", 21_600))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(token("new-token", 21_600))
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer old-token"))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(1)
        .mount(&server)
        .await;
    let (client, metrics) = client_with(&server, oauth(), Duration::from_secs(5));

    let user = client.user(OWNER).await.unwrap();

    assert_eq!(user.name.as_deref(), Some("Jane Doe"));
    assert_eq!(
        bearers(&server, &user_path()).await,
        ["Bearer old-token", "Bearer new-token"]
    );
    assert_eq!(hits(&server, "/oauth/token").await, 2);
    assert_eq!(metrics.qlik_requests.get(QlikOutcome::Unauthorized), 1);
    // The renewed token stays in use.
    client.space(SPACE).await.unwrap();
    assert_eq!(hits(&server, "/oauth/token").await, 2);
}

#[tokio::test]
async fn oauth_token_is_renewed_when_it_expires() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    Mock::given(path("/oauth/token"))
        .respond_with(token("short-lived", 1))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(token("next", 21_600))
        .mount(&server)
        .await;
    let (client, _) = client_with(&server, oauth(), Duration::from_secs(5));

    client.reload(RELOAD).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client.reload(RELOAD).await.unwrap();

    assert_eq!(
        bearers(&server, &reload_path()).await,
        ["Bearer short-lived", "Bearer next"]
    );
    assert_eq!(hits(&server, "/oauth/token").await, 2);
}

#[tokio::test]
async fn a_second_alert_for_the_same_app_uses_the_cache() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    let (client, metrics) = api_key_client(&server);

    let first = enrich(&client, &event(), &metrics).await;
    let second = enrich(&client, &event(), &metrics).await;

    assert_eq!(first, second);
    assert_eq!(first.failures, vec![]);
    for p in [app_path(), ITEMS_PATH.to_owned(), user_path(), space_path()] {
        assert_eq!(hits(&server, &p).await, 1, "{p}");
    }
    for p in [reload_path(), log_path()] {
        assert_eq!(hits(&server, &p).await, 2, "{p}");
    }
}

#[tokio::test]
async fn personal_app_without_owner_in_the_event_gets_owner_from_the_app_and_no_space() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    let mut app = fixture_json("app-get.json");
    app["attributes"]["spaceId"] = json!("");
    let mut items = fixture_json("items-app.json");
    items["data"][0].as_object_mut().unwrap().remove("spaceId");
    Mock::given(path(app_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(app))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path(ITEMS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(items))
        .with_priority(1)
        .mount(&server)
        .await;
    let mut event = event();
    event.owner_id = None;
    event.space_id = None;
    let (client, metrics) = api_key_client(&server);

    let e = enrich(&client, &event, &metrics).await;

    assert_eq!(e.failures, vec![]);
    assert_eq!(
        e.owner.unwrap().email.as_deref(),
        Some("jane.doe@example.com")
    );
    assert_eq!(e.space, None);
    assert_eq!(hits(&server, &space_path()).await, 0);
}

#[tokio::test]
async fn hostile_ids_never_leave_the_api_path() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    let (client, metrics) = api_key_client(&server);
    for id in ["../../x", "..", "a/b", "..%2f..%2fx", "x?y=1", ""] {
        assert!(
            matches!(client.reload(id).await, Err(ApiError::InvalidId { .. })),
            "{id:?}"
        );
        assert!(
            matches!(client.app(id).await, Err(ApiError::InvalidId { .. })),
            "{id:?}"
        );
        assert!(
            matches!(client.user(id).await, Err(ApiError::InvalidId { .. })),
            "{id:?}"
        );
        assert!(
            matches!(client.space(id).await, Err(ApiError::InvalidId { .. })),
            "{id:?}"
        );
        assert!(client.script_log(APP, id).await.is_err(), "{id:?}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 0);

    let mut event = event();
    event.reload_id = "../../x".into();
    let e = enrich(&client, &event, &metrics).await;
    let failed: Vec<&str> = e.failures.iter().map(|f| f.lookup.as_str()).collect();
    assert_eq!(failed, ["reload", "script_log"]);
    assert!(e.app.is_some() && e.item.is_some() && e.owner.is_some() && e.space.is_some());
    let allowed = [app_path(), ITEMS_PATH.to_owned(), user_path(), space_path()];
    for request in server.received_requests().await.unwrap() {
        assert!(
            allowed.contains(&request.url.path().to_owned()),
            "{}",
            request.url
        );
    }
}

#[tokio::test]
async fn a_large_script_log_comes_back_whole() {
    let server = MockServer::start().await;
    let log: String = (0..40_000)
        .map(|i| {
            format!(
                "2025-03-14 06:12:31      {i:06}  LOAD * FROM [lib://Data/sales.qvd] (qvd);\r\n"
            )
        })
        .collect();
    assert!(log.len() > 2_000_000);
    Mock::given(path(log_path()))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(log.clone(), "text/plain; charset=UTF-8"),
        )
        .mount(&server)
        .await;
    let (client, _) = api_key_client(&server);

    assert_eq!(client.script_log(APP, RELOAD).await.unwrap(), log);
}

#[tokio::test]
async fn an_oversized_script_log_keeps_its_head_and_says_so() {
    let server = MockServer::start().await;
    let line = "x".repeat(1022) + "\r\n";
    let log = line.repeat(SCRIPT_LOG_LIMIT / line.len() + 100);
    Mock::given(path(log_path()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(log.clone(), "text/plain"))
        .mount(&server)
        .await;
    let (client, _) = api_key_client(&server);

    let got = client.script_log(APP, RELOAD).await.unwrap();

    let (head, marker) = got.split_at(SCRIPT_LOG_LIMIT);
    assert_eq!(head, &log[..SCRIPT_LOG_LIMIT]);
    assert!(
        marker.starts_with("\r\n[reload-butler: script log cut here"),
        "{marker}"
    );
}

#[tokio::test]
async fn secrets_never_appear_in_errors() {
    let server = MockServer::start().await;
    // A hostile or confused server that echoes what it was sent.
    Mock::given(path(app_path()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errors": [{"title": "Invalid API key", "detail": format!("key {KEY} revoked")}]
        })))
        .mount(&server)
        .await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errors": [{"title": "invalid_client", "detail": format!("bad secret {CLIENT_SECRET}")}]
        })))
        .mount(&server)
        .await;
    let (key_client, _) = api_key_client(&server);
    let (oauth_client, _) = client_with(&server, oauth(), Duration::from_secs(5));

    let key_error = key_client.app(APP).await.unwrap_err();
    let oauth_error = oauth_client.app(APP).await.unwrap_err();

    assert_eq!(key_error.status(), Some(401));
    assert_eq!(
        hits(&server, &app_path()).await,
        1,
        "a refused API key is not retried"
    );
    for text in [
        key_error.to_string(),
        format!("{key_error:?}"),
        oauth_error.to_string(),
        format!("{oauth_error:?}"),
        format!("{key_client:?} {oauth_client:?}"),
    ] {
        assert!(
            !text.contains(KEY) && !text.contains(CLIENT_SECRET),
            "{text}"
        );
    }
    assert!(
        oauth_error.to_string().contains("HTTP 401"),
        "{oauth_error}"
    );
}

#[tokio::test]
async fn a_tenant_without_credentials_has_no_client() {
    let server = MockServer::start().await;
    let mut tenant = tenant(&server, TenantAuth::ApiKey(Secret::new(KEY)));
    tenant.auth = None;
    let metrics = Arc::new(Metrics::default());
    let client = client_for(&tenant, &settings(Duration::from_secs(5)), metrics).unwrap();
    assert!(client.is_none());
}

#[tokio::test]
async fn the_triggering_user_is_looked_up_when_it_is_not_the_owner() {
    let server = MockServer::start().await;
    mount_qlik(&server).await;
    let scheduler = "6601a9b8c7d6e5f4a3b2c1d0";
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/users/{scheduler}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": scheduler, "name": "Sam Scheduler", "email": "sam@example.com", "subject": "s"
        })))
        .mount(&server)
        .await;
    let (client, metrics) = api_key_client(&server);
    let mut e_in = event();
    e_in.user_id = Some(scheduler.to_owned());
    let e = enrich(&client, &e_in, &metrics).await;
    assert_eq!(e.failures, vec![]);
    assert_eq!(
        e.user.map(|u| u.name),
        Some(Some("Sam Scheduler".to_owned()))
    );
    assert_eq!(e.owner.map(|o| o.name), Some(Some("Jane Doe".to_owned())));

    // Reloaded by the owner: the owner's answer serves as the user, no second call.
    let e = enrich(&client, &event(), &metrics).await;
    assert_eq!(e.user.and_then(|u| u.name).as_deref(), Some("Jane Doe"));
    assert_eq!(hits(&server, &user_path()).await, 1, "the owner is cached");
}
