//! The only place that parses Qlik event JSON. Both reload event types, in any of the three
//! envelopes Qlik sends (legacy CloudEvents-0.1-like, hybrid, CloudEvents 1.0), become one
//! [`ReloadEvent`]. Field reference: shared fixtures `qlik/events.md`.
//!
//! Required fields (type, id, tenant, app, reload id, status) must be present with the right type,
//! or the event is rejected naming the field. Everything else is optional and read leniently: a
//! field of an unexpected type is ignored rather than losing the alert.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::yaml_keyword;

pub const APP_RELOAD_FINISHED: &str = "com.qlik.v1.app.reload.finished";
pub const RELOAD_FINISHED: &str = "com.qlik.v1.reload.finished";

yaml_keyword! {
    /// A kind of failure that can raise an alert; `alert_on` lists the ones that do.
    pub enum Failure {
        /// `reload.finished` with status FAILED.
        ReloadFailed = "reload_failed",
        /// `reload.finished` with status EXCEEDED_LIMIT.
        ReloadExceededLimit = "reload_exceeded_limit",
        /// `reload.finished` with status CANCELED.
        ReloadCanceled = "reload_canceled",
        /// `app.reload.finished` (one engine attempt) with status error.
        EngineAttemptFailed = "engine_attempt_failed",
    }
}

/// Which of the two event types this was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `com.qlik.v1.app.reload.finished`: one engine reload attempt ended.
    EngineAttempt,
    /// `com.qlik.v1.reload.finished`: the reload's final outcome, once per reload.
    FinalOutcome,
}

/// The outcome, normalised across both event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
    Canceled,
    ExceededLimit,
}

/// A reload event as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadEvent {
    pub kind: EventKind,
    pub event_type: String,
    pub event_type_version: Option<String>,
    pub event_id: String,
    pub event_time: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub tenant_id: String,
    pub app_id: String,
    pub reload_id: String,
    pub owner_id: Option<String>,
    pub user_id: Option<String>,
    pub space_id: Option<String>,
    pub status: Status,
    /// `data.status` as Qlik sent it (`error`, `FAILED`, ...).
    pub status_text: String,
    pub app_name: Option<String>,
    /// What started the reload (`data.type`: hub, chronos, external, automations, ...).
    pub trigger: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub is_session_app: Option<bool>,
    pub is_partial_reload: Option<bool>,
    pub is_skip_store: Option<bool>,
    pub is_direct_query_mode: Option<bool>,
    pub ended_with_memory_constraint: Option<bool>,
    pub row_limit: Option<i64>,
    pub peak_memory_bytes: Option<u64>,
    pub size_memory_bytes: Option<u64>,
    pub usage: Option<String>,
    /// `data.errors[]` and `data.warnings[]` have no published schema: kept as opaque JSON.
    pub errors: Vec<Value>,
    pub warnings: Vec<Value>,
}

impl ReloadEvent {
    /// The kind of failure this event reports, or `None` when the reload succeeded.
    pub fn failure(&self) -> Option<Failure> {
        match (self.kind, self.status) {
            (EventKind::EngineAttempt, Status::Failed) => Some(Failure::EngineAttemptFailed),
            (EventKind::FinalOutcome, Status::Failed) => Some(Failure::ReloadFailed),
            (EventKind::FinalOutcome, Status::ExceededLimit) => Some(Failure::ReloadExceededLimit),
            (EventKind::FinalOutcome, Status::Canceled) => Some(Failure::ReloadCanceled),
            _ => None,
        }
    }
}

/// Why a payload is not a reload event we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` should be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}` has the unknown value `{value}`")]
    UnknownValue { field: &'static str, value: String },
    #[error("event type `{0}` is not a reload event")]
    UnknownEventType(String),
}

impl DecodeError {
    /// A bounded label for metrics and the dead-letter table.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField(_) => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::UnknownValue { .. } => "unknown_value",
            Self::UnknownEventType(_) => "unknown_event_type",
        }
    }
}

