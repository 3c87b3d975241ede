//! `reload-butler gateway` end to end: the real binary, a real mosquitto, HTTP requests written
//! byte by byte, and an MQTT subscriber that sees what the broker delivers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use common::gateway::*;
use common::*;

fn example() -> Vec<u8> {
    fixture("webhook-example-body.json")
}

fn accepted(gateway: &Gateway) -> f64 {
    gateway.outcome("accepted")
}

#[test]
fn a_signed_event_arrives_byte_for_byte_on_the_tenant_topic() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port, "qscloud/#");
    let gateway = Gateway::start(broker.port, "");

    // The worked example of the shared fixtures: its exact bytes and published signature.
    let answer = gateway.post(
        PATH,
        &[
            ("Content-Type", "application/json"),
            ("Qlik-Signature", EXAMPLE_SIGNATURE),
        ],
        &example(),
    );
    assert_eq!((answer.status, answer.body.as_str()), (200, "accepted\n"));

    let messages = subscriber.wait_for(1);
    assert_eq!(messages, vec![(topic(), example())]);
    assert_eq!(accepted(&gateway), 1.0);
    assert_eq!(
        gateway.metric("reload_butler_gateway_publish_duration_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        gateway.metric("reload_butler_gateway_mqtt_connected"),
        Some(1.0)
    );
}

#[test]
fn a_changed_byte_or_a_missing_signature_is_401_and_nothing_is_published() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port, "qscloud/#");
    let gateway = Gateway::start(broker.port, "");

    let body = example();
    let signature = sign(SECRET, &body);
    let mut changed = body.clone();
    let at = changed
        .windows(5)
        .position(|w| w == b"error")
        .expect("a status");
    changed[at] = b'E'; // still valid JSON, one byte different
    let wrong = sign("another-secret-of-32-characters!!", &body);
    let cases = [
        ("one byte changed", Some(signature.as_str()), &changed[..]),
        ("no signature", None, &body[..]),
        ("empty signature", Some(""), &body[..]),
        ("not hex", Some("sha256=abc"), &body[..]),
        ("wrong secret", Some(wrong.as_str()), &body[..]),
    ];
    for (case, signature, body) in cases {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(signature.map(|s| ("Qlik-Signature", s)));
        let answer = gateway.post(PATH, &headers, body);
        assert_eq!(answer.status, 401, "{case}");
        assert_eq!(
            answer.body, "unauthorized\n",
            "{case}: no detail on which check failed"
        );
    }
    assert_eq!(gateway.outcome("unauthorized"), cases.len() as f64);

    // A correctly signed marker: had any rejected body been published, it would come first.
    let marker = distinct_failure(1);
    assert_eq!(gateway.post_signed(&marker, SECRET).status, 200);
    assert_eq!(subscriber.wait_for(1), vec![(topic(), marker)]);
}

#[test]
fn both_secrets_of_a_rotation_pair_verify() {
    let broker = Broker::start();
    let old = "the-old-secret-still-set-in-qlik-cloud-0123";
    let gateway = Gateway::start_with(|port, _| {
        Gateway::config(broker.port, port, "").replace(
            &format!("secrets: [{SECRET}]"),
            &format!("secrets: ['{old}', '{SECRET}']"),
        )
    });
    gateway.wait_ready();
    assert_eq!(gateway.post_signed(&distinct_failure(1), old).status, 200);
    // The worked example is signed with the second secret of the pair.
    let answer = gateway.post(
        PATH,
        &[
            ("Content-Type", "application/json"),
            ("Qlik-Signature", &EXAMPLE_SIGNATURE.to_ascii_uppercase()),
        ],
        &example(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let log = gateway.log();
    assert!(
        log.contains("secret=1") && log.contains("secret=2"),
        "{log}"
    );
}

#[test]
fn oversized_bodies_are_refused_before_they_are_read() {
    let broker = Broker::start();
    let gateway = Gateway::start(broker.port, "  max_body: 1MiB\n");
    let head = |framing: &str| {
        format!(
            "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Qlik-Signature: {EXAMPLE_SIGNATURE}\r\n{framing}\r\n\r\n"
        )
    };

    // Content-Length of 2 MB, and only 64 KiB of it ever sent: the 413 comes anyway.
    let mut stream = gateway.connect();
    stream
        .write_all(head(&format!("Content-Length: {}", 2_000_000)).as_bytes())
        .expect("head");
    stream
        .write_all(&[b' '; 64 * 1024])
        .expect("part of the body");
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.body.contains("1048576"), "{}", answer.body);

    // Chunked, no length announced: cut off once past the limit; the last chunk never comes.
    let mut stream = gateway.connect();
    stream
        .write_all(head("Transfer-Encoding: chunked").as_bytes())
        .expect("head");
    let chunk = [b' '; 16 * 1024];
    for _ in 0..72 {
        // 1.125 MiB in all; once the gateway has answered, writes may fail: that is fine.
        let sent = write!(stream, "{:x}\r\n", chunk.len())
            .and_then(|()| stream.write_all(&chunk))
            .and_then(|()| stream.write_all(b"\r\n"));
        if sent.is_err() {
            break;
        }
    }
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 413, "{answer:?}");

    assert_eq!(gateway.outcome("too_large"), 2.0);
    assert_eq!(gateway.get("/healthz").map(|r| r.0), Some(200));
}

