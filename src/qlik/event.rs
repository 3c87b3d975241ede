//! The only place that parses Qlik event JSON. Both reload event types, in any of the three
//! envelopes Qlik sends (legacy CloudEvents-0.1-like, hybrid, CloudEvents 1.0), and Qlik
//! Automate's `automation.run.ended`, become one [`ReloadEvent`]. Field reference: shared fixtures `qlik/events.md`.
//!
//! Required fields (type, id, tenant, app, reload id, status) must be present with the right type,
//! or the event is rejected naming the field. Everything else is optional and read leniently: a
//! field of an unexpected type is ignored rather than losing the alert.
//!
//! The payload is parsed straight into the union of the three envelopes ([`Envelope`], [`Data`]):
//! text borrows from the payload unless it holds escapes, every value is kept only as its kind
//! ([`Loose`]) so a wrong type is judged here rather than failing the parse, and keys we do not
//! read are skipped without building anything. Only `data.errors` and `data.warnings` become
//! `serde_json::Value`s. Parts we skip are checked for JSON syntax only: nesting deeper than
//! serde_json's limit (128) or a lone surrogate escape there no longer makes a payload
//! `invalid_json`, as it did when the whole payload was parsed into a `Value`; UTF-8 is still
//! checked over the whole payload.

mod envelope;
mod error;
mod wire;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Failure;
use wire::{Data, Envelope, Extensions, Loose, Obj};

pub use envelope::{routing, structured_from_binary, Routing, BINARY_PREFIX};
pub use error::{DecodeError, Disposal};

pub const APP_RELOAD_FINISHED: &str = "com.qlik.v1.app.reload.finished";
pub const RELOAD_FINISHED: &str = "com.qlik.v1.reload.finished";
pub const AUTOMATION_RUN_ENDED: &str = "com.qlik.v1.automation.run.ended";

/// Which of the two event types this was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `com.qlik.v1.app.reload.finished`: one engine reload attempt ended.
    EngineAttempt,
    /// `com.qlik.v1.reload.finished`: the reload's final outcome, once per reload.
    FinalOutcome,
    /// `com.qlik.v1.automation.run.ended`: a Qlik Automate run ended. The automation stands
    /// where an app does (`app_id` is its id, `app_name` its name) and the run where a reload
    /// does (`reload_id` is the run id), so dedupe, rate limits, digests, silences and
    /// recoveries apply to automations as they do to apps.
    AutomationRun,
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
    /// `data.resourceType` of `reload.finished`: the service that started it (`reload-tasks`,
    /// `api`, `automate`, ...), and `data.resourceId`, the id there (e.g. the reload task).
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// `data.weight`: the reload's queue priority, 1–10.
    pub weight: Option<i64>,
    /// An automation's test run from the editor (`data.testRun`, `isTestRun`, or the context
    /// `test_run`).
    pub is_test_run: Option<bool>,
}

