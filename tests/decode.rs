//! Every Qlik fixture decodes to the expected fields; every malformed variant is rejected with a
//! reason that names the problem.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use reload_butler::domain::Failure;
use reload_butler::qlik::event::{decode, DecodeError, EventKind, ReloadEvent, Status};

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

/// The fixture as text with `from` replaced by `to` once: for what `edit` cannot express
/// (duplicate keys, escapes as written).
fn replaced(name: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(text.contains(from), "{name} lacks {from}");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn optional_fields_of_wrong_types_read_as_absent() {
    let payload = edit("app-reload-finished-error.json", |v| {
        v["extensions"]["ownerId"] = 7.into();
        v["extensions"]["spaceId"] = serde_json::json!(["a"]);
        v["data"]["isSessionApp"] = "false".into();
        v["data"]["rowLimit"] = 1.5.into();
        v["data"]["peakMemoryBytes"] = (-1).into();
        v["data"]["size"] = "big".into();
        v["data"]["errors"] = serde_json::json!({"qCode": 1});
        v["data"]["endTime"] = 0.into();
    });
    let e = decode(&payload).expect("decodes");
    assert_eq!(e.owner_id, None);
    assert_eq!(e.space_id, None);
    assert_eq!(e.is_session_app, None);
    assert_eq!(e.row_limit, None);
    assert_eq!(e.peak_memory_bytes, None);
    assert_eq!(e.size_memory_bytes, None);
    assert!(e.errors.is_empty());
    assert_eq!(e.end_time, None);
    // A text alternative of the wrong type is passed over for the next one.
    let payload = edit("app-reload-finished-error.json", |v| {
        v["extensions"]["userId"] = serde_json::json!({});
        v["data"]["userId"] = "from-data".into();
    });
    assert_eq!(
        decode(&payload).map(|e| e.user_id),
        Ok(Some("from-data".to_owned()))
    );
    // `extensions` that is not an object counts as absent: the tenant is missing, not mistyped.
    let payload = edit("app-reload-finished-error.json", |v| {
        v["extensions"] = "none".into()
    });
    assert_eq!(decode(&payload), Err(DecodeError::MissingField("tenantid")));
}

#[test]
fn required_fields_of_wrong_types_are_named() {
    let payload = edit("reload-finished-failed.json", |v| v["id"] = 5.into());
    assert_eq!(
        decode(&payload),
        Err(DecodeError::WrongType {
            field: "id",
            expected: "text"
        })
    );
    let payload = edit("reload-finished-failed.json", |v| {
        v["data"] = serde_json::json!(null)
    });
    assert_eq!(
        decode(&payload),
        Err(DecodeError::WrongType {
            field: "data",
            expected: "an object"
        })
    );
    let payload = edit("reload-finished-failed.json", |v| {
        v["data"]["status"] = serde_json::json!(["FAILED"])
    });
    assert_eq!(decode(&payload).map_err(|e| e.reason()), Err("wrong_type"));
}

#[test]
fn null_is_absent_for_required_fields() {
    // A null alternative falls through to the next one.
    let payload = edit("app-reload-finished-error.cloudevents.json", |v| {
        v["tenantid"] = serde_json::Value::Null;
        v["data"]["tenantId"] = "tenant-from-data".into();
    });
    assert_eq!(
        decode(&payload).map(|e| e.tenant_id),
        Ok("tenant-from-data".to_owned())
    );
    // A null status of reload.finished lets `succeeded` stand in, as a missing one does.
    let payload = edit("reload-finished-failed.json", |v| {
        v["data"]["status"] = serde_json::Value::Null;
        v["data"]["succeeded"] = true.into();
    });
    assert_eq!(
        decode(&payload).map(|e| (e.status, e.status_text)),
        Ok((Status::Succeeded, "SUCCEEDED".to_owned()))
    );
    let payload = edit("reload-finished-failed.json", |v| {
        v["data"]["status"] = serde_json::Value::Null;
        v["data"]["succeeded"] = "yes".into();
    });
    assert_eq!(
        decode(&payload),
        Err(DecodeError::MissingField("data.status"))
    );
}

#[test]
fn a_present_time_hides_event_time_even_when_null() {
    let payload = edit("app-reload-finished-error.json", |v| {
        v["time"] = serde_json::Value::Null;
    });
    assert_eq!(decode(&payload).map(|e| e.event_time), Ok(None));
}

#[test]
fn empty_text_is_missing_when_required_and_absent_when_optional() {
    for blank in ["", "  \t"] {
        let payload = edit("app-reload-finished-error.json", |v| {
            v["data"]["reloadId"] = blank.into()
        });
        assert_eq!(
            decode(&payload),
            Err(DecodeError::MissingField("data.reloadId")),
            "{blank:?}"
        );
    }
    // An empty optional text is None and does not fall through to the next alternative.
    let payload = edit("app-reload-finished-error.json", |v| {
        v["userid"] = "".into();
        v["data"]["name"] = "".into();
    });
    let e = decode(&payload).expect("decodes");
    assert_eq!(e.user_id, None);
    assert_eq!(e.app_name, None);
    // reload.finished compares its status as sent: an empty one is an unknown value.
    let payload = edit("reload-finished-failed.json", |v| {
        v["data"]["status"] = "".into()
    });
    assert_eq!(
        decode(&payload).map_err(|e| e.reason()),
        Err("unknown_value")
    );
}

#[test]
fn escapes_in_strings_and_keys_are_decoded() {
    let payload = replaced(
        "app-reload-finished-error.json",
        "\"status\": \"error\"",
        "\"st\\u0061tus\": \"\\u0065rror\"",
    );
    let e = decode(&payload).expect("decodes");
    assert_eq!(e.status_text, "error");
    assert_eq!(e.failure(), Some(Failure::EngineAttemptFailed));
    let payload = edit("app-reload-finished-error.json", |v| {
        v["data"]["errorMessage"] = "line 1\nline \"2\" \\ é 🚀".into()
    });
    assert_eq!(
        decode(&payload).map(|e| e.error_message),
        Ok(Some("line 1\nline \"2\" \\ é 🚀".to_owned()))
    );
}

#[test]
fn a_duplicate_key_takes_its_last_value() {
    // As when the payload was parsed into a `serde_json::Value`: a duplicate never rejects the
    // event, and the value read is the last one.
    let payload = replaced(
        "app-reload-finished-error.json",
        "\"status\": \"error\"",
        "\"status\": \"ok\", \"status\": \"error\"",
    );
    assert_eq!(
        decode(&payload).map(|e| e.failure()),
        Ok(Some(Failure::EngineAttemptFailed))
    );
    let payload = replaced(
        "app-reload-finished-error.json",
        "\"data\": {",
        "\"data\": \"first\", \"data\": {",
    );
    assert_eq!(decode(&payload).map(|e| e.status), Ok(Status::Failed));
}

#[test]
fn skipped_parts_are_checked_for_syntax_only() {
    // A lone surrogate or deep nesting in a key we never read no longer rejects the event...
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    for junk in ["\"\\ud800\"".to_owned(), deep] {
        let payload = replaced(
            "app-reload-finished-error.json",
            "\"data\": {",
            &format!("\"unread\": {junk}, \"data\": {{"),
        );
        assert_eq!(
            decode(&payload).map(|e| e.failure()),
            Ok(Some(Failure::EngineAttemptFailed))
        );
    }
    // ...but in a field we read it is still invalid JSON, and so is broken syntax anywhere.
    let payload = edit("app-reload-finished-error.json", |v| {
        v["data"]["name"] = "x".into()
    });
    let text = String::from_utf8(payload).unwrap_or_default();
    for bad in [
        text.replacen("\"x\"", "\"\\ud800\"", 1),
        text.replacen("\"x\"", "\"x\", \"unread\": [1,,2]", 1),
    ] {
        assert_eq!(
            decode(bad.as_bytes()).map_err(|e| e.reason()),
            Err("invalid_json")
        );
    }
}

#[test]
fn a_sender_sized_value_is_not_repeated_whole() {
    // A 5 MB event type or status must not go whole into the log and the dead letter's detail.
    let huge = "x".repeat(5 * 1024 * 1024);
    for (field, payload) in [
        (
            "type",
            edit("app-reload-finished-error.json", |v| {
                v["eventType"] = huge.clone().into()
            }),
        ),
        (
            "status",
            edit("app-reload-finished-error.json", |v| {
                v["data"]["status"] = huge.clone().into()
            }),
        ),
    ] {
        let (_, text) = reason(&payload);
        assert!(text.len() < 300, "{field}: {} bytes", text.len());
        assert!(
            text.contains("xxxx"),
            "{field}: the value's start is kept: {text}"
        );
    }
}

#[test]
fn automation_runs_decode_with_the_automation_where_an_app_would_be() {
    let e = check("automation-run-ended-failed.json");
    assert_eq!(e.kind, EventKind::AutomationRun);
    assert_eq!(e.app_id, "3c9d0b8e-2f1a-11ef-9b6e-0242ac120002");
    assert_eq!(
        e.reload_id, "9a7e4c52-2f1a-11ef-b0c1-0242ac120002",
        "the run id"
    );
    assert_eq!(e.app_name.as_deref(), Some("Nightly CRM export"));
    assert_eq!(e.trigger.as_deref(), Some("detail"));
    assert_eq!(e.user_id.as_deref(), Some("6601a9b8c7d6e5f4a3b2c1d0"));
    assert_eq!(e.owner_id.as_deref(), Some("65f1c2d3e4a5b6c7d8e9f012"));
    assert_eq!(e.status_text, "failed");
    assert_eq!(e.failure(), Some(Failure::AutomationFailed));
    assert_eq!(e.is_test_run, Some(false));
    assert_eq!(e.errors.len(), 1, "data.error[] is kept");
    assert!(e.start_time.is_some() && e.end_time.is_some());
    assert_eq!(
        check("automation-run-ended-exceeded-limit.json").failure(),
        Some(Failure::AutomationExceededLimit)
    );
    assert_eq!(check("automation-run-ended-finished.json").failure(), None);
    assert_eq!(
        check("automation-run-ended-test-run.json").is_test_run,
        Some(true)
    );
    let running = edit("automation-run-ended-failed.json", |v| {
        v["data"]["status"] = "running".into()
    });
    assert_eq!(reason(&running).0, "unknown_value");
    let by_context = edit("automation-run-ended-failed.json", |v| {
        let data = v["data"].as_object_mut().expect("data");
        data.remove("testRun");
        data.remove("isTestRun");
        v["data"]["context"] = "test_run".into();
    });
    assert_eq!(decode(&by_context).map(|e| e.is_test_run), Ok(Some(true)));
}

/// Every fixture with the outcome it must have under the default rules: Qlik's documented
/// shapes (placeholders such as `"status": "string"` included) and the other event types are
/// dropped with a reason, never dead-lettered.
#[test]
fn every_fixture_has_its_outcome() {
    use reload_butler::metrics::{DropReason, Label};
    use reload_butler::pipeline::{judge, Rules, Verdict};
    let rules = Rules {
        monitored_tenants: ["xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct".to_owned()].into(),
        alert_on: vec![
            Failure::ReloadFailed,
            Failure::ReloadExceededLimit,
            Failure::EngineAttemptFailed,
            Failure::AutomationFailed,
            Failure::AutomationExceededLimit,
        ],
        include_session_apps: false,
        include_automation_test_runs: false,
        recovery: false,
    };
    let alert = |f: Failure| Ok(f);
    let drop = |r: DropReason| Err(r.as_str());
    let cases: &[(&str, Result<Failure, &str>)] = &[
        (
            "app-reload-finished-error.json",
            alert(Failure::EngineAttemptFailed),
        ),
        (
            "app-reload-finished-error.cloudevents.json",
            alert(Failure::EngineAttemptFailed),
        ),
        (
            "app-reload-finished-error.hybrid-UNCONFIRMED.json",
            alert(Failure::EngineAttemptFailed),
        ),
        ("app-reload-finished-ok.json", drop(DropReason::Succeeded)),
        ("reload-finished-failed.json", alert(Failure::ReloadFailed)),
        (
            "reload-finished-failed.legacy-envelope-UNCONFIRMED.json",
            alert(Failure::ReloadFailed),
        ),
        (
            "reload-finished-succeeded.json",
            drop(DropReason::Succeeded),
        ),
        (
            "webhook-example-body.json",
            alert(Failure::EngineAttemptFailed),
        ),
        (
            "automation-run-ended-failed.json",
            alert(Failure::AutomationFailed),
        ),
        (
            "automation-run-ended-exceeded-limit.json",
            alert(Failure::AutomationExceededLimit),
        ),
        (
            "automation-run-ended-finished.json",
            drop(DropReason::Succeeded),
        ),
        (
            "automation-run-ended-test-run.json",
            drop(DropReason::AutomationTestRun),
        ),
        (
            "qlik-doc-app-reload-finished-placeholders.json",
            drop(DropReason::UnknownValue),
        ),
        (
            "qlik-doc-app-created.legacy.json",
            drop(DropReason::UnknownEventType),
        ),
        (
            "qlik-doc-app-data-updated.json",
            drop(DropReason::UnknownEventType),
        ),
    ];
    for (name, want) in cases {
        let got = match judge(&fixture(name), &rules) {
            Verdict::Alert { failure, .. } => Ok(failure),
            Verdict::Drop { reason, .. } | Verdict::Ignored { reason, .. } => Err(reason.as_str()),
            Verdict::Malformed(error) => panic!("{name}: dead-lettered: {error}"),
        };
        assert_eq!(&got, want, "{name}");
    }
    let listed: std::collections::HashSet<&str> = cases.iter().map(|(n, _)| *n).collect();
    let dir = format!("{}/tests/fixtures/events", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if !name.ends_with(".json") {
            continue;
        }
        assert!(listed.contains(name.as_str()), "{name} has no outcome here");
    }
    let with_tests = Rules {
        include_automation_test_runs: true,
        ..rules
    };
    assert!(matches!(
        judge(&fixture("automation-run-ended-test-run.json"), &with_tests),
        Verdict::Alert {
            failure: Failure::AutomationFailed,
            ..
        }
    ));
}