#[test]
fn content_type_method_path_shape_and_tenant_are_checked() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port, "qscloud/#");
    let gateway = Gateway::start(broker.port, &format!("  allowed_tenants: [{TENANT}]\n"));
    let body = example();
    let sig = sign(SECRET, &body);

    let form = gateway.post(
        PATH,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Qlik-Signature", &sig),
        ],
        &body,
    );
    assert_eq!(form.status, 415);
    let none = gateway.post(PATH, &[("Qlik-Signature", &sig)], &body);
    assert_eq!(none.status, 415);
    let charset = gateway.post(
        PATH,
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Qlik-Signature", &sig),
        ],
        &body,
    );
    assert_eq!(charset.status, 200, "parameters are allowed");

    let (status, _) = gateway.get(PATH).expect("GET answers");
    assert_eq!(status, 405);
    let other = gateway.post("/somewhere/else", &[("Qlik-Signature", &sig)], &body);
    assert_eq!(other.status, 404);

    let hello = br#"{"hello":"world-7f3a"}"#;
    let answer = gateway.post_signed(hello, SECRET);
    assert_eq!(answer.status, 400);
    assert!(answer.body.starts_with("bad request: "), "{}", answer.body);
    assert!(
        !answer.body.contains("world-7f3a"),
        "the body is never echoed"
    );
    let no_tenant = event("app-reload-finished-error.json", |v| {
        v["extensions"]
            .as_object_mut()
            .expect("extensions")
            .remove("tenantId");
    });
    let answer = gateway.post_signed(&no_tenant, SECRET);
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        "bad request: missing required field tenantid\n"
    );
    assert_eq!(gateway.post_signed(b"{not json", SECRET).status, 400);

    let elsewhere = event("app-reload-finished-error.json", |v| {
        v["extensions"]["tenantId"] = "someOtherTenantAAAAAAAAAAAAAAAAA".into();
    });
    assert_eq!(gateway.post_signed(&elsewhere, SECRET).status, 403);

    for (outcome, count) in [
        ("unsupported_media_type", 2.0),
        ("method_not_allowed", 1.0),
        ("not_found", 1.0),
        ("bad_request", 3.0),
        ("forbidden", 1.0),
        ("accepted", 1.0),
    ] {
        assert_eq!(gateway.outcome(outcome), count, "{outcome}");
    }
    let (_, metrics) = gateway.get("/metrics").expect("metrics");
    promtool_check(&metrics);
    let marker = distinct_failure(9);
    assert_eq!(gateway.post_signed(&marker, SECRET).status, 200);
    assert_eq!(
        subscriber.wait_for(2),
        vec![(topic(), body), (topic(), marker)]
    );
}

