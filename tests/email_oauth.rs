//! Email with OAuth2, against servers that speak the protocols on loopback: an SMTP server
//! (aiosmtpd) that offers only `AUTH XOAUTH2` and checks the bearer token, and HTTP servers that
//! answer like the Entra ID token endpoint and Microsoft Graph `sendMail`, errors included.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::qlik::qlik_fake;
use common::smtp::{SmtpOptions, SmtpServer, XOAuth2};
use common::*;
use wiremock::matchers::{body_string_contains, header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "s3cr3t~Value.of-the~app";

fn token(access: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access
    }))
}

/// Entra ID's answer to a wrong client secret (status, `error`, AADSTS description and codes).
fn wrong_secret() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(serde_json::json!({
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-0000-0000-000000000001'. Trace ID: 0f1e Correlation ID: 9a8b Timestamp: 2026-12-02 10:00:00Z",
        "error_codes": [7000215],
        "timestamp": "2026-12-02 10:00:00Z",
        "trace_id": "0f1e",
        "correlation_id": "9a8b",
        "error_uri": "https://login.microsoftonline.com/error?code=7000215"
    }))
}

fn token_path() -> &'static str {
    "/tenant-id/oauth2/v2.0/token"
}

/// A client-credentials form POST of our client, for `scope` (form-encoded).
fn client_credentials(scope_encoded: &'static str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(token_path()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=rb-app"))
        .and(body_string_contains(
            "client_secret=s3cr3t%7EValue.of-the%7Eapp",
        ))
        .and(body_string_contains(scope_encoded))
}

const OUTLOOK_SCOPE: &str = "scope=https%3A%2F%2Foutlook.office365.com%2F.default";
const GRAPH_SCOPE: &str = "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";

/// A relay that takes only `AUTH XOAUTH2` as alerts@acme.com with one of `tokens`.
fn xoauth2_relay(pki: &TestPki, security: &str, tokens: &[&str], gmail: bool) -> SmtpServer {
    SmtpServer::start_xoauth2(
        SmtpOptions {
            security,
            pki: Some(pki),
            login: None,
            fail: None,
        },
        XOAuth2 {
            user: "alerts@acme.com",
            tokens,
            gmail,
        },
    )
}

