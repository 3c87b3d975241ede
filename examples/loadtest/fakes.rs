//! Local services the daemon talks to during a load test, all on loopback: a Qlik Cloud REST API
//! answering with the fixture answers of tests/fixtures/api/ (or, for `storm-rate-limited`, the
//! tests' rate-limited one, `tests/common/qlik_budget.rs`), Slack (200 `ok`) and Teams (202)
//! webhooks that record when each POST arrived, and the SMTP server of the tests.

#[path = "../../tests/common/qlik_budget.rs"]
pub mod qlik_budget;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tempfile::TempDir;

use crate::procs::free_port;

fn api_fixture(name: &str) -> Result<String, String> {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

/// Serves `app` on a free loopback port until the process ends; returns the base URL.
async fn serve(app: axum::Router) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind a fake: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// The fixture answers, read once.
struct QlikAnswers {
    reload: String,
    app: String,
    items: String,
    user: String,
    space: String,
    log: String,
}

/// A local Qlik Cloud REST API (the look-ups enrichment makes), answering concurrently.
pub async fn qlik() -> Result<String, String> {
    let answers = Arc::new(QlikAnswers {
        reload: api_fixture("reload-get-failed.json")?,
        app: api_fixture("app-get.json")?,
        items: api_fixture("items-app.json")?,
        user: api_fixture("user-get.json")?,
        space: api_fixture("space-get.json")?,
        log: api_fixture("reload-log-failed.txt")?,
    });
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let answers = answers.clone();
        async move { qlik_answer(&answers, &method, uri.path()) }
    });
    serve(app).await
}

/// A local Qlik Cloud REST API enforcing `limit` like Qlik (429 + Retry-After, everything
/// refused meanwhile); its counts are in the returned fake.
pub async fn budgeted_qlik(
    limit: qlik_budget::Limit,
) -> Result<(String, Arc<qlik_budget::BudgetedQlik>), String> {
    let fake = Arc::new(qlik_budget::BudgetedQlik::new(limit));
    let shared = fake.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let fake = shared.clone();
        async move {
            let answer = fake.answer(method.as_str(), uri.path(), uri.query().unwrap_or_default());
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            let mut response = (
                status,
                [(header::CONTENT_TYPE, answer.content_type)],
                answer.body,
            )
                .into_response();
            if let Some(wait) = answer.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, wait.to_string().parse().unwrap());
            }
            response
        }
    });
    Ok((serve(app).await?, fake))
}

fn qlik_answer(a: &QlikAnswers, method: &Method, path: &str) -> Response {
    let json = |body: &str| {
        (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_owned(),
        )
            .into_response()
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match segments.as_slice() {
        ["api", "v1", "reloads", _] => json(&a.reload),
        ["api", "v1", "apps", _] => json(&a.app),
        ["api", "v1", "items"] => json(&a.items),
        ["api", "v1", "users", _] => json(&a.user),
        ["api", "v1", "spaces", _] => json(&a.space),
        ["api", "v1", "apps", _, "reloads", "logs", _] => (
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            a.log.clone(),
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// One POST as the webhook fake received it.
pub struct Post {
    pub at: Instant,
    pub body: Bytes,
}

/// What the Slack and Teams fakes received, in arrival order.
#[derive(Clone, Default)]
pub struct Hooks {
    pub slack: Arc<Mutex<Vec<Post>>>,
    pub teams: Arc<Mutex<Vec<Post>>>,
}

impl Hooks {
    pub fn counts(&self) -> (usize, usize) {
        let len = |v: &Mutex<Vec<Post>>| v.lock().map(|v| v.len()).unwrap_or(0);
        (len(&self.slack), len(&self.teams))
    }

    /// When the last POST of either arrived.
    pub fn last_at(&self) -> Option<Instant> {
        let last = |v: &Mutex<Vec<Post>>| v.lock().ok().and_then(|v| v.last().map(|p| p.at));
        last(&self.slack).max(last(&self.teams))
    }

    pub fn clear(&self) {
        for v in [&self.slack, &self.teams] {
            if let Ok(mut v) = v.lock() {
                v.clear();
            }
        }
    }
}

/// Slack (`POST /slack` → 200 `ok`) and Teams (`POST /teams` → 202) on one server.
pub async fn webhooks() -> Result<(String, Hooks), String> {
    let hooks = Hooks::default();
    let recorded = hooks.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let hooks = recorded.clone();
        async move {
            let at = Instant::now();
            if method != Method::POST {
                return StatusCode::METHOD_NOT_ALLOWED.into_response();
            }
            let (list, status, text) = match uri.path() {
                "/slack" => (&hooks.slack, StatusCode::OK, "ok"),
                "/teams" => (&hooks.teams, StatusCode::ACCEPTED, ""),
                _ => return StatusCode::NOT_FOUND.into_response(),
            };
            if let Ok(mut list) = list.lock() {
                list.push(Post { at, body });
            }
            (status, text).into_response()
        }
    });
    Ok((serve(app).await?, hooks))
}

/// tests/smtp_server.py (aiosmtpd), plain SMTP, writing each message to a temp dir.
pub struct Smtp {
    pub port: u16,
    out: TempDir,
    child: Child,
    /// Messages already seen on disk (they are numbered from 1, in order).
    seen: usize,
}

impl Smtp {
    pub fn start() -> Result<Smtp, String> {
        let out = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port()?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
        let log =
            std::fs::File::create(out.path().join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--security", "none", "--out"])
            .arg(out.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("python3 {script}: {e}"))?;
        let mut smtp = Smtp {
            port,
            out,
            child,
            seen: 0,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = smtp.child.try_wait() {
                let log = std::fs::read_to_string(smtp.out.path().join("server.log"));
                return Err(format!(
                    "tests/smtp_server.py exited ({status}): {}",
                    log.unwrap_or_default()
                ));
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err("the SMTP server did not accept within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(smtp)
    }

    /// Messages received so far.
    pub fn received(&mut self) -> usize {
        let next = |n: usize| -> PathBuf { self.out.path().join(format!("{n}.eml")) };
        while next(self.seen + 1).exists() {
            self.seen += 1;
        }
        self.seen
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