#[test]
fn a_stopped_broker_means_503_with_retry_after_then_200_once_it_is_back() {
    let mut broker = Broker::start();
    let gateway = Gateway::start(broker.port, "");
    assert_eq!(
        gateway.post_signed(&distinct_failure(1), SECRET).status,
        200
    );

    broker.stop();
    wait_until("/readyz 503", Duration::from_secs(20), || {
        gateway.get("/readyz").map(|r| r.0) == Some(503)
    });
    let answer = gateway.post_signed(&distinct_failure(2), SECRET);
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
    assert_eq!(
        gateway.metric("reload_butler_gateway_mqtt_connected"),
        Some(0.0)
    );

    broker.resume();
    wait_until(
        "200 after the broker is back",
        Duration::from_secs(30),
        || gateway.post_signed(&distinct_failure(3), SECRET).status == 200,
    );
    assert!(gateway.outcome("unavailable") >= 1.0);
    assert!(gateway.log().contains("gateway lost the MQTT connection"));
}

#[test]
fn a_broker_that_does_not_ack_means_503_within_the_bound() {
    let broker = Broker::start();
    let gateway = Gateway::start(broker.port, "");
    broker.pause();
    // The connection is up but nothing is acknowledged: the answer comes after the 5 s bound.
    let answer = gateway.post_signed(&distinct_failure(1), SECRET);
    broker.unpause();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.header("retry-after").is_some());
    assert!(
        gateway.log().contains("did not acknowledge"),
        "{}",
        gateway.log()
    );
    wait_until(
        "200 after the broker answers again",
        Duration::from_secs(40),
        || gateway.post_signed(&distinct_failure(2), SECRET).status == 200,
    );
}

#[test]
fn a_hundred_concurrent_posts_arrive_exactly_once_each() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port, "qscloud/#");
    let gateway = Gateway::start(broker.port, "");
    let bodies: Vec<Vec<u8>> = (0..100).map(distinct_failure).collect();

    reload_butler::tls::ensure_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("http://127.0.0.1:{}{PATH}", gateway.port);
    let statuses: Vec<u16> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut posts = tokio::task::JoinSet::new();
        for body in &bodies {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .header("qlik-signature", sign(SECRET, body))
                .body(body.clone());
            posts.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
        }
        let mut statuses = Vec::new();
        while let Some(result) = posts.join_next().await {
            statuses.push(result.expect("task").expect("answer"));
        }
        statuses
    });
    assert_eq!(statuses, vec![200; 100]);

    subscriber.wait_for(100);
    let marker = distinct_failure(1000);
    assert_eq!(gateway.post_signed(&marker, SECRET).status, 200);
    wait_until("the marker", Duration::from_secs(10), || {
        subscriber.messages().iter().any(|(_, p)| *p == marker)
    });
    let received: Vec<Vec<u8>> = subscriber.messages().into_iter().map(|(_, p)| p).collect();
    assert_eq!(received.len(), 101, "nothing twice");
    let distinct: HashSet<&Vec<u8>> = received.iter().collect();
    assert_eq!(distinct.len(), 101);
    assert!(bodies.iter().all(|b| distinct.contains(b)));
}

#[test]
fn https_with_its_own_certificate() {
    let broker = Broker::start();
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let tls = format!(
        "  tls: {{cert_file: {}, key_file: {}}}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let gateway = Gateway::start_with(|port, _| Gateway::config(broker.port, port, &tls));
    assert!(gateway.log().contains("https=true"));

    reload_butler::tls::ensure_crypto_provider();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_file).expect("ca")).expect("pem");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = format!("https://localhost:{}", gateway.port);
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("client");
        let ready = async {
            loop {
                let answer = client.get(format!("{base}/readyz")).send().await;
                if answer.is_ok_and(|r| r.status() == 200) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .expect("ready over HTTPS");
        let answer = client
            .post(format!("{base}{PATH}"))
            .header("content-type", "application/json")
            .header("qlik-signature", EXAMPLE_SIGNATURE)
            .body(example())
            .send()
            .await
            .expect("HTTPS answer");
        assert_eq!(answer.status(), 200);
    });
    assert_eq!(
        gateway.get("/healthz"),
        None,
        "no plain HTTP on the HTTPS port"
    );
}

