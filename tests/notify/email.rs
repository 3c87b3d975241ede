//! Email over a real SMTP server: STARTTLS and implicit TLS with AUTH and a private CA, the MIME
//! that arrives, and how SMTP replies and failures map to transient or permanent errors.

use reload_butler::config::SmtpSecurity;
use reload_butler::notify::Payload;
use serde_json::json;

use super::{email_to, mail, HTML, META, PASSWORD, SUBJECT, TEXT};
use crate::common::smtp::{SmtpOptions, SmtpServer};
use crate::common::{free_port, TestPki};

fn tls_server(pki: &TestPki, security: &'static str) -> SmtpServer {
    let login = Some(("alerts", PASSWORD));
    SmtpServer::start(SmtpOptions {
        security,
        pki: Some(pki),
        login,
        fail: None,
    })
}

fn plain_server(fail: (&str, &str)) -> SmtpServer {
    SmtpServer::start(SmtpOptions {
        security: "none",
        pki: None,
        login: None,
        fail: Some(fail),
    })
}

/// Plain SMTP, no AUTH, no failure.
fn plain() -> SmtpOptions<'static> {
    SmtpOptions {
        security: "none",
        pki: None,
        login: None,
        fail: None,
    }
}

fn normalized(body: &serde_json::Value) -> String {
    body.as_str()
        .expect("part body")
        .replace("\r\n", "\n")
        .trim_end()
        .to_owned()
}

#[tokio::test]
async fn email_over_starttls_with_auth_arrives_as_multipart_alternative() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let server = tls_server(&pki, "starttls");
    let notifier = email_to(
        server.port,
        SmtpSecurity::StartTls,
        Some(pki.ca_file.clone()),
        Some(PASSWORD),
    );

    let receipt = notifier
        .send(&mail("oncall@example.com"), &META)
        .await
        .expect("sent");
    assert!(
        receipt.detail.starts_with("250 2.0.0 Ok: queued as 1"),
        "{receipt:?}"
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "one message per call");
    let (raw, parsed) = (&messages[0].raw, &messages[0].parsed);

    assert!(raw.contains("\r\nX-Priority: 1\r\n"), "{raw}");
    assert!(raw.contains("\r\nImportance: high\r\n"), "{raw}");
    assert!(
        raw.contains("Subject: =?utf-8?"),
        "the subject is RFC 2047 encoded: {raw}"
    );
    assert_eq!(parsed["content_type"], "multipart/alternative");
    assert_eq!(parsed["subject"], SUBJECT, "decoded, the subject is intact");
    assert_eq!(parsed["rcpt_tos"], json!(["oncall@example.com"]));
    assert_eq!(parsed["mail_from"], "qlik-alerts@acme.com");
    let id = parsed["headers"]["Message-ID"]
        .as_str()
        .expect("a Message-ID");
    assert!(
        id.starts_with('<') && id.ends_with("@acme.com>"),
        "the from address's domain names the message: {id}"
    );
    let parts = parsed["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2, "text then HTML: {parts:?}");
    assert_eq!(
        (&parts[0]["content_type"], &parts[0]["charset"]),
        (&json!("text/plain"), &json!("utf-8"))
    );
    assert_eq!(
        (&parts[1]["content_type"], &parts[1]["charset"]),
        (&json!("text/html"), &json!("utf-8"))
    );
    assert_eq!(normalized(&parts[0]["body"]), TEXT);
    assert_eq!(normalized(&parts[1]["body"]), HTML);
    // The relay offers 8BITMIME: the parts travel as they are, not quoted-printable.
    assert_eq!(parsed["mail_options"], json!(["BODY=8BITMIME"]));
    assert_eq!(
        raw.matches("Content-Transfer-Encoding: 8bit\r\n").count(),
        2,
        "{raw}"
    );
    assert!(raw.contains("Engine said: <b>ÅÄÖ</b> &amp; more"), "{raw}");

    notifier
        .send(&mail("second@example.com"), &META)
        .await
        .expect("sent");
    assert_eq!(server.messages().len(), 2, "one message per call");
    // Butler opens a check connection before each mail; a pooled transport never does.
    let sessions = server.sessions();
    assert!(
        (1..=2).contains(&sessions),
        "{sessions} connections for 2 mails"
    );
}

#[tokio::test]
async fn email_over_implicit_tls_with_auth_and_low_priority() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let server = tls_server(&pki, "tls");
    let notifier = email_to(
        server.port,
        SmtpSecurity::Tls,
        Some(pki.ca_file.clone()),
        Some(PASSWORD),
    );

    notifier
        .send(&mail("oncall@example.com"), &META)
        .await
        .expect("sent");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].raw.contains("\r\nX-Priority: 5\r\n"));
    assert!(messages[0].raw.contains("\r\nImportance: low\r\n"));
}