impl ReloadEvent {
    /// The error in short, for lists (the console): the event's code and message, else those of
    /// its first `data.errors[]` item (`qError`, [`engine_error_text`]).
    pub fn error_summary(&self) -> (Option<String>, Option<String>) {
        let first = self.errors.first();
        let code = self.error_code.clone().or_else(|| {
            first
                .and_then(|item| item.get("qError"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let message = self
            .error_message
            .clone()
            .or_else(|| first.map(engine_error_text));
        (code, message)
    }

    /// The kind of failure this event reports, or `None` when the reload succeeded.
    pub fn failure(&self) -> Option<Failure> {
        match (self.kind, self.status) {
            (EventKind::EngineAttempt, Status::Failed) => Some(Failure::EngineAttemptFailed),
            (EventKind::FinalOutcome, Status::Failed) => Some(Failure::ReloadFailed),
            (EventKind::FinalOutcome, Status::ExceededLimit) => Some(Failure::ReloadExceededLimit),
            (EventKind::FinalOutcome, Status::Canceled) => Some(Failure::ReloadCanceled),
            (EventKind::AutomationRun, Status::Failed) => Some(Failure::AutomationFailed),
            (EventKind::AutomationRun, Status::ExceededLimit) => {
                Some(Failure::AutomationExceededLimit)
            }
            _ => None,
        }
    }
}

/// Decodes one webhook body (as forwarded over MQTT) into a [`ReloadEvent`].
pub fn decode(payload: &[u8]) -> Result<ReloadEvent, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| {
        DecodeError::InvalidJson(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    let mut root = match serde_json::from_str::<Obj<Envelope>>(text) {
        Ok(Obj::Object(root)) => root,
        Ok(_) => return Err(DecodeError::NotAnObject),
        Err(e) => return Err(DecodeError::InvalidJson(e.to_string())),
    };
    let event_type = required("type", &[&root.r#type, &root.event_type])?;
    let kind = match event_type {
        APP_RELOAD_FINISHED => EventKind::EngineAttempt,
        RELOAD_FINISHED => EventKind::FinalOutcome,
        AUTOMATION_RUN_ENDED => EventKind::AutomationRun,
        // Kept short: the text goes into the log and the dead letter's detail, and the sender
        // chooses its length.
        other => {
            return Err(DecodeError::UnknownEventType(
                other.chars().take(MAX_ECHOED_CHARS).collect(),
            ))
        }
    };
    let data = match std::mem::take(&mut root.data) {
        Obj::Object(data) => data,
        Obj::Other => {
            return Err(DecodeError::WrongType {
                field: "data",
                expected: "an object",
            })
        }
        Obj::Absent => return Err(DecodeError::MissingField("data")),
    };
    // `extensions` that is not an object counts as absent, as it did for a path lookup.
    let ext = match std::mem::take(&mut root.extensions) {
        Obj::Object(ext) => ext,
        Obj::Absent | Obj::Other => Extensions::default(),
    };
    let event_id = required("id", &[&root.id, &root.event_id, &root.event_id_upper])?;
    let tenant_id = required(
        "tenantid",
        &[&root.tenantid, &ext.tenant_id, &data.tenant_id],
    )?;
    let resource = match kind {
        EventKind::AutomationRun => &data.automation_id,
        EventKind::EngineAttempt | EventKind::FinalOutcome => &data.app_id,
    };
    let app_id = required(
        "toplevelresourceid",
        &[
            &root.toplevelresourceid,
            &ext.top_level_resource_id,
            resource,
        ],
    )?;
    let (reload_id, status_text, status) = match kind {
        EventKind::EngineAttempt => {
            let reload_id = required("data.reloadId", &[&data.reload_id])?;
            let text = required("data.status", &[&data.status])?;
            let status = match text {
                "ok" => Status::Succeeded,
                "error" => Status::Failed,
                other => return Err(unknown("data.status", other)),
            };
            (reload_id, text.to_owned(), status)
        }
        EventKind::FinalOutcome => {
            let reload_id = required("data.id", &[&data.id])?;
            let (text, status) = final_status(&data)?;
            (reload_id, text, status)
        }
        EventKind::AutomationRun => {
            let run_id = required("data.id", &[&data.id])?;
            let text = required("data.status", &[&data.status])?;
            (run_id, text.to_owned(), run_status(text)?)
        }
    };

    let (duration_ms, start_time, end_time) = match kind {
        EventKind::EngineAttempt => (data.duration.as_u64(), None, time(&data.end_time)),
        EventKind::FinalOutcome => (
            data.duration_seconds
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| (s * 1000.0).round() as u64),
            time(&data.start_time),
            time(&data.last_reload_time),
        ),
        EventKind::AutomationRun => (None, time(&data.start_time), time(&data.stop_time)),
    };
    let automation = kind == EventKind::AutomationRun;
    let (name, trigger) = match automation {
        true => (&data.title, &data.context),
        false => (&data.name, &data.r#type),
    };
    let is_test_run = data
        .test_run
        .as_bool()
        .or(data.is_test_run.as_bool())
        .or_else(|| (data.context.text()? == "test_run").then_some(true))
        .filter(|_| automation);
    let mut errors = data.errors.0;
    if errors.is_empty() {
        errors = data.error.0;
    }
    // `time` wins whenever it is present, even as null or not a time: `eventTime` is the legacy
    // name of the same field, not a fallback for a bad value.
    let event_time = match root.time {
        Loose::Absent => time(&root.event_time),
        _ => time(&root.time),
    };
    Ok(ReloadEvent {
        kind,
        event_type: event_type.to_owned(),
        event_type_version: optional(&[&root.event_type_version]),
        event_id: event_id.to_owned(),
        event_time,
        source: optional(&[&root.source]),
        tenant_id: tenant_id.to_owned(),
        app_id: app_id.to_owned(),
        reload_id: reload_id.to_owned(),
        owner_id: optional(&[&root.ownerid, &ext.owner_id, &data.owner_id]),
        user_id: match automation {
            true => optional(&[&data.executed_by_id, &root.userid]),
            false => optional(&[&root.userid, &ext.user_id, &data.user_id]),
        },
        space_id: optional(&[&root.spaceid, &ext.space_id, &data.space_id]),
        status,
        status_text,
        app_name: optional(&[name]),
        trigger: optional(&[trigger]),
        error_code: optional(&[&data.error_code]),
        error_message: optional(&[&data.error_message]),
        start_time,
        end_time,
        duration_ms,
        is_session_app: data.is_session_app.as_bool(),
        is_partial_reload: data.is_partial_reload.as_bool().or(data.partial.as_bool()),
        is_skip_store: data.is_skip_store.as_bool(),
        is_direct_query_mode: data.is_direct_query_mode.as_bool(),
        ended_with_memory_constraint: data.ended_with_memory_constraint.as_bool(),
        row_limit: data.row_limit.as_i64(),
        peak_memory_bytes: data.peak_memory_bytes.as_u64(),
        size_memory_bytes: match &data.size {
            Obj::Object(size) => size.memory.as_u64(),
            Obj::Absent | Obj::Other => None,
        },
        usage: optional(&[&data.usage, &data.app_usage]),
        errors,
        warnings: data.warnings.0,
        resource_type: optional(&[&data.resource_type]),
        resource_id: optional(&[&data.resource_id]),
        weight: data.weight.as_i64(),
        is_test_run,
    })
}

/// `reload.finished` carries `status`; `succeeded` (required by the schema) stands in when it
/// does not.
fn final_status(data: &Data) -> Result<(String, Status), DecodeError> {
    match &data.status {
        Loose::Text(text) => {
            let status = match text.as_ref() {
                "SUCCEEDED" => Status::Succeeded,
                "FAILED" => Status::Failed,
                "CANCELED" => Status::Canceled,
                "EXCEEDED_LIMIT" => Status::ExceededLimit,
                other => return Err(unknown("data.status", other)),
            };
            Ok((text.as_ref().to_owned(), status))
        }
        Loose::Null | Loose::Absent => match data.succeeded {
            Loose::Bool(true) => Ok(("SUCCEEDED".to_owned(), Status::Succeeded)),
            Loose::Bool(false) => Ok(("FAILED".to_owned(), Status::Failed)),
            _ => Err(DecodeError::MissingField("data.status")),
        },
        _ => Err(DecodeError::WrongType {
            field: "data.status",
            expected: "text",
        }),
    }
}

/// An automation run's `data.status`. Only ended runs reach a webhook; a status of a run still
/// going (`running`, `queued`, ...) or one Qlik has not listed is an unknown value.
fn run_status(text: &str) -> Result<Status, DecodeError> {
    match text {
        "failed" => Ok(Status::Failed),
        "exceeded limit" => Ok(Status::ExceededLimit),
        "finished" | "finished with warnings" => Ok(Status::Succeeded),
        "stopped" | "must stop" => Ok(Status::Canceled),
        other => Err(unknown("data.status", other)),
    }
}

/// The longest part of a sender's value an error repeats.
const MAX_ECHOED_CHARS: usize = 64;

fn unknown(field: &'static str, value: &str) -> DecodeError {
    DecodeError::UnknownValue {
        field,
        value: value.chars().take(MAX_ECHOED_CHARS).collect(),
    }
}

/// The first of `candidates` that is present and not null; it must be non-empty text.
fn required<'v>(name: &'static str, candidates: &[&'v Loose<'_>]) -> Result<&'v str, DecodeError> {
    for value in candidates {
        match value {
            Loose::Absent | Loose::Null => continue,
            Loose::Text(text) if !text.trim().is_empty() => return Ok(text),
            Loose::Text(_) => return Err(DecodeError::MissingField(name)),
            _ => {
                return Err(DecodeError::WrongType {
                    field: name,
                    expected: "text",
                })
            }
        }
    }
    Err(DecodeError::MissingField(name))
}

/// The first of `candidates` that is text, unless that text is empty.
fn optional(candidates: &[&Loose<'_>]) -> Option<String> {
    candidates
        .iter()
        .find_map(|value| value.text())
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

fn time(value: &Loose<'_>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.text()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
/// A readable line for one `data.errors[]` / `data.warnings[]` item (no published schema): the
/// engine's `qDescription`, else a `message` (automation runs), else the item as JSON.
pub fn engine_error_text(item: &Value) -> String {
    match ["qDescription", "message"]
        .iter()
        .find_map(|key| item.get(*key).and_then(Value::as_str))
    {
        Some(text) => text.to_owned(),
        None => match item.as_str() {
            Some(text) => text.to_owned(),
            None => item.to_string(),
        },
    }
}
