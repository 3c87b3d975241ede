//! The web console, driven in a real headless Chromium through the DevTools protocol (a small
//! CDP client over a websocket, below): the running daemon, mosquitto, and a Slack fake that
//! answers like Slack. What an admin sees and does: the failing app and a dead delivery's
//! reason on the page; Resend through the page's own form delivers once Slack answers 200, and
//! the same form sent again sends nothing; a forged POST from another origin is refused; with
//! `admin.token` on a non-loopback address, a browser without the token gets the login form.
//!
//! With `RB_SCREENSHOTS=<dir>` the first test also writes the screenshots of
//! docs/operations.md there (desktop 1280 px and phone 390 px wide).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP: &str = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";
const APP_NAME: &str = "Sales Dashboard <EU> & \"Nordics\"";
const TOKEN: &str = "c0ns0le-t0ken-for-tests";

/// A headless Chromium with one page, driven over the DevTools protocol.
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser process not yet handed to a [`Browser`].
struct Chromium(Child);

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GET to Chromium's DevTools HTTP server, which keeps the connection open: the body is read
/// by its `Content-Length`.
fn devtools_get(port: u16, path: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,900",
            ])
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromium (Debian package chromium; scripts/test installs it)");
        // Killed on drop, also when the wait below fails.
        let mut chromium = Chromium(child);
        let mut target = None;
        wait_until("Chromium's DevTools", Duration::from_secs(30), || {
            target = devtools_get(port, "/json/list").and_then(|body| {
                let list: Value = serde_json::from_str(&body).ok()?;
                list.as_array()?
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            });
            target.is_some()
        });
        let (ws, _) = tungstenite::connect(target.unwrap()).expect("DevTools websocket");
        let child = std::mem::replace(&mut chromium.0, Command::new("true").spawn().unwrap());
        Browser {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        }
    }

    /// One DevTools command; its result, or its error as `Err`.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::Text(command.to_string().into()))
            .unwrap();
        loop {
            let message = self.ws.read().expect("DevTools answers");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let answer: Value = serde_json::from_str(text).unwrap();
            if answer["id"] == id {
                return match answer.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(answer["result"].clone()),
                };
            }
        }
    }

    /// The value of a JavaScript expression in the page (`None` while it is being replaced).
    fn eval(&mut self, expression: &str) -> Option<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .ok()?;
        if result.get("exceptionDetails").is_some() {
            return None;
        }
        Some(result["result"]["value"].clone())
    }

    /// Waits until the page that `action` leads to has loaded: the old document is marked
    /// first, so a new one is told apart from it.
    fn then_wait(&mut self, action: impl FnOnce(&mut Browser)) {
        self.eval("window.__old = true");
        action(self);
        wait_until("the next page to load", Duration::from_secs(20), || {
            self.eval("window.__old === undefined && document.readyState === 'complete'")
                == Some(Value::Bool(true))
        });
    }

    fn goto(&mut self, url: &str) {
        let url = url.to_owned();
        self.then_wait(|b| {
            b.call("Page.navigate", json!({"url": url})).unwrap();
        });
    }

    /// Clicks the element `selector` names (a form's button) and waits for the next page.
    fn click(&mut self, selector: &str) {
        let script = format!("document.querySelector({selector:?}).click()");
        assert_eq!(
            self.eval(&format!("document.querySelector({selector:?}) !== null")),
            Some(Value::Bool(true)),
            "{selector} is on the page: {}",
            self.text()
        );
        self.then_wait(|b| {
            b.eval(&script);
        });
    }

    /// The page's text as a reader sees it.
    fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn url(&mut self) -> String {
        self.eval("location.href")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// A PNG of the whole page laid out `width` px wide (a phone below 600).
    fn screenshot(&mut self, file: &std::path::Path, width: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .unwrap();
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .unwrap();
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(file, png).unwrap();
        self.call("Emulation.clearDeviceMetricsOverride", json!({}))
            .unwrap();
    }
}

/// The harness publishes with rumqttc's blocking client, which runs its own runtime.
fn send(port: u16, payloads: Vec<Vec<u8>>) {
    std::thread::spawn(move || publish(port, &topic(), &payloads))
        .join()
        .expect("publisher thread");
}