#[test]
fn no_log_line_carries_a_secret_and_sigterm_exits_0() {
    let broker = Broker::start();
    let mut gateway = Gateway::start(broker.port, "");
    let body = example();
    assert_eq!(gateway.post_signed(&body, SECRET).status, 200);
    let forged = sign("an-attacker-guess-at-the-secret-000", &body);
    assert_eq!(
        gateway
            .post(
                PATH,
                &[
                    ("Content-Type", "application/json"),
                    ("Qlik-Signature", &forged)
                ],
                &body
            )
            .status,
        401
    );

    let status = gateway.sigterm();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    let log = gateway.log();
    assert!(log.contains("stopped"), "{log}");
    assert!(
        log.contains("d0236b25"),
        "a signature prefix helps to match requests: {log}"
    );
    for secret_text in [
        SECRET,
        EXAMPLE_SIGNATURE,
        forged.as_str(),
        &forged[..9],
        &EXAMPLE_SIGNATURE[..9],
    ] {
        assert!(
            !log.contains(secret_text),
            "{secret_text} in the log:\n{log}"
        );
    }
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let broker = Broker::start();
    let mut gateway = Gateway::start(broker.port, "");
    broker.pause();
    let port = gateway.port;
    let in_flight = std::thread::spawn(move || {
        let body = distinct_failure(1);
        let signature = sign(SECRET, &body);
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            stream,
            "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Qlik-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("head");
        stream.write_all(&body).expect("body");
        read_answer(&mut stream)
    });
    // The request waits for the paused broker's PUBACK when the signal comes.
    wait_until("the publish to start", Duration::from_secs(10), || {
        gateway.log().contains("publishing the body")
    });
    let log_path = gateway.dir.path().join("gateway.log");
    let term = std::thread::spawn(move || (gateway.sigterm(), gateway));
    wait_until("the signal to be handled", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path).is_ok_and(|log| log.contains("shutting down"))
    });
    broker.unpause();
    let answer = in_flight
        .join()
        .expect("the request got an answer before the exit");
    let (status, gateway) = term.join().expect("signal thread");
    // 200 once the broker acks; 503 only if that took longer than the publish bound.
    assert!([200, 503].contains(&answer.status), "{answer:?}");
    assert!(status.success(), "{status:?}");
    assert!(gateway.log().contains("stopped"));
}

#[test]
fn start_up_problems_name_the_key() {
    let broker_port = free_port(); // nothing listens: these must fail before connecting matters
    let port = free_port();
    let base = Gateway::config(broker_port, port, "");

    let (status, stderr) = exit_of(&base.replace(&format!("secrets: [{SECRET}]"), "secrets: []"));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gateway.secrets"), "{stderr}");

    let unset = base.replace(
        &format!("[{SECRET}]"),
        "['${QLIK_WEBHOOK_SECRET_NOT_SET:-}']",
    );
    let (status, stderr) = exit_of(&unset);
    assert_eq!(
        status.code(),
        Some(2),
        "an empty expansion is no secret: {stderr}"
    );

    let null_url = base.replace(&format!("url: mqtt://127.0.0.1:{broker_port}"), "url: null");
    let (status, stderr) = exit_of(&null_url);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mqtt.url"), "{stderr}");

    let missing = format!(
        "{base}  tls: {{cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}}\n"
    );
    let (status, stderr) = exit_of(&missing);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gateway.tls.cert_file"), "{stderr}");
    assert!(!stderr.contains(SECRET));

    let taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold the port");
    let (status, stderr) = exit_of(&base);
    assert_eq!(
        status.code(),
        Some(1),
        "a taken port is a run-time failure: {stderr}"
    );
    assert!(stderr.contains("gateway.listen"), "{stderr}");
    drop(taken);
}

/// A CloudEvents 1.0 event of `type` for the test tenant, as Qlik sends it today.
fn cloud_event(event_type: &str, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "specversion": "1.0",
        "type": event_type,
        "id": format!("evt-{event_type}"),
        "source": "com.qlik/engine",
        "time": "2026-12-02T10:00:00Z",
        "tenantid": TENANT,
        "toplevelresourceid": "5f1e6a6b-3f2c-4d5e-9a8b-7c6d5e4f3a2b",
        "data": data,
    }))
    .expect("json")
}

