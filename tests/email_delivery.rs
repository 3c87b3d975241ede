//! Email end to end: mosquitto → daemon → a real SMTP server (aiosmtpd) that requires STARTTLS
//! and AUTH, with certificates made at test time; recipients from the config and the app owner.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::time::Duration;

use common::qlik::qlik_fake;
use common::smtp::{SmtpOptions, SmtpServer};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_mailed_to_each_recipient_and_the_owner_over_starttls_with_auth() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let smtp = SmtpServer::start(SmtpOptions {
        security: "starttls",
        pki: Some(&pki),
        login: Some(("alerts", "s3cret-smtp")),
        fail: None,
    });
    let broker = Broker::start();
    let qlik = qlik_fake().await;
    let daemon = Daemon::start_with(|admin, state| {
        format!(
            "timezone: Europe/Stockholm\n\
             mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-mail-{admin}, keep_alive: 5s}}\n\
             poll: {{enabled: false}}\n\
             state: {{path: '{}'}}\n\
             admin: {{listen: '127.0.0.1:{admin}'}}\n\
             tenants:\n  - {{id: {TENANT}, url: '{}', auth: {{api_key: k}}}}\n\
             destinations:\n\
             \x20 - name: ops-email\n    type: email\n    from: 'Qlik alerts <qlik@acme.com>'\n\
             \x20   recipients: [ops@acme.com, OPS@acme.com, bi@acme.com]\n    priority: high\n\
             \x20   app_owner: {{enabled: true, include_all: true}}\n\
             \x20   smtp: {{host: localhost, port: {}, security: starttls, username: alerts, password: s3cret-smtp, ca_file: '{}'}}\n\
             \x20 - name: owner-excluded\n    type: email\n    from: qlik@acme.com\n    recipients: [team@acme.com]\n\
             \x20   app_owner: {{enabled: true, exclude: [JANE.DOE@example.com]}}\n\
             \x20   smtp: {{host: localhost, port: {}, security: starttls, username: alerts, password: s3cret-smtp, ca_file: '{}'}}\n",
            broker.port,
            state.display(),
            qlik.uri(),
            smtp.port,
            pki.ca_file.display(),
            smtp.port,
            pki.ca_file.display(),
        )
    });
    daemon.wait_subscribed();
    let payload = fixture("app-reload-finished-error.json");
    std::thread::spawn(move || publish(broker.port, &topic(), &[payload]))
        .join()
        .expect("publisher");
    wait_until("four messages", Duration::from_secs(30), || {
        smtp.messages().len() == 4
    });
    std::thread::sleep(Duration::from_millis(300));
    let messages = smtp.messages();
    assert_eq!(
        messages.len(),
        4,
        "ops (deduplicated), bi, the owner; team (owner excluded there)"
    );
    let mut to: Vec<String> = messages
        .iter()
        .map(|m| {
            m.parsed["rcpt_tos"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "bi@acme.com",
            "jane.doe@example.com",
            "ops@acme.com",
            "team@acme.com"
        ]
    );
    for m in &messages {
        assert_eq!(
            m.parsed["rcpt_tos"].as_array().map(Vec::len),
            Some(1),
            "one message per recipient"
        );
        assert_eq!(
            m.parsed["subject"],
            "❌ Qlik Cloud reload failed: \"Sales Dashboard <EU> & \"Nordics\"\"",
            "plain subject with & and quotes intact"
        );
        assert_eq!(m.parsed["content_type"], "multipart/alternative");
        let parts = m.parsed["parts"].as_array().expect("parts");
        let kinds: Vec<&str> = parts
            .iter()
            .filter_map(|p| p["content_type"].as_str())
            .collect();
        assert_eq!(kinds, ["text/plain", "text/html"]);
        let html = parts[1]["body"].as_str().unwrap_or_default();
        assert!(
            html.contains("Sales Dashboard &lt;EU&gt; &amp; &quot;Nordics&quot;"),
            "HTML escaped"
        );
        assert!(
            html.contains("Jane Doe") && html.contains("Finance EU"),
            "enriched"
        );
        let text = parts[0]["body"].as_str().unwrap_or_default();
        assert!(
            text.contains("Execution Failed"),
            "script log in the text part"
        );
    }
    let ops = messages
        .iter()
        .find(|m| m.parsed["rcpt_tos"][0] == "ops@acme.com")
        .expect("ops");
    assert_eq!(ops.parsed["headers"]["X-Priority"], "1");
    assert_eq!(ops.parsed["headers"]["Importance"], "high");
    assert!(
        !daemon.log().contains("s3cret-smtp"),
        "the SMTP password never reaches the log"
    );
    let delivered = daemon.query("SELECT count(*) FROM outbox WHERE state = 'delivered'");
    assert_eq!(delivered[0][0], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_451_is_retried_and_a_550_is_dead_with_the_servers_words() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let busy = SmtpServer::start(SmtpOptions {
        security: "starttls",
        pki: Some(&pki),
        login: None,
        fail: Some(("rcpt", "451 4.3.0 try later")),
    });
    let refusing = SmtpServer::start(SmtpOptions {
        security: "starttls",
        pki: Some(&pki),
        login: None,
        fail: Some(("rcpt", "550 5.1.1 no such user")),
    });
    let broker = Broker::start();
    let daemon = Daemon::start_with(|admin, state| {
        format!(
            "mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-mail-fail-{admin}, keep_alive: 5s}}\n\
             poll: {{enabled: false}}\nenrich: {{enabled: false}}\n\
             state: {{path: '{}'}}\nadmin: {{listen: '127.0.0.1:{admin}'}}\n\
             delivery: {{retry_initial: 200ms, retry_max: 400ms}}\n\
             tenants:\n  - {{id: {TENANT}, url: 'https://acme.eu.qlikcloud.com'}}\n\
             destinations:\n\
             \x20 - {{name: busy, type: email, from: a@acme.com, recipients: [x@acme.com], smtp: {{host: localhost, port: {}, ca_file: '{}'}}}}\n\
             \x20 - {{name: refusing, type: email, from: a@acme.com, recipients: [nobody@acme.com], smtp: {{host: localhost, port: {}, ca_file: '{}'}}}}\n",
            broker.port,
            state.display(),
            busy.port,
            pki.ca_file.display(),
            refusing.port,
            pki.ca_file.display(),
        )
    });
    daemon.wait_subscribed();
    std::thread::spawn(move || publish(broker.port, &topic(), &[distinct_failure(9)]))
        .join()
        .expect("publisher");
    wait_until(
        "the 550 dead and the 451 retried",
        Duration::from_secs(30),
        || {
            let rows = daemon.query("SELECT destination, state, attempts, coalesce(last_error, '') FROM outbox ORDER BY destination");
            rows.len() == 2
                && rows[1][1] == "dead"
                && rows[0][1] == "pending"
                && rows[0][2].parse::<u32>().unwrap_or(0) >= 2
        },
    );
    let rows = daemon.query(
        "SELECT destination, state, coalesce(last_error, '') FROM outbox ORDER BY destination",
    );
    assert!(rows[0][2].contains("451"), "{rows:?}");
    assert!(rows[1][2].contains("550 5.1.1 no such user"), "{rows:?}");
}
