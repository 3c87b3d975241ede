//! `setup webhook` and `doctor` against a local fake of Qlik Cloud's Users, API-keys and Webhooks
//! APIs (shapes from `@qlik/api`), a real broker and a real state store: the webhook is created
//! once with the right body and a private secret file, a second run creates none; `doctor`
//! passes when all is well and names failing deliveries and an expiring key; no secret is ever
//! printed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PUBLIC_URL: &str = "https://alerts.acme.example/qlik/webhook";

#[derive(Default)]
struct State {
    webhooks: Vec<Value>,
    posts: usize,
    patches: usize,
    deliveries: Vec<Value>,
    key_expiry: String,
}

/// Qlik Cloud's Users, API-keys and Webhooks APIs, keeping the webhooks it is given.
#[derive(Clone, Default)]
struct Qlik(Arc<Mutex<State>>);

impl Respond for Qlik {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap();
        let path = request.url.path().to_owned();
        let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
        match (request.method.as_str(), path.as_str()) {
            ("GET", "/api/v1/users/me") => ok(json!({
                "id": "u1", "name": "Alerts Bot", "status": "active",
                "assignedRoles": [{"id": "r1", "name": "TenantAdmin", "level": "admin", "type": "default"}]
            })),
            ("GET", "/api/v1/api-keys/k1") => ok(json!({
                "id": "k1", "status": "active", "expiry": state.key_expiry,
                "sub": "u1", "subType": "user", "tenantId": TENANT, "description": "alerts", "createdByUser": "u1"
            })),
            ("GET", "/api/v1/webhooks") => {
                let url = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "url")
                    .map(|(_, v)| v.into_owned());
                let data: Vec<Value> = state
                    .webhooks
                    .iter()
                    .filter(|w| url.as_deref().is_none_or(|u| w["url"] == u))
                    .cloned()
                    .collect();
                ok(json!({"data": data}))
            }
            ("POST", "/api/v1/webhooks") => {
                let mut hook: Value = serde_json::from_slice(&request.body).unwrap();
                state.posts += 1;
                hook["id"] = json!(format!("wh{}", state.posts));
                state.webhooks.push(hook.clone());
                hook.as_object_mut().unwrap().remove("secret");
                ResponseTemplate::new(201).set_body_json(hook)
            }
            ("PATCH", p) if p.starts_with("/api/v1/webhooks/") => {
                let id = p.trim_start_matches("/api/v1/webhooks/").to_owned();
                let ops: Vec<Value> = serde_json::from_slice(&request.body).unwrap();
                state.patches += 1;
                let Some(hook) = state.webhooks.iter_mut().find(|w| w["id"] == id.as_str()) else {
                    return ResponseTemplate::new(404);
                };
                for op in ops {
                    assert_eq!(op["op"], "replace");
                    let field = op["path"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches('/')
                        .to_owned();
                    hook[field] = op["value"].clone();
                }
                ResponseTemplate::new(204)
            }
            ("GET", p) if p.ends_with("/deliveries") => ok(json!({"data": state.deliveries})),
            _ => ResponseTemplate::new(404),
        }
    }
}

/// An API key shaped like Qlik's (a JWT naming its id); never printed by the commands.
fn api_key() -> String {
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"jti": "k1", "sub": "u1", "iss": "qlik.api/api-keys"}).to_string());
    format!("eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9.{claims}.c2lnbmF0dXJl")
}

struct Setup {
    dir: tempfile::TempDir,
    qlik: Qlik,
    _server: MockServer,
    _broker: Broker,
    _runtime: tokio::runtime::Runtime,
}

impl Setup {
    fn new() -> Setup {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let qlik = Qlik::default();
        qlik.0.lock().unwrap().key_expiry =
            (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339();
        let server = runtime.block_on(async {
            let server = MockServer::start().await;
            Mock::given(any())
                .respond_with(qlik.clone())
                .mount(&server)
                .await;
            server
        });
        let broker = Broker::start();
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-doctor}}\n\
             state: {{path: '{}'}}\n\
             alert_on: [reload_failed, engine_attempt_failed]\n\
             tenants:\n  - {{id: {TENANT}, url: '{}', auth: {{api_key: '{}'}}}}\n\
             gateway: {{public_url: '{PUBLIC_URL}', secrets: ['${{QLIK_WEBHOOK_SECRET:-}}']}}\n\
             destinations:\n  - {{name: chat, type: slack, webhook_url: '{}/slack'}}\n",
            broker.port,
            dir.path().join("state.db").display(),
            server.uri(),
            api_key(),
            server.uri(),
        );
        std::fs::write(dir.path().join("config.yaml"), config).unwrap();
        Setup {
            dir,
            qlik,
            _server: server,
            _broker: broker,
            _runtime: runtime,
        }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_reload-butler"))
            .current_dir(self.dir.path())
            .arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains(&api_key()),
            "the API key was printed: {text}"
        );
        (out.status.code(), text)
    }

    fn secret_file(&self) -> std::path::PathBuf {
        self.dir.path().join("secret.txt")
    }

    fn setup(&self) -> (Option<i32>, String) {
        let file = self.secret_file();
        self.run(&[
            "setup",
            "webhook",
            "--tenant",
            TENANT,
            "--secret-file",
            file.to_str().unwrap(),
        ])
    }
}