/// A daemon on `broker` with one Slack destination at `slack`; `admin` is its `admin:` line.
fn daemon(broker: &Broker, slack: &str, admin: impl Fn(u16) -> String) -> Daemon {
    let slack = slack.to_owned();
    let daemon = Daemon::start_with(|port, state| {
        let base = Daemon::config_for(
            &format!("mqtt://127.0.0.1:{}", broker.port),
            port,
            state,
            "",
        );
        let default = format!("admin: {{listen: '127.0.0.1:{port}'}}\n");
        assert!(base.contains(&default), "the harness's admin line");
        base.replace(&default, &admin(port))
            + &format!(
                "delivery: {{retry_initial: 200ms, retry_max: 1s}}\n\
                 destinations:\n  - {{name: ops-slack, type: slack, webhook_url: '{slack}/hook'}}\n"
            )
    });
    daemon.wait_subscribed();
    daemon
}

async fn slack_answers(slack: &MockServer, status: u16, body: &str) {
    slack.reset().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(slack)
        .await;
}

async fn slack_posts(slack: &MockServer) -> usize {
    slack.received_requests().await.unwrap_or_default().len()
}

/// The one outbox row: (id, state, last_error).
fn delivery(daemon: &Daemon) -> (String, String, String) {
    let rows = daemon.query("SELECT id, state, coalesce(last_error, '') FROM outbox ORDER BY id");
    assert_eq!(rows.len(), 1, "{rows:?}");
    (rows[0][0].clone(), rows[0][1].clone(), rows[0][2].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_shows_the_failure_and_resends_its_dead_delivery_once() {
    let broker = Broker::start();
    let slack = MockServer::start().await;
    // Slack's answer for a webhook that was removed: permanent, so the delivery dies at once.
    slack_answers(&slack, 404, "no_service").await;
    let daemon = daemon(&broker, &slack.uri(), |port| {
        format!("admin: {{listen: '127.0.0.1:{port}'}}\n")
    });
    send(broker.port, vec![fixture("app-reload-finished-error.json")]);
    wait_until("the delivery to die", Duration::from_secs(30), || {
        daemon.query("SELECT state FROM outbox") == vec![vec!["dead".to_owned()]]
    });
    let (id, _, reason) = delivery(&daemon);
    assert!(reason.contains("no_service"), "{reason}");
    assert_eq!(slack_posts(&slack).await, 1);

    let console = format!("http://127.0.0.1:{}", daemon.admin_port);
    let mut browser = Browser::launch();
    browser.goto(&format!("{console}/"));
    let page = browser.text();
    assert!(page.contains("Failing apps now"), "{page}");
    assert!(
        page.contains(APP_NAME),
        "the failing app, by its name: {page}"
    );
    assert!(page.contains(APP), "{page}");
    assert!(
        page.contains("EngineReloadScriptError"),
        "its last error: {page}"
    );
    assert!(
        page.contains(&reason),
        "the dead delivery's reason, {reason:?}: {page}"
    );
    assert!(
        !page.contains(&slack.uri()),
        "never the webhook URL: {page}"
    );
    if let Ok(dir) = std::env::var("RB_SCREENSHOTS") {
        let dir = std::path::Path::new(&dir);
        browser.screenshot(&dir.join("console-overview.png"), 1280);
        browser.screenshot(&dir.join("console-overview-phone.png"), 390);
        browser.goto(&format!("{console}/console/alerts/1"));
        browser.screenshot(&dir.join("console-alert.png"), 1280);
        browser.goto(&format!("{console}/console/health"));
        browser.screenshot(&dir.join("console-health-phone.png"), 390);
        browser.goto(&format!("{console}/"));
    }

    // A page of another origin (the same site: loopback, another port) posts to Resend.
    let attacker = MockServer::start().await;
    let forged = format!(
        "<!doctype html><form method=post action='{console}/console/deliveries/{id}/resend'>\
         <input name=csrf value=guessed><button id=go>Win a prize</button></form>"
    );
    Mock::given(method("GET"))
        .and(path("/prize"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(forged, "text/html"))
        .mount(&attacker)
        .await;
    browser.goto(&format!("{}/prize", attacker.uri()));
    browser.click("#go");
    let refused = browser.text();
    assert!(refused.contains("Refused"), "{refused}");
    assert!(refused.contains("another site"), "{refused}");
    assert_eq!(
        delivery(&daemon).1,
        "dead",
        "the forged POST changed nothing"
    );
    // Without a browser's headers, the CSRF token alone decides.
    reload_butler::tls::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let status = client
        .post(format!("{console}/console/deliveries/{id}/resend"))
        .header("Origin", &console)
        .form(&[("csrf", "guessed")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
    assert_eq!(delivery(&daemon).1, "dead");
    assert_eq!(slack_posts(&slack).await, 1, "nothing was sent");

    // Slack works again; the admin clicks Resend on the overview.
    slack_answers(&slack, 200, "ok").await;
    browser.goto(&format!("{console}/"));
    let csrf = browser
        .eval("document.querySelector('input[name=csrf]').value")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap();
    browser.click(&format!("#resend-{id}"));
    assert!(
        browser.url().ends_with("/console/alerts/1"),
        "{}",
        browser.url()
    );
    wait_until(
        "the resent alert to be delivered",
        Duration::from_secs(30),
        || delivery(&daemon).1 == "delivered",
    );
    assert_eq!(slack_posts(&slack).await, 1, "delivered once");
    let attempts = daemon.query("SELECT attempts, detail FROM outbox");
    assert_eq!(
        attempts[0][0], "2",
        "a new attempt, the first one kept: {attempts:?}"
    );
    browser.goto(&format!("{console}/console/alerts/1"));
    let page = browser.text();
    assert!(page.contains("delivered"), "{page}");
    assert!(
        page.contains("Message as posted"),
        "the payload as sent: {page}"
    );
    assert!(
        !page.contains(&slack.uri()),
        "never the webhook URL: {page}"
    );

    // The same form sent again (a second click, a stale tab): nothing is sent twice.
    let again = format!(
        "const f = document.createElement('form'); f.method = 'post'; \
         f.action = '/console/deliveries/{id}/resend'; const i = document.createElement('input'); \
         i.name = 'csrf'; i.value = {csrf:?}; f.append(i); document.body.append(f); f.submit()"
    );
    browser.then_wait(|b| {
        b.eval(&again);
    });
    let page = browser.text();
    assert!(page.contains("no longer dead"), "{page}");
    // The row was not put back (the 409 above), so no worker can claim it again.
    assert_eq!(
        daemon.query("SELECT state, attempts FROM outbox"),
        vec![vec!["delivered".to_owned(), "2".to_owned()]]
    );
    assert_eq!(slack_posts(&slack).await, 1, "still delivered once");
}

/// This machine's own non-loopback IPv4 address, if it has one.
fn own_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_network_address_the_console_needs_the_token_and_shows_only_the_login_form() {
    let ip = own_address().expect("a non-loopback address to bind the admin endpoint to");
    let broker = Broker::start();
    let slack = MockServer::start().await;
    slack_answers(&slack, 404, "no_service").await;
    let daemon = daemon(&broker, &slack.uri(), |port| {
        format!("admin: {{listen: '{ip}:{port}', token: '{TOKEN}'}}\n")
    });
    send(broker.port, vec![fixture("app-reload-finished-error.json")]);
    wait_until("the delivery to die", Duration::from_secs(30), || {
        daemon.query("SELECT state FROM outbox") == vec![vec!["dead".to_owned()]]
    });
    let console = format!("http://{ip}:{}", daemon.admin_port);

    let mut browser = Browser::launch();
    for page in [
        "/",
        "/console/alerts",
        "/console/alerts/1",
        "/console/health",
    ] {
        browser.goto(&format!("{console}{page}"));
        let text = browser.text();
        assert!(
            text.contains("Admin token"),
            "{page}: the login form: {text}"
        );
        for data in [
            APP,
            APP_NAME,
            "no_service",
            "ops-slack",
            "EngineReloadScriptError",
        ] {
            assert!(
                !text.contains(data),
                "{page} shows {data:?} without the token: {text}"
            );
        }
    }
    // The JSON endpoints want the bearer token too.
    reload_butler::tls::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let status = client
        .get(format!("{console}/alerts"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);

    // A wrong token: the form again.
    browser.goto(&format!("{console}/"));
    browser.eval("document.getElementById('token').value = 'not-it'");
    browser.click("button[type=submit]");
    let text = browser.text();
    assert!(text.contains("not the admin token"), "{text}");
    assert!(!text.contains(APP), "{text}");

    // The token: a session, and the data.
    browser.eval(&format!(
        "document.getElementById('token').value = {TOKEN:?}"
    ));
    browser.click("button[type=submit]");
    let text = browser.text();
    assert!(
        text.contains("Failing apps now") && text.contains(APP),
        "{text}"
    );
    assert!(text.contains("no_service"), "{text}");
    assert!(!text.contains(TOKEN), "never the token: {text}");
    let cookie = browser.call("Network.getAllCookies", json!({})).unwrap();
    let cookie = &cookie["cookies"][0];
    assert_eq!(cookie["name"], "rb_console", "{cookie}");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert!(
        cookie["expires"].as_f64().unwrap() > 0.0,
        "it expires: {cookie}"
    );
    assert!(!daemon.log().contains(TOKEN), "the token is never logged");

    // The alert list's filter form (a plain GET).
    browser.goto(&format!("{console}/console/alerts"));
    browser.eval("document.getElementById('f-outcome').value = 'delivered'");
    browser.click("form.filters button");
    assert!(
        browser.url().contains("outcome=delivered"),
        "{}",
        browser.url()
    );
    assert!(
        browser.text().contains("No alerts match."),
        "{}",
        browser.text()
    );
    browser.goto(&format!(
        "{console}/console/alerts?outcome=dead&destination=ops-slack"
    ));
    assert!(browser.text().contains("no_service"), "{}", browser.text());

    // Silences: the CLI's validation, then one added and ended early.
    browser.goto(&format!("{console}/console/silences"));
    browser.eval("document.getElementById('s-for').value = '2h'");
    browser.click("form.stack button");
    let text = browser.text();
    assert!(text.contains("give at least one filter"), "{text}");
    browser.eval(&format!("document.getElementById('s-app').value = {APP:?}"));
    browser.eval("document.getElementById('s-comment').value = 'source DB upgrade'");
    browser.click("form.stack button");
    let text = browser.text();
    assert!(
        text.contains(APP) && text.contains("source DB upgrade"),
        "{text}"
    );
    assert_eq!(
        daemon.query("SELECT count(*) FROM silences WHERE ends_at > 0")[0][0],
        "1"
    );
    browser.click("form[action$='/end'] button");
    assert!(
        browser.text().contains("No ad-hoc silence"),
        "{}",
        browser.text()
    );

    // The JSON behind the pages, with the bearer token.
    let get = |path: &str| {
        client
            .get(format!("{console}{path}"))
            .bearer_auth(TOKEN)
            .send()
    };
    let failing: Value = get("/failing").await.unwrap().json().await.unwrap();
    assert_eq!(failing[0]["app_id"], APP, "{failing}");
    assert_eq!(failing[0]["last_error_code"], "EngineReloadScriptError");
    let dead: Value = get("/alerts?outcome=dead")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead[0]["deliveries"][0]["state"], "dead", "{dead}");
    let listed: Value = get("/dead").await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["resendable"], true, "{listed}");
    let one: Value = get("/alerts/1").await.unwrap().json().await.unwrap();
    assert!(one["deliveries"][0]["payload"]
        .as_str()
        .unwrap()
        .contains("slack"));
    let status: Value = get("/status").await.unwrap().json().await.unwrap();
    assert_eq!(status["broker"]["connected"], true, "{status}");
    assert_eq!(status["destinations"][0]["name"], "ops-slack");
    assert!(status["destinations"][0]["last_failure"]
        .as_str()
        .unwrap()
        .contains("no_service"));
    let everything = [failing, dead, listed, one, status]
        .map(|v| v.to_string())
        .concat();
    assert!(
        !everything.contains(&slack.uri()) && !everything.contains(TOKEN),
        "no secrets"
    );
    let resend = format!("{console}/deliveries/{}/resend", delivery(&daemon).0);
    let not_json = client
        .post(&resend)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    assert_eq!(delivery(&daemon).1, "dead");
    let queued = client
        .post(&resend)
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    // Slack still answers 404: one more attempt, dead again with its answer.
    wait_until(
        "the resent delivery to die again",
        Duration::from_secs(30),
        || {
            daemon.query("SELECT state, attempts FROM outbox")
                == vec![vec!["dead".to_owned(), "2".to_owned()]]
        },
    );
    assert_eq!(slack_posts(&slack).await, 2);

    // Logging out ends the session.
    browser.click("nav button");
    browser.goto(&format!("{console}/console/alerts"));
    assert!(browser.text().contains("Admin token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_network_address_without_a_token_the_console_is_refused() {
    let ip = own_address().expect("a non-loopback address to bind the admin endpoint to");
    let broker = Broker::start();
    let slack = MockServer::start().await;
    slack_answers(&slack, 404, "no_service").await;
    let daemon = daemon(&broker, &slack.uri(), |port| {
        format!("admin: {{listen: '{ip}:{port}'}}\n")
    });
    send(broker.port, vec![fixture("app-reload-finished-error.json")]);
    wait_until("the delivery to die", Duration::from_secs(30), || {
        daemon.query("SELECT state FROM outbox") == vec![vec!["dead".to_owned()]]
    });
    reload_butler::tls::ensure_crypto_provider();
    let client = reqwest::Client::new();
    for page in ["/", "/console/alerts/1", "/console/silences"] {
        let response = client
            .get(format!("http://{ip}:{}{page}", daemon.admin_port))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{page}");
        let body = response.text().await.unwrap();
        assert!(body.contains("set admin.token"), "{page}: {body}");
        assert!(
            !body.contains(APP) && !body.contains("no_service"),
            "{page}: {body}"
        );
    }
    assert!(
        daemon.log().contains("reason=\"no_token_configured\""),
        "{}",
        daemon.log()
    );
}
