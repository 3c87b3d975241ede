//! Slack and Teams webhooks against wiremock servers that answer like the real services.

use std::time::Duration;

use reload_butler::notify::{Notifier, Payload, Receipt, SendError};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{destination, mail, slack_config, teams_config, META};
use crate::common::free_port;

/// Recognisable parts of the webhook URLs: no error text may repeat them.
const SLACK_TOKEN: &str = "XOXB-SECRET-TOKEN-1234";
const TEAMS_SIG: &str = "SECRET-SIG-5678";

fn assert_no_secret(what: &str) {
    assert!(
        !what.contains(SLACK_TOKEN) && !what.contains(TEAMS_SIG),
        "secret in: {what}"
    );
}

/// Slack as a wiremock server: `status` and `body` for a JSON POST on the webhook path.
async fn slack(status: u16, body: &str, retry_after: Option<&str>) -> Result<Receipt, SendError> {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_string(body);
    if let Some(seconds) = retry_after {
        answer = answer.insert_header("Retry-After", seconds);
    }
    let hook = format!("/services/T0001/B0001/{SLACK_TOKEN}");
    Mock::given(method("POST"))
        .and(path(hook.as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    let notifier = Notifier::for_destination(
        &destination(slack_config(format!("{}{hook}", server.uri()))),
        None,
    )
    .expect("notifier");
    assert_no_secret(&format!("{notifier:?}"));
    let body = json!({"text": "Reload failed: \"Sales\" & <EU>", "blocks": []});
    let result = notifier
        .send(&Payload::Slack { body: body.clone() }, &META)
        .await;
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(
        requests[0]
            .body_json::<serde_json::Value>()
            .expect("JSON body"),
        body
    );
    if let Err(e) = &result {
        assert_no_secret(&format!("{e} {e:?}"));
    }
    result
}

#[tokio::test]
async fn slack_answers_map_to_receipts_and_errors() {
    assert_eq!(slack(200, "ok", None).await.expect("sent").detail, "200 ok");

    let throttled = slack(429, "rate_limited", Some("7"))
        .await
        .expect_err("429");
    assert!(throttled.is_transient());
    assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
    assert!(slack(500, "rollup_error", None)
        .await
        .expect_err("500")
        .is_transient());

    for (status, word) in [
        (400, "invalid_blocks"),
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ] {
        let error = slack(status, word, None).await.expect_err("refused");
        assert!(!error.is_transient(), "{status} {word}");
        assert!(error.reason().contains(word), "{error}");
    }
}

async fn teams(status: u16, retry_after: Option<&str>) -> Result<Receipt, SendError> {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status);
    if let Some(seconds) = retry_after {
        answer = answer.insert_header("Retry-After", seconds);
    }
    let flow = "/workflows/0b5a/triggers/manual/paths/invoke";
    Mock::given(method("POST"))
        .and(path(flow))
        .and(query_param("sig", TEAMS_SIG))
        .and(header("content-type", "application/json"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    let url = format!(
        "{}{flow}?api-version=2016-10-01&sig={TEAMS_SIG}",
        server.uri()
    );
    let notifier =
        Notifier::for_destination(&destination(teams_config(url)), None).expect("notifier");
    let body = json!({"type": "message", "attachments": []});
    let result = notifier.send(&Payload::Teams { body }, &META).await;
    if let Err(e) = &result {
        assert_no_secret(&format!("{e} {e:?}"));
    }
    result
}

#[tokio::test]
async fn teams_answers_map_to_receipts_and_errors() {
    assert_eq!(
        teams(202, None).await.expect("accepted").detail,
        "202 Accepted"
    );
    assert_eq!(teams(200, None).await.expect("ok").detail, "200 OK");
    let throttled = teams(429, Some("12")).await.expect_err("429");
    assert_eq!(throttled.retry_after(), Some(Duration::from_secs(12)));
    assert!(teams(502, None).await.expect_err("502").is_transient());
    for status in [400, 401, 403, 404, 413] {
        assert!(
            !teams(status, None)
                .await
                .expect_err("refused")
                .is_transient(),
            "{status}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_webhook_is_transient_and_never_shows_its_url() {
    let port = free_port();
    for kind in [
        slack_config(format!(
            "http://127.0.0.1:{port}/services/T0001/B0001/{SLACK_TOKEN}"
        )),
        teams_config(format!(
            "http://127.0.0.1:{port}/workflows/0b5a/invoke?sig={TEAMS_SIG}"
        )),
    ] {
        let notifier = Notifier::for_destination(&destination(kind), None).expect("notifier");
        let body = json!({"text": "hi"});
        let payload = match notifier {
            Notifier::Slack(_) => Payload::Slack { body },
            _ => Payload::Teams { body },
        };
        let error = notifier
            .send(&payload, &META)
            .await
            .expect_err("unreachable");
        assert!(error.is_transient(), "{error:?}");
        assert_no_secret(&format!("{error} {error:?} {notifier:?}"));
        let email = mail("oncall@example.com");
        assert!(!notifier
            .send(&email, &META)
            .await
            .expect_err("kind")
            .is_transient());
    }
}
