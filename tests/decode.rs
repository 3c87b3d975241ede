//! Every Qlik fixture decodes to the expected fields; every malformed variant is rejected with a
//! reason that names the problem.

use reload_butler::qlik::event::{decode, DecodeError, EventKind, Failure, ReloadEvent, Status};

const TENANT: &str = "xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct";
const APP: &str = "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check(name: &str) -> ReloadEvent {
    decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn engine_attempt_failure_decodes_the_same_in_every_envelope() {
    let legacy = check("app-reload-finished-error.json");
    for name in [
        "app-reload-finished-error.cloudevents.json",
        "app-reload-finished-error.hybrid-UNCONFIRMED.json",
        "webhook-example-body.json",
    ] {
        let other = check(name);
        // The envelopes differ in fields we do not keep; everything we keep is the same.
        assert_eq!(
            ReloadEvent {
                event_type_version: None,
                ..other.clone()
            },
            ReloadEvent {
                event_type_version: None,
                ..legacy.clone()
            },
            "{name}"
        );
    }
    let e = legacy;
    assert_eq!(e.kind, EventKind::EngineAttempt);
    assert_eq!(e.event_id, "b0f5c473-5dea-4d7e-a188-5e0b904cde33");
    assert_eq!(e.tenant_id, TENANT);
    assert_eq!(e.app_id, APP);
    assert_eq!(e.reload_id, "67d3c8f1a2b4c5d6e7f80912");
    assert_eq!(e.owner_id.as_deref(), Some("65f1c2d3e4a5b6c7d8e9f012"));
    assert_eq!(e.user_id.as_deref(), Some("6601a9b8c7d6e5f4a3b2c1d0"));
    assert_eq!(e.space_id.as_deref(), Some("6628d931342648bd8b3de5af"));
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.status_text, "error");
    assert_eq!(e.failure(), Some(Failure::EngineAttemptFailed));
    assert_eq!(
        e.app_name.as_deref(),
        Some("Sales Dashboard <EU> & \"Nordics\"")
    );
    assert_eq!(e.duration_ms, Some(8421));
    assert_eq!(e.peak_memory_bytes, Some(52_428_800));
    assert_eq!(e.size_memory_bytes, Some(0));
    assert_eq!(e.row_limit, Some(-1));
    assert_eq!(e.is_session_app, Some(false));
    assert_eq!(e.usage.as_deref(), Some("ANALYTICS"));
    assert_eq!(e.errors.len(), 1);
    assert_eq!(e.errors[0]["qCode"], 11002);
    assert_eq!(
        e.end_time.map(|t| t.to_rfc3339()),
        Some("2025-03-14T06:12:40+00:00".to_owned())
    );
    assert_eq!(
        e.event_time.map(|t| t.to_rfc3339()),
        Some("2025-03-14T06:12:41+00:00".to_owned())
    );
}

#[test]
fn final_outcome_failure_decodes_in_both_envelopes() {
    let ce = check("reload-finished-failed.json");
    let legacy = check("reload-finished-failed.legacy-envelope-UNCONFIRMED.json");
    assert_eq!(
        ReloadEvent {
            event_type_version: None,
            ..legacy
        },
        ce
    );
    assert_eq!(ce.kind, EventKind::FinalOutcome);
    assert_eq!(ce.event_id, "5c8e1f2a-93b7-4d6e-8a1c-0f4b7e2d9a35");
    assert_eq!(ce.tenant_id, TENANT);
    assert_eq!(ce.app_id, APP);
    // Same reload as the engine-attempt fixture: the two must dedupe to one alert.
    assert_eq!(ce.reload_id, "67d3c8f1a2b4c5d6e7f80912");
    assert_eq!(ce.status, Status::Failed);
    assert_eq!(ce.status_text, "FAILED");
    assert_eq!(ce.failure(), Some(Failure::ReloadFailed));
    assert_eq!(ce.trigger.as_deref(), Some("chronos"));
    assert_eq!(ce.error_code.as_deref(), Some("EngineReloadScriptError"));
    assert_eq!(
        ce.error_message.as_deref(),
        Some("error in app script or datasource")
    );
    assert_eq!(ce.duration_ms, Some(8400));
    assert_eq!(ce.usage.as_deref(), Some("ANALYTICS"));
    assert_eq!(ce.is_partial_reload, Some(false));
    assert!(ce.start_time.is_some());
}

#[test]
fn successes_decode_and_are_not_failures() {
    for name in [
        "app-reload-finished-ok.json",
        "reload-finished-succeeded.json",
    ] {
        let e = check(name);
        assert_eq!(e.status, Status::Succeeded, "{name}");
        assert_eq!(e.failure(), None, "{name}");
    }
}

fn edit(name: &str, change: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut value: serde_json::Value =
        serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    change(&mut value);
    serde_json::to_vec(&value).unwrap_or_else(|e| panic!("{e}"))
}

fn reason(payload: &[u8]) -> (String, String) {
    let error = decode(payload).expect_err("must be rejected");
    (error.reason().to_owned(), error.to_string())
}