#[test]
fn both_media_types_any_signed_type_and_binary_mode_are_published() {
    let broker = Broker::start();
    let subscriber = Subscriber::start(broker.port, "qscloud/#");
    let gateway = Gateway::start(broker.port, &format!("  allowed_tenants: [{TENANT}]\n"));

    let mut expected = Vec::new();
    // Structured mode, the CloudEvents media type, with and without a parameter.
    for content_type in [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
        "application/json;charset=UTF-8",
    ] {
        let body = cloud_event(
            "com.qlik.v1.reload.finished",
            serde_json::json!({"id": content_type, "status": "FAILED"}),
        );
        let answer = gateway.post(
            PATH,
            &[
                ("Content-Type", content_type),
                ("Qlik-Signature", &sign(SECRET, &body)),
            ],
            &body,
        );
        assert_eq!(answer.status, 200, "{content_type}: {answer:?}");
        expected.push((topic(), body));
    }
    // Types the daemon does not alert on and placeholder values: 2xx, so Qlik never disables
    // the webhook; the daemon drops them.
    for body in [
        cloud_event(
            "com.qlik.v1.app.data.updated",
            serde_json::json!({"id": "x"}),
        ),
        cloud_event(
            "com.qlik.v1.app.reload.finished",
            serde_json::json!({"reloadId": "string", "status": "string"}),
        ),
        br#"{"eventType":"com.qlik.v1.app.created","extensions":{"tenantId":"xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct"}}"#.to_vec(),
    ] {
        assert_eq!(gateway.post_signed(&body, SECRET).status, 200);
        expected.push((topic(), body));
    }
    assert_eq!(subscriber.wait_for(expected.len()), expected);

    // Binary mode: attributes in ce-* headers, the body is `data`, signed as received.
    let data = br#"{"id":"0123456789abcdef01234567","status":"FAILED","errorMessage":"boom"}"#;
    let answer = gateway.post(
        PATH,
        &[
            ("Content-Type", "application/json"),
            ("Qlik-Signature", &sign(SECRET, data)),
            ("ce-specversion", "1.0"),
            ("ce-type", "com.qlik.v1.reload.finished"),
            ("ce-id", "binary-1"),
            ("ce-source", "com.qlik/reloads"),
            ("ce-tenantid", TENANT),
            (
                "ce-toplevelresourceid",
                "5f1e6a6b-3f2c-4d5e-9a8b-7c6d5e4f3a2b",
            ),
        ],
        data,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let messages = subscriber.wait_for(expected.len() + 1);
    let (topic_seen, published) = messages.last().expect("the binary event").clone();
    assert_eq!(topic_seen, topic());
    let structured: serde_json::Value = serde_json::from_slice(&published).expect("json");
    assert_eq!(structured["type"], "com.qlik.v1.reload.finished");
    assert_eq!(structured["id"], "binary-1");
    assert_eq!(structured["tenantid"], TENANT);
    assert_eq!(structured["datacontenttype"], "application/json");
    assert_eq!(
        structured["data"],
        serde_json::from_slice::<serde_json::Value>(data).expect("json")
    );
    let decoded = reload_butler::qlik::event::decode(&published).expect("the daemon decodes it");
    assert_eq!(decoded.reload_id, "0123456789abcdef01234567");

    // A binary-mode body signed with another secret is still refused.
    let answer = gateway.post(
        PATH,
        &[
            ("Content-Type", "application/json"),
            (
                "Qlik-Signature",
                &sign("another-secret-of-32-characters!!", data),
            ),
            ("ce-specversion", "1.0"),
            ("ce-tenantid", TENANT),
        ],
        data,
    );
    assert_eq!(answer.status, 401);
    assert_eq!(accepted(&gateway), (expected.len() + 1) as f64);
}

#[test]
fn a_client_that_sends_a_whole_over_limit_body_reads_its_413() {
    let broker = Broker::start();
    let gateway = Gateway::start(broker.port, "  max_body: 1MiB\n");
    let body = vec![b' '; 2 << 20];

    // Raw: the whole 2 MiB written before reading; no reset may destroy the answer.
    let mut stream = gateway.connect();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Qlik-Signature: {EXAMPLE_SIGNATURE}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream
        .write_all(&body)
        .expect("the whole body is read, not reset");
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut data).expect("the answer, then a clean close");
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("1048576"), "{text}");

    // An ordinary HTTP client doing the same.
    reload_butler::tls::ensure_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("http://127.0.0.1:{}{PATH}", gateway.port);
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("qlik-signature", EXAMPLE_SIGNATURE)
            .body(body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.expect("an answer, not a reset"), 413);
    assert_eq!(gateway.outcome("too_large"), 2.0);
}