/// Decodes one webhook body (as forwarded over MQTT) into a [`ReloadEvent`].
pub fn decode(payload: &[u8]) -> Result<ReloadEvent, DecodeError> {
    let root: Value =
        serde_json::from_slice(payload).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let root = root.as_object().ok_or(DecodeError::NotAnObject)?;
    let event_type = required_str(root, "type", &[&["type"], &["eventType"]])?;
    let kind = match event_type {
        APP_RELOAD_FINISHED => EventKind::EngineAttempt,
        RELOAD_FINISHED => EventKind::FinalOutcome,
        other => return Err(DecodeError::UnknownEventType(other.to_owned())),
    };
    let data = match root.get("data") {
        Some(Value::Object(data)) => data,
        Some(_) => {
            return Err(DecodeError::WrongType {
                field: "data",
                expected: "an object",
            })
        }
        None => return Err(DecodeError::MissingField("data")),
    };
    let event_id = required_str(root, "id", &[&["id"], &["eventId"], &["eventID"]])?;
    let tenant_id = required_str(
        root,
        "tenantid",
        &[
            &["tenantid"],
            &["extensions", "tenantId"],
            &["data", "tenantId"],
        ],
    )?;
    let app_id = required_str(
        root,
        "toplevelresourceid",
        &[
            &["toplevelresourceid"],
            &["extensions", "topLevelResourceId"],
            &["data", "appId"],
        ],
    )?;
    let (reload_id, status_text, status) = match kind {
        EventKind::EngineAttempt => {
            let reload_id = required_str(root, "data.reloadId", &[&["data", "reloadId"]])?;
            let text = required_str(root, "data.status", &[&["data", "status"]])?;
            let status = match text {
                "ok" => Status::Succeeded,
                "error" => Status::Failed,
                other => return Err(unknown("data.status", other)),
            };
            (reload_id, text.to_owned(), status)
        }
        EventKind::FinalOutcome => {
            let reload_id = required_str(root, "data.id", &[&["data", "id"]])?;
            let (text, status) = final_status(data)?;
            (reload_id, text, status)
        }
    };

    let text = |paths: &[&[&str]]| optional_str(root, paths);
    let (duration_ms, start_time, end_time) = match kind {
        EventKind::EngineAttempt => (
            data.get("duration").and_then(Value::as_u64),
            None,
            time(data.get("endTime")),
        ),
        EventKind::FinalOutcome => (
            data.get("durationSeconds")
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| (s * 1000.0).round() as u64),
            time(data.get("startTime")),
            time(data.get("lastReloadTime")),
        ),
    };
    Ok(ReloadEvent {
        kind,
        event_type: event_type.to_owned(),
        event_type_version: text(&[&["eventTypeVersion"]]),
        event_id: event_id.to_owned(),
        event_time: time(lookup(root, &["time"]).or_else(|| lookup(root, &["eventTime"]))),
        source: text(&[&["source"]]),
        tenant_id: tenant_id.to_owned(),
        app_id: app_id.to_owned(),
        reload_id: reload_id.to_owned(),
        owner_id: text(&[&["ownerid"], &["extensions", "ownerId"]]),
        user_id: text(&[&["userid"], &["extensions", "userId"], &["data", "userId"]]),
        space_id: text(&[&["spaceid"], &["extensions", "spaceId"]]),
        status,
        status_text,
        app_name: text(&[&["data", "name"]]),
        trigger: text(&[&["data", "type"]]),
        error_code: text(&[&["data", "errorCode"]]),
        error_message: text(&[&["data", "errorMessage"]]),
        start_time,
        end_time,
        duration_ms,
        is_session_app: flag(data, "isSessionApp"),
        is_partial_reload: flag(data, "isPartialReload").or_else(|| flag(data, "partial")),
        is_skip_store: flag(data, "isSkipStore"),
        is_direct_query_mode: flag(data, "isDirectQueryMode"),
        ended_with_memory_constraint: flag(data, "endedWithMemoryConstraint"),
        row_limit: data.get("rowLimit").and_then(Value::as_i64),
        peak_memory_bytes: data.get("peakMemoryBytes").and_then(Value::as_u64),
        size_memory_bytes: lookup(root, &["data", "size", "memory"]).and_then(Value::as_u64),
        usage: text(&[&["data", "usage"], &["data", "appUsage"]]),
        errors: list(data.get("errors")),
        warnings: list(data.get("warnings")),
    })
}

/// `reload.finished` carries `status`; `succeeded` (required by the schema) stands in when it
/// does not.
fn final_status(data: &Map<String, Value>) -> Result<(String, Status), DecodeError> {
    match data.get("status") {
        Some(Value::String(text)) => {
            let status = match text.as_str() {
                "SUCCEEDED" => Status::Succeeded,
                "FAILED" => Status::Failed,
                "CANCELED" => Status::Canceled,
                "EXCEEDED_LIMIT" => Status::ExceededLimit,
                other => return Err(unknown("data.status", other)),
            };
            Ok((text.clone(), status))
        }
        Some(Value::Null) | None => match data.get("succeeded") {
            Some(Value::Bool(true)) => Ok(("SUCCEEDED".to_owned(), Status::Succeeded)),
            Some(Value::Bool(false)) => Ok(("FAILED".to_owned(), Status::Failed)),
            _ => Err(DecodeError::MissingField("data.status")),
        },
        Some(_) => Err(DecodeError::WrongType {
            field: "data.status",
            expected: "text",
        }),
    }
}

fn unknown(field: &'static str, value: &str) -> DecodeError {
    DecodeError::UnknownValue {
        field,
        value: value.chars().take(64).collect(),
    }
}

fn lookup<'a>(root: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(root.get(*first)?, |value, key| value.get(key))
}

/// The first of `paths` that is present; it must be non-empty text.
fn required_str<'a>(
    root: &'a Map<String, Value>,
    name: &'static str,
    paths: &[&[&str]],
) -> Result<&'a str, DecodeError> {
    for path in paths {
        match lookup(root, path) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if !s.trim().is_empty() => return Ok(s),
            Some(Value::String(_)) => return Err(DecodeError::MissingField(name)),
            Some(_) => {
                return Err(DecodeError::WrongType {
                    field: name,
                    expected: "text",
                })
            }
        }
    }
    Err(DecodeError::MissingField(name))
}

fn optional_str(root: &Map<String, Value>, paths: &[&[&str]]) -> Option<String> {
    paths
        .iter()
        .find_map(|path| lookup(root, path)?.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn flag(data: &Map<String, Value>, key: &str) -> Option<bool> {
    data.get(key).and_then(Value::as_bool)
}

fn time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn list(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}