#[test]
fn final_outcome_statuses_map_to_failures() {
    for (status, failure) in [
        ("EXCEEDED_LIMIT", Some(Failure::ReloadExceededLimit)),
        ("CANCELED", Some(Failure::ReloadCanceled)),
        ("FAILED", Some(Failure::ReloadFailed)),
        ("SUCCEEDED", None),
    ] {
        let payload = edit("reload-finished-failed.json", |v| {
            v["data"]["status"] = status.into();
        });
        assert_eq!(
            decode(&payload).map(|e| e.failure()),
            Ok(failure),
            "{status}"
        );
    }
    // `succeeded` stands in for a missing status.
    let payload = edit("reload-finished-failed.json", |v| {
        v["data"].as_object_mut().map(|d| d.remove("status"));
    });
    assert_eq!(decode(&payload).map(|e| e.status), Ok(Status::Failed));
}

#[test]
fn malformed_payloads_are_rejected_with_a_reason() {
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "invalid UTF-8",
            b"{\"type\": \"\xff\xfe\"}".to_vec(),
            "invalid_json",
            "JSON",
        ),
        (
            "truncated JSON",
            fixture("reload-finished-failed.json")[..200].to_vec(),
            "invalid_json",
            "EOF",
        ),
        ("empty", Vec::new(), "invalid_json", "EOF"),
        (
            "not an object",
            b"[1, 2, 3]".to_vec(),
            "not_an_object",
            "object",
        ),
        (
            "status as a number",
            edit("app-reload-finished-error.json", |v| {
                v["data"]["status"] = 500.into()
            }),
            "wrong_type",
            "data.status",
        ),
        (
            "no tenant",
            edit("app-reload-finished-error.json", |v| {
                v["extensions"]
                    .as_object_mut()
                    .map(|x| x.remove("tenantId"));
            }),
            "missing_field",
            "tenantid",
        ),
        (
            "no app id",
            edit("reload-finished-failed.json", |v| {
                v.as_object_mut().map(|x| x.remove("toplevelresourceid"));
                v["data"].as_object_mut().map(|x| x.remove("appId"));
            }),
            "missing_field",
            "toplevelresourceid",
        ),
        (
            "no reload id",
            edit("app-reload-finished-error.json", |v| {
                v["data"].as_object_mut().map(|x| x.remove("reloadId"));
            }),
            "missing_field",
            "data.reloadId",
        ),
        (
            "no event id",
            edit("reload-finished-failed.json", |v| {
                v.as_object_mut().map(|x| x.remove("id"));
            }),
            "missing_field",
            "`id`",
        ),
        (
            "data is text",
            edit("reload-finished-failed.json", |v| v["data"] = "oops".into()),
            "wrong_type",
            "data",
        ),
        (
            "unknown status",
            edit("app-reload-finished-error.json", |v| {
                v["data"]["status"] = "maybe".into()
            }),
            "unknown_value",
            "maybe",
        ),
        (
            "unknown event type",
            edit("app-reload-finished-error.json", |v| {
                v["eventType"] = "com.qlik.v1.app.created".into();
            }),
            "unknown_event_type",
            "com.qlik.v1.app.created",
        ),
    ];
    for (case, payload, want_reason, want_text) in cases {
        let (reason, text) = reason(&payload);
        assert_eq!(reason, want_reason, "{case}: {text}");
        assert!(
            text.contains(want_text),
            "{case}: `{text}` lacks `{want_text}`"
        );
    }
}

#[test]
fn lenient_on_optional_fields_of_odd_types() {
    // Butler's own test fixture sends `usage: {}` and `statements: 0`; wrong optional types never
    // cost an alert.
    let payload = edit("app-reload-finished-error.json", |v| {
        v["data"]["usage"] = serde_json::json!({});
        v["data"]["statements"] = 0.into();
        v["data"]["duration"] = "long".into();
        v["data"]["name"] = 42.into();
        v["eventTime"] = "yesterday".into();
    });
    let e = decode(&payload).expect("optional fields of odd types are ignored");
    assert_eq!(e.usage, None);
    assert_eq!(e.duration_ms, None);
    assert_eq!(e.app_name, None);
    assert_eq!(e.event_time, None);
    assert_eq!(e.failure(), Some(Failure::EngineAttemptFailed));
}

#[test]
fn hostile_app_names_and_huge_payloads_survive_decoding() {
    let name = "Q\"uo\\te\nnew\tline 🚀 <b>&amp;</b> \u{0007}";
    let huge = "x".repeat(5 * 1024 * 1024);
    let payload = edit("app-reload-finished-error.json", |v| {
        v["data"]["name"] = name.into();
        v["data"]["padding"] = huge.into();
    });
    assert!(payload.len() > 5 * 1024 * 1024);
    let e = decode(&payload).expect("decodes");
    assert_eq!(e.app_name.as_deref(), Some(name));
}

#[test]
fn ids_are_not_validated_as_uuids() {
    let payload = edit("reload-finished-failed.json", |v| {
        v["id"] = "not-a-uuid-at-all".into();
        v["data"]["id"] = "6a849f7f18ec290e6ceb025d".into();
    });
    let e = decode(&payload).expect("decodes");
    assert_eq!(e.event_id, "not-a-uuid-at-all");
    assert!(matches!(
        decode(b"{}"),
        Err(DecodeError::MissingField("type"))
    ));
}
