//! A local server answering like Qlik Cloud's REST API, with the fixture answers of
//! tests/fixtures/api/ (wiremock), and an async wait helper for tests that use it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wiremock::matchers::{any, method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::qlik_budget::{BudgetedQlik, Limit};

pub fn api_fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Mounts the enrichment answers on `server`; the script log answers `script_log_status`
/// (200 with the fixture log, or e.g. 404).
pub async fn mount_enrichment(server: &MockServer, script_log_status: u16) {
    let json =
        |name: &str| ResponseTemplate::new(200).set_body_raw(api_fixture(name), "application/json");
    let log = match script_log_status {
        200 => ResponseTemplate::new(200).set_body_raw(
            api_fixture("reload-log-failed.txt"),
            "text/plain; charset=UTF-8",
        ),
        status => ResponseTemplate::new(status),
    };
    for (pattern, body) in [
        (r"^/api/v1/reloads/[^/]+$", json("reload-get-failed.json")),
        (r"^/api/v1/apps/[^/]+$", json("app-get.json")),
        (r"^/api/v1/items$", json("items-app.json")),
        (r"^/api/v1/users/[^/]+$", json("user-get.json")),
        (r"^/api/v1/spaces/[^/]+$", json("space-get.json")),
        (r"^/api/v1/apps/[^/]+/reloads/logs/[^/]+$", log),
    ] {
        Mock::given(method("GET"))
            .and(path_regex(pattern))
            .respond_with(body)
            .mount(server)
            .await;
    }
}

/// A Qlik Cloud fake with every enrichment answer.
pub async fn qlik_fake() -> MockServer {
    let server = MockServer::start().await;
    mount_enrichment(&server, 200).await;
    server
}

struct Budgeted(Arc<BudgetedQlik>);

impl Respond for Budgeted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let answer = self.0.answer(
            request.method.as_str(),
            request.url.path(),
            request.url.query().unwrap_or_default(),
        );
        let mut response =
            ResponseTemplate::new(answer.status).set_body_raw(answer.body, answer.content_type);
        if let Some(wait) = answer.retry_after {
            response = response.insert_header("Retry-After", wait.to_string().as_str());
        }
        response
    }
}

/// A Qlik Cloud fake that enforces `limit` like Qlik (429 + Retry-After, everything blocked
/// meanwhile); its counts are in the returned [`BudgetedQlik`].
pub async fn budgeted_qlik_fake(limit: Limit) -> (MockServer, Arc<BudgetedQlik>) {
    let server = MockServer::start().await;
    let fake = Arc::new(BudgetedQlik::new(limit));
    Mock::given(any())
        .respond_with(Budgeted(fake.clone()))
        .mount(&server)
        .await;
    (server, fake)
}

/// Polls an async `condition` every 50 ms until it holds, failing the test after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