#[tokio::test]
async fn a_wrong_password_is_permanent_with_the_servers_answer() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let server = tls_server(&pki, "starttls");
    let notifier = email_to(
        server.port,
        SmtpSecurity::StartTls,
        Some(pki.ca_file.clone()),
        Some("wrong-pass"),
    );

    let error = notifier
        .send(&mail("oncall@example.com"), &META)
        .await
        .expect_err("refused");
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.reason().starts_with("535 5.7.8"), "{error}");
    assert!(!format!("{error} {error:?} {notifier:?}").contains("wrong-pass"));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_relay_certificate_from_another_ca_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let server = tls_server(&pki, "starttls");
    let notifier = email_to(
        server.port,
        SmtpSecurity::StartTls,
        Some(pki.other_ca_file.clone()),
        Some(PASSWORD),
    );

    let error = notifier
        .send(&mail("oncall@example.com"), &META)
        .await
        .expect_err("untrusted");
    assert!(error.is_transient(), "{error:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn smtp_4xx_is_transient_and_5xx_permanent_with_the_reply_text() {
    let server = plain_server(("data", "451 4.3.0 try later"));
    let notifier = email_to(server.port, SmtpSecurity::None, None, None);
    let error = notifier
        .send(&mail("oncall@example.com"), &META)
        .await
        .expect_err("451");
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.reason(), "451 4.3.0 try later");

    let server = plain_server(("rcpt", "550 5.1.1 no such user"));
    let notifier = email_to(server.port, SmtpSecurity::None, None, None);
    let error = notifier
        .send(&mail("nobody@example.com"), &META)
        .await
        .expect_err("550");
    assert!(!error.is_transient(), "{error:?}");
    assert_eq!(error.reason(), "550 5.1.1 no such user");
}

#[tokio::test]
async fn email_failures_before_any_reply() {
    // Nothing listens on this port.
    let notifier = email_to(free_port(), SmtpSecurity::None, None, None);
    let down = notifier
        .send(&mail("oncall@example.com"), &META)
        .await
        .expect_err("down");
    assert!(down.is_transient(), "{down:?}");

    let bad = notifier
        .send(&mail("not an address"), &META)
        .await
        .expect_err("bad to");
    assert!(
        !bad.is_transient() && bad.reason().contains("not an address"),
        "{bad:?}"
    );
    let slack = Payload::Slack {
        body: json!({"text": "hi"}),
    };
    assert!(!notifier
        .send(&slack, &META)
        .await
        .expect_err("kind")
        .is_transient());
}

#[test]
fn a_notifier_can_be_dropped_after_its_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let notifier = email_to(free_port(), SmtpSecurity::None, None, None);
    let sent = runtime.block_on(notifier.send(&mail("oncall@example.com"), &META));
    assert!(sent.expect_err("nothing listens").is_transient());
    drop(runtime);
    // lettre's pool spawns a task when dropped; outside a runtime that would panic.
    drop(notifier);
}

#[tokio::test]
async fn a_relay_without_8bitmime_gets_quoted_printable_parts() {
    let server = SmtpServer::start_without_8bitmime(plain());
    let notifier = email_to(server.port, SmtpSecurity::None, None, None);

    for to in ["first@example.com", "second@example.com"] {
        notifier.send(&mail(to), &META).await.expect("sent");
    }
    let messages = server.messages();
    assert_eq!(
        messages.len(),
        2,
        "each mail arrives once: {}",
        server.log()
    );
    for message in &messages {
        let (raw, parsed) = (&message.raw, &message.parsed);
        assert!(raw.is_ascii(), "7-bit safe: {raw}");
        assert_eq!(
            raw.matches("Content-Transfer-Encoding: quoted-printable\r\n")
                .count(),
            2,
            "{raw}"
        );
        assert_eq!(parsed["mail_options"], json!([]));
        let parts = parsed["parts"].as_array().expect("parts");
        assert_eq!(normalized(&parts[0]["body"]), TEXT);
        assert_eq!(normalized(&parts[1]["body"]), HTML);
    }
}

#[tokio::test]
async fn over_8bitmime_only_a_part_with_a_line_over_998_bytes_is_encoded() {
    let server = SmtpServer::start(plain());
    let notifier = email_to(server.port, SmtpSecurity::None, None, None);
    // 300 bytes: longer than quoted-printable's 76, well within SMTP's 998.
    let text = format!("{TEXT}\n{}", "ü".repeat(150));
    let long = format!("<p>{}</p>", "Å log line ".repeat(200));
    let payload = Payload::Email {
        to: "oncall@example.com".into(),
        subject: SUBJECT.into(),
        html: long.clone(),
        text: text.clone(),
    };

    notifier.send(&payload, &META).await.expect("sent");
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{}", server.log());
    let (raw, parsed) = (&messages[0].raw, &messages[0].parsed);
    assert!(
        raw.contains("Content-Transfer-Encoding: 8bit\r\n"),
        "the text part: {raw}"
    );
    assert!(
        raw.lines().all(|line| line.len() <= 998),
        "no line over SMTP's limit"
    );
    let parts = parsed["parts"].as_array().expect("parts");
    assert_eq!(normalized(&parts[0]["body"]), text);
    assert_eq!(normalized(&parts[1]["body"]), long);
}