fn assert_no_secrets(text: &str, tokens: &[&str]) {
    assert!(!text.contains(SECRET), "the client secret leaked:\n{text}");
    for t in tokens {
        assert!(!text.contains(t), "token {t} leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_renews_a_refused_token_once_and_mails_each_recipient_once() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let smtp = xoauth2_relay(&pki, "starttls", &["fresh-token"], false);
    let tokens = MockServer::start().await;
    // The first token is one the relay no longer takes (revoked); the next one is good.
    client_credentials(OUTLOOK_SCOPE)
        .respond_with(token("stale-token"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&tokens)
        .await;
    client_credentials(OUTLOOK_SCOPE)
        .respond_with(token("fresh-token"))
        .mount(&tokens)
        .await;
    let broker = Broker::start();
    let qlik = qlik_fake().await;
    let daemon = Daemon::start_with(|admin, state| {
        format!(
            "mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-xoauth2-{admin}, keep_alive: 5s}}\n\
             poll: {{enabled: false}}\n\
             state: {{path: '{}'}}\n\
             admin: {{listen: '127.0.0.1:{admin}'}}\n\
             tenants:\n  - {{id: {TENANT}, url: '{}', auth: {{api_key: k}}}}\n\
             destinations:\n\
             \x20 - name: m365\n    type: email\n    from: 'Qlik alerts <alerts@acme.com>'\n\
             \x20   recipients: [ops@acme.com, bi@acme.com]\n\
             \x20   app_owner: {{enabled: true}}\n\
             \x20   smtp:\n      host: localhost\n      port: {}\n      security: starttls\n\
             \x20     username: alerts@acme.com\n      ca_file: '{}'\n\
             \x20     oauth2: {{token_url: '{}{}', client_id: rb-app, client_secret: '{SECRET}', scope: 'https://outlook.office365.com/.default'}}\n",
            broker.port,
            state.display(),
            qlik.uri(),
            smtp.port,
            pki.ca_file.display(),
            tokens.uri(),
            token_path(),
        )
    });
    daemon.wait_subscribed();
    let payload = fixture("app-reload-finished-error.json");
    std::thread::spawn(move || publish(broker.port, &topic(), &[payload]))
        .join()
        .expect("publisher");
    wait_until("three mails", Duration::from_secs(30), || {
        smtp.messages().len() == 3
    });
    wait_until("three rows delivered", Duration::from_secs(10), || {
        daemon.query("SELECT count(*) FROM outbox WHERE state = 'delivered'")[0][0] == "3"
    });
    let messages = smtp.messages();
    let mut to: Vec<String> = messages
        .iter()
        .map(|m| {
            assert_eq!(m.parsed["rcpt_tos"].as_array().map(Vec::len), Some(1));
            m.parsed["rcpt_tos"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["bi@acme.com", "jane.doe@example.com", "ops@acme.com"],
        "one mail per recipient, the owner included, none twice"
    );
    let attempts = smtp.auth_attempts();
    assert!(
        attempts.first().map(String::as_str) == Some("alerts@acme.com stale-token refused"),
        "{attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a == "alerts@acme.com stale-token refused"
                || a == "alerts@acme.com fresh-token ok"),
        "{attempts:?}"
    );
    assert!(attempts.iter().any(|a| a.ends_with("fresh-token ok")));
    let token_requests = tokens.received_requests().await.unwrap_or_default();
    assert_eq!(
        token_requests.len(),
        2,
        "one token, renewed once when refused, then cached for every mail"
    );
    assert_no_secrets(&daemon.log(), &["stale-token", "fresh-token"]);
}

/// Runs `test-alert` with `config`; (exit code, stdout).
async fn test_alert(config: String) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, config).expect("write");
    let out: Output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_reload-butler"))
            .args(["--config", file.to_str().expect("utf-8"), "test-alert"])
            .output()
            .expect("runs")
    })
    .await
    .expect("join");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

const HEAD: &str = "poll: {enabled: false}\nenrich: {enabled: false}\n\
    tenants: [{id: xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct, url: 'https://acme.eu.qlikcloud.com'}]\n\
    destinations:\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_style_refusal_is_renewed_too_and_test_alert_delivers() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let smtp = xoauth2_relay(&pki, "tls", &["ya29.fresh"], true);
    let tokens = MockServer::start().await;
    let scope = "scope=https%3A%2F%2Fmail.google.com%2F";
    client_credentials(scope)
        .respond_with(token("ya29.stale"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&tokens)
        .await;
    client_credentials(scope)
        .respond_with(token("ya29.fresh"))
        .mount(&tokens)
        .await;
    let (code, out) = test_alert(format!(
        "{HEAD}  - name: gmail\n    type: email\n    from: alerts@acme.com\n    recipients: [a@acme.com, b@acme.com]\n\
         \x20   smtp: {{host: localhost, port: {}, security: tls, username: alerts@acme.com, ca_file: '{}',\n\
         \x20           oauth2: {{token_url: '{}{}', client_id: rb-app, client_secret: '{SECRET}', scope: 'https://mail.google.com/'}}}}\n",
        smtp.port,
        pki.ca_file.display(),
        tokens.uri(),
        token_path()
    ))
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("gmail → a@acme.com: delivered (250"), "{out}");
    assert!(out.contains("gmail → b@acme.com: delivered (250"), "{out}");
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(
        smtp.auth_attempts()
            .iter()
            .filter(|a| a.ends_with("refused"))
            .count(),
        1,
        "{:?}",
        smtp.auth_attempts()
    );
    assert_eq!(
        tokens.received_requests().await.unwrap_or_default().len(),
        2
    );
    assert_no_secrets(&out, &["ya29.stale", "ya29.fresh"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alert_says_plainly_what_a_token_refusal_means() {
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(wrong_secret())
        .mount(&tokens)
        .await;
    Mock::given(method("POST"))
        .and(path("/consent/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_grant",
            "error_description": "AADSTS65001: The user or administrator has not consented to use the application with ID 'rb-app'.\r\nTrace ID: 1\r\nCorrelation ID: 2",
            "error_codes": [65001]
        })))
        .mount(&tokens)
        .await;
    let graph = MockServer::start().await;
    let (code, out) = test_alert(format!(
        "{HEAD}  - name: smtp-m365\n    type: email\n    from: alerts@acme.com\n    recipients: [a@acme.com]\n\
         \x20   smtp: {{host: localhost, port: 1, username: alerts@acme.com,\n\
         \x20           oauth2: {{token_url: '{0}{1}', client_id: rb-app, client_secret: '{SECRET}', scope: 'https://outlook.office365.com/.default'}}}}\n\
         \x20 - name: graph-m365\n    type: email\n    from: alerts@acme.com\n    recipients: [a@acme.com]\n\
         \x20   transport: graph\n\
         \x20   graph: {{token_url: '{0}/consent/oauth2/v2.0/token', client_id: rb-app, client_secret: '{SECRET}', api_url: '{2}'}}\n",
        tokens.uri(),
        token_path(),
        graph.uri()
    ))
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("smtp-m365 → a@acme.com: refused: token endpoint 127.0.0.1 answered HTTP 401: invalid_client (AADSTS7000215: Invalid client secret provided."),
        "{out}"
    );
    assert!(out.contains("wrong client secret"), "{out}");
    assert!(
        !out.contains("Trace ID"),
        "Entra's trace ids are left out: {out}"
    );
    assert!(
        out.contains("graph-m365 → a@acme.com: refused: ") && out.contains("admin consent missing"),
        "{out}"
    );
    assert!(
        graph
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "no token, no sendMail"
    );
    assert_no_secrets(&out, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_mails_each_recipient_once_through_a_token_outage_and_429() {
    let tokens = MockServer::start().await;
    // Down for a while: three 503s, then tokens again.
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&tokens)
        .await;
    client_credentials(GRAPH_SCOPE)
        .respond_with(token("graph-token"))
        .mount(&tokens)
        .await;
    let graph = MockServer::start().await;
    let send_path = r"^/v1\.0/users/alerts(@|%40)acme\.com/sendMail$";
    Mock::given(method("POST"))
        .and(path_regex(send_path))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(serde_json::json!({"error": {"code": "TooManyRequests", "message": "Application is over its MailboxConcurrency limit."}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(send_path))
        .and(header("authorization", "Bearer graph-token"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1\.0/users/nobody(@|%40)acme\.com/sendMail$"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": {"code": "ErrorInvalidRecipients", "message": "At least one recipient is not valid., Recipient 'x' is not resolved."}
        })))
        .mount(&graph)
        .await;
    let broker = Broker::start();
    let qlik = qlik_fake().await;
    let daemon = Daemon::start_with(|admin, state| {
        let graph_keys = format!(
            "{{token_url: '{}{}', client_id: rb-app, client_secret: '{SECRET}', api_url: '{}', scope: 'https://graph.microsoft.com/.default'}}",
            tokens.uri(),
            token_path(),
            graph.uri()
        );
        format!(
            "mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-graph-{admin}, keep_alive: 5s}}\n\
             poll: {{enabled: false}}\n\
             state: {{path: '{}'}}\n\
             admin: {{listen: '127.0.0.1:{admin}'}}\n\
             delivery: {{retry_initial: 200ms, retry_max: 400ms}}\n\
             tenants:\n  - {{id: {TENANT}, url: '{}', auth: {{api_key: k}}}}\n\
             destinations:\n\
             \x20 - name: graph\n    type: email\n    transport: graph\n    from: 'Qlik alerts <alerts@acme.com>'\n\
             \x20   recipients: [ops@acme.com, 'BI team <bi@acme.com>']\n    priority: high\n\
             \x20   app_owner: {{enabled: true}}\n    graph: {graph_keys}\n\
             \x20 - name: graph-refused\n    type: email\n    transport: graph\n    from: nobody@acme.com\n\
             \x20   recipients: [x@acme.com]\n    graph: {graph_keys}\n",
            broker.port,
            state.display(),
            qlik.uri(),
        )
    });
    daemon.wait_subscribed();
    let payload = fixture("app-reload-finished-error.json");
    std::thread::spawn(move || publish(broker.port, &topic(), &[payload]))
        .join()
        .expect("publisher");
    wait_until(
        "three delivered and one dead",
        Duration::from_secs(30),
        || {
            let rows = daemon.query(
                "SELECT destination, state, count(*) FROM outbox GROUP BY destination, state ORDER BY destination",
            );
            rows == [
                vec!["graph".to_owned(), "delivered".to_owned(), "3".to_owned()],
                vec![
                    "graph-refused".to_owned(),
                    "dead".to_owned(),
                    "1".to_owned(),
                ],
            ]
        },
    );
    let dead = daemon.query("SELECT last_error FROM outbox WHERE state = 'dead'");
    assert_eq!(
        dead[0][0],
        "HTTP 400 ErrorInvalidRecipients: At least one recipient is not valid., Recipient 'x' is not resolved."
    );
    let requests = graph.received_requests().await.unwrap_or_default();
    let accepted: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.url.path().contains("alerts"))
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect();
    assert_eq!(accepted.len(), 4, "three mails and the one that got 429");
    let mut to: Vec<String> = accepted[1..]
        .iter()
        .map(|body| {
            let message = &body["message"];
            let recipients = message["toRecipients"].as_array().expect("toRecipients");
            assert_eq!(recipients.len(), 1, "one mail per recipient");
            assert_eq!(message["importance"], "high");
            assert_eq!(message["body"]["contentType"], "HTML");
            assert_eq!(
                message["subject"],
                "❌ Qlik Cloud reload failed: \"Sales Dashboard <EU> & \"Nordics\"\""
            );
            let html = message["body"]["content"].as_str().unwrap_or_default();
            assert!(
                html.contains("Sales Dashboard &lt;EU&gt; &amp;"),
                "HTML escaped"
            );
            recipients[0]["emailAddress"]["address"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    to.sort();
    assert_eq!(to, ["bi@acme.com", "jane.doe@example.com", "ops@acme.com"]);
    let bi = accepted[1..]
        .iter()
        .find(|b| b["message"]["toRecipients"][0]["emailAddress"]["address"] == "bi@acme.com")
        .expect("bi");
    assert_eq!(
        bi["message"]["toRecipients"][0]["emailAddress"]["name"],
        "BI team"
    );
    let token_requests = tokens.received_requests().await.unwrap_or_default();
    assert_eq!(
        token_requests.len(),
        5,
        "three refused while the endpoint was down, then one token per destination for all its mails"
    );
    assert_no_secrets(&daemon.log(), &["graph-token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_renews_a_token_it_refused_once() {
    let tokens = MockServer::start().await;
    client_credentials(GRAPH_SCOPE)
        .respond_with(token("graph-old"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&tokens)
        .await;
    client_credentials(GRAPH_SCOPE)
        .respond_with(token("graph-new"))
        .mount(&tokens)
        .await;
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer graph-old"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, the token is expired."}
        })))
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer graph-new"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&graph)
        .await;
    let (code, out) = test_alert(format!(
        "{HEAD}  - name: graph\n    type: email\n    transport: graph\n    from: alerts@acme.com\n    recipients: [a@acme.com, b@acme.com]\n    priority: low\n\
         \x20   graph: {{token_url: '{}{}', client_id: rb-app, client_secret: '{SECRET}', api_url: '{}', scope: 'https://graph.microsoft.com/.default'}}\n",
        tokens.uri(),
        token_path(),
        graph.uri()
    ))
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("graph → a@acme.com: delivered (202 Accepted)"),
        "{out}"
    );
    assert!(
        out.contains("graph → b@acme.com: delivered (202 Accepted)"),
        "{out}"
    );
    let sent = graph.received_requests().await.unwrap_or_default();
    assert_eq!(
        sent.len(),
        3,
        "refused once, then one request per recipient"
    );
    let last: serde_json::Value = serde_json::from_slice(&sent[2].body).expect("json");
    assert_eq!(last["message"]["importance"], "low");
    assert_eq!(
        tokens.received_requests().await.unwrap_or_default().len(),
        2
    );
    assert_no_secrets(&out, &["graph-old", "graph-new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_refuses_the_renewed_token_too_is_dead_with_what_to_check() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let smtp = xoauth2_relay(&pki, "starttls", &[], false);
    let tokens = MockServer::start().await;
    client_credentials(OUTLOOK_SCOPE)
        .respond_with(token("no-mailbox-permission"))
        .mount(&tokens)
        .await;
    let (code, out) = test_alert(format!(
        "{HEAD}  - name: m365\n    type: email\n    from: alerts@acme.com\n    recipients: [a@acme.com]\n\
         \x20   smtp: {{host: localhost, port: {}, username: alerts@acme.com, ca_file: '{}',\n\
         \x20           oauth2: {{token_url: '{}{}', client_id: rb-app, client_secret: '{SECRET}', scope: 'https://outlook.office365.com/.default'}}}}\n",
        smtp.port,
        pki.ca_file.display(),
        tokens.uri(),
        token_path()
    ))
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("m365 → a@acme.com: refused: 535 5.7.3 Authentication unsuccessful — the relay refused a fresh OAuth2 token"),
        "{out}"
    );
    assert!(out.contains("Add-MailboxPermission"), "{out}");
    assert_eq!(
        smtp.auth_attempts(),
        [
            "alerts@acme.com no-mailbox-permission refused",
            "alerts@acme.com no-mailbox-permission refused"
        ],
        "renewed once, not more"
    );
    assert!(smtp.messages().is_empty());
    assert_no_secrets(&out, &["no-mailbox-permission"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_xoauth2_is_a_plain_refusal() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    // Offers only PLAIN and LOGIN, as a relay that never heard of OAuth.
    let smtp = SmtpServer::start(SmtpOptions {
        security: "starttls",
        pki: Some(&pki),
        login: Some(("alerts@acme.com", "pw")),
        fail: None,
    });
    let tokens = MockServer::start().await;
    client_credentials(OUTLOOK_SCOPE)
        .respond_with(token("unused-token"))
        .mount(&tokens)
        .await;
    let (code, out) = test_alert(format!(
        "{HEAD}  - name: old-relay\n    type: email\n    from: alerts@acme.com\n    recipients: [a@acme.com]\n\
         \x20   smtp: {{host: localhost, port: {}, username: alerts@acme.com, ca_file: '{}',\n\
         \x20           oauth2: {{token_url: '{}{}', client_id: rb-app, client_secret: '{SECRET}', scope: 'https://outlook.office365.com/.default'}}}}\n",
        smtp.port,
        pki.ca_file.display(),
        tokens.uri(),
        token_path()
    ))
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("old-relay → a@acme.com: refused: the relay does not offer AUTH XOAUTH2"),
        "{out}"
    );
    assert!(smtp.messages().is_empty());
    assert_no_secrets(&out, &["unused-token"]);
}