fn secret_in(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

#[test]
fn setup_webhook_creates_one_webhook_and_a_private_secret_then_changes_nothing() {
    let s = Setup::new();
    let (code, out) = s.setup();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("created webhook wh1"), "{out}");
    let secret = secret_in(&s.secret_file());
    assert_eq!(secret.len(), 48);
    assert!(!out.contains(&secret), "the secret was printed: {out}");
    let mode = std::fs::metadata(s.secret_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    {
        let state = s.qlik.0.lock().unwrap();
        assert_eq!(state.posts, 1);
        let hook = &state.webhooks[0];
        assert_eq!(hook["url"], PUBLIC_URL);
        assert_eq!(hook["enabled"], true);
        assert_eq!(hook["level"], "tenant");
        assert_eq!(hook["secret"], secret.as_str());
        assert_eq!(
            hook["eventTypes"],
            json!([
                "com.qlik.v1.app.reload.finished",
                "com.qlik.v1.reload.finished"
            ])
        );
    }

    // Again: the same webhook is updated with the same secret; none is created.
    let (code, out) = s.setup();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("updated webhook wh1"), "{out}");
    assert!(!out.contains(&secret), "{out}");
    let state = s.qlik.0.lock().unwrap();
    assert_eq!(
        (state.posts, state.patches, state.webhooks.len()),
        (1, 1, 1)
    );
    assert_eq!(state.webhooks[0]["secret"], secret.as_str());
    assert_eq!(secret_in(&s.secret_file()), secret, "the secret is kept");
}

#[test]
fn doctor_passes_when_all_is_well_and_names_failed_deliveries_and_an_expiring_key() {
    let s = Setup::new();
    let (code, out) = s.run(&["doctor"]);
    assert_eq!(code, Some(1), "no webhook yet: {out}");
    assert!(out.contains("no webhook calls"), "{out}");
    assert!(out.contains("setup webhook --tenant"), "{out}");

    assert_eq!(s.setup().0, Some(0));
    s.qlik.0.lock().unwrap().deliveries = vec![json!({
        "id": "d1", "webhookId": "wh1", "eventType": "com.qlik.v1.reload.finished",
        "status": "success", "triggeredAt": "2026-12-02T08:00:00Z", "response": {"statusCode": 200}
    })];
    let (code, out) = s.run(&["doctor"]);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "ok    config",
        "ok    state store",
        "ok    broker: connected",
        "credentials: accepted",
        "TenantAdmin",
        "API key: active, expires on",
        "webhook wh1 enabled",
        "ok    destination chat",
        "all checks passed",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }

    {
        let mut state = s.qlik.0.lock().unwrap();
        state.key_expiry = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
        state.deliveries.insert(
            0,
            json!({
                "id": "d2", "webhookId": "wh1", "eventType": "com.qlik.v1.reload.finished",
                "status": "fail", "statusMessage": "gateway answered 503",
                "triggeredAt": "2026-12-02T09:00:00Z", "response": {"statusCode": 503}
            }),
        );
    }
    let (code, out) = s.run(&["doctor"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  tenant"), "{out}");
    assert!(
        out.contains("1 of the last 2 deliveries of webhook wh1 failed"),
        "{out}"
    );
    assert!(out.contains("HTTP 503"), "{out}");
    assert!(
        out.contains("create a new API key for tenants[].auth.api_key before then"),
        "{out}"
    );
    assert!(out.contains("2 checks failed"), "{out}");
    let secret = secret_in(&s.secret_file());
    assert!(!out.contains(&secret), "{out}");
}

/// `doctor` signs in to an SMTP relay (EHLO, STARTTLS, AUTH) without sending: a wrong password
/// fails with the relay's answer, the right one passes, and neither is printed.
#[test]
fn doctor_signs_in_to_the_smtp_relay_without_sending() {
    let s = Setup::new();
    let pki = TestPki::create(s.dir.path());
    let smtp = common::smtp::SmtpServer::start(common::smtp::SmtpOptions {
        security: "starttls",
        pki: Some(&pki),
        login: Some(("alerts", "s3cret-smtp")),
        fail: None,
    });
    let path = s.dir.path().join("config.yaml");
    let base = std::fs::read_to_string(&path).unwrap();
    let with_password = |password: &str| {
        format!(
            "{base}  - {{name: mail, type: email, from: qlik@acme.com, recipients: [ops@acme.com], \
             smtp: {{host: localhost, port: {}, security: starttls, username: alerts, password: '{password}', ca_file: '{}'}}}}\n",
            smtp.port,
            pki.ca_file.display()
        )
    };
    std::fs::write(&path, with_password("not-the-password")).unwrap();
    let (code, out) = s.run(&["doctor"]);
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("destination mail"))
        .unwrap_or_default();
    assert!(line.starts_with("FAIL") && line.contains("535"), "{out}");
    assert!(!out.contains("not-the-password"), "{out}");

    std::fs::write(&path, with_password("s3cret-smtp")).unwrap();
    let (_, out) = s.run(&["doctor"]);
    assert!(
        out.contains(&format!(
            "ok    destination mail: localhost:{} answers and accepts the sign-in",
            smtp.port
        )),
        "{out}"
    );
    assert!(!out.contains("s3cret-smtp"), "{out}");
    assert!(smtp.messages().is_empty(), "doctor sends no mail");
}
