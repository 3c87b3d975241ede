//! The only place that parses Qlik event JSON. Both reload event types, in any of the three
//! envelopes Qlik sends (legacy CloudEvents-0.1-like, hybrid, CloudEvents 1.0), become one
//! [`ReloadEvent`]. Field reference: shared fixtures `qlik/events.md`.
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

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
        other => return Err(DecodeError::UnknownEventType(other.to_owned())),
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
    let app_id = required(
        "toplevelresourceid",
        &[
            &root.toplevelresourceid,
            &ext.top_level_resource_id,
            &data.app_id,
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
    };
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
        owner_id: optional(&[&root.ownerid, &ext.owner_id]),
        user_id: optional(&[&root.userid, &ext.user_id, &data.user_id]),
        space_id: optional(&[&root.spaceid, &ext.space_id]),
        status,
        status_text,
        app_name: optional(&[&data.name]),
        trigger: optional(&[&data.r#type]),
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
        errors: data.errors.0,
        warnings: data.warnings.0,
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

fn unknown(field: &'static str, value: &str) -> DecodeError {
    DecodeError::UnknownValue {
        field,
        value: value.chars().take(64).collect(),
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

// ---- The wire types: the union of the three envelopes ----

/// One JSON value as far as the decoder cares: its kind, and its content when it is a scalar.
/// Arrays and objects are skipped (`IgnoredAny`) without building anything.
#[derive(Debug, Default)]
enum Loose<'a> {
    #[default]
    Absent,
    Null,
    /// Borrowed from the payload unless the JSON string held escapes.
    Text(Cow<'a, str>),
    Bool(bool),
    /// serde_json hands non-negative integers over as `u64`, negative ones as `i64`, others as
    /// `f64`, as it does when building a `Value`; the `as_*` readers match `Value`'s.
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Other,
}

impl Loose<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Unsigned(n) => Some(*n),
            Self::Signed(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Unsigned(n) => i64::try_from(*n).ok(),
            Self::Signed(n) => Some(*n),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Unsigned(n) => Some(*n as f64),
            Self::Signed(n) => Some(*n as f64),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Loose::Unsigned(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Loose::Signed(n))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(f))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Loose::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Loose::Text(Cow::Owned(text)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Loose::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Loose::Other)
    }
}

/// A value that we read into when it is an object, and otherwise only note the presence of.
#[derive(Debug, Default)]
enum Obj<T> {
    #[default]
    Absent,
    Object(T),
    /// Present but not an object (null included), skipped.
    Other,
}

/// An object whose fields we read; the rest of its keys are skipped.
trait Fields<'de>: Sized {
    fn visit<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl<'de, T: Fields<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjVisitor(std::marker::PhantomData))
    }
}

struct ObjVisitor<T>(std::marker::PhantomData<T>);

/// Every scalar answers `$value`: the visitor only cares about one kind of container.
macro_rules! any_scalar_is {
    ($value:expr) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

impl<'de, T: Fields<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    any_scalar_is!(Obj::Other);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Obj::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::visit(map).map(Obj::Object)
    }
}

/// `data.errors` / `data.warnings`: the items of an array, built as `Value`s (they have no
/// published schema); anything else is skipped and reads as an empty list.
#[derive(Debug, Default)]
struct List(Vec<Value>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = List;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    any_scalar_is!(List::default());

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| List::default())
    }
}

/// Declares an object's fields (Rust name, type, JSON key) and reads them from a JSON object.
///
/// A key given twice: the last one wins, as it did when the payload was parsed into a
/// `serde_json::Value` (and as in `JSON.parse`, so in Butler). serde's derive would instead
/// reject the whole payload (`duplicate field`), turning an event that raised an alert before
/// into a dead letter; keeping the last value never loses an alert the previous decoder raised.
macro_rules! fields {
    ($(#[$meta:meta])* struct $name:ident, keys $key:ident { $($field:ident: $ty:ty = $json:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        struct $name<'a> {
            $($field: $ty,)*
        }

        #[allow(non_camel_case_types)] // one variant per field, named like it
        #[derive(Deserialize)]
        #[serde(field_identifier)]
        enum $key {
            $(#[serde(rename = $json)] $field,)*
            #[serde(other)]
            Other,
        }

        impl<'de> Fields<'de> for $name<'de> {
            fn visit<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut fields = Self::default();
                while let Some(key) = map.next_key::<$key>()? {
                    match key {
                        $($key::$field => fields.$field = map.next_value()?,)*
                        $key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(fields)
            }
        }
    };
}

fields! {
    /// The top level of all three envelopes: legacy (`eventType`, `eventId`, `extensions`),
    /// CloudEvents 1.0 (`type`, `id`, `tenantid`, ...) and the hybrid of the two.
    struct Envelope, keys EnvelopeKey {
        r#type: Loose<'a> = "type",
        event_type: Loose<'a> = "eventType",
        id: Loose<'a> = "id",
        event_id: Loose<'a> = "eventId",
        event_id_upper: Loose<'a> = "eventID",
        event_type_version: Loose<'a> = "eventTypeVersion",
        source: Loose<'a> = "source",
        time: Loose<'a> = "time",
        event_time: Loose<'a> = "eventTime",
        tenantid: Loose<'a> = "tenantid",
        toplevelresourceid: Loose<'a> = "toplevelresourceid",
        ownerid: Loose<'a> = "ownerid",
        userid: Loose<'a> = "userid",
        spaceid: Loose<'a> = "spaceid",
        extensions: Obj<Extensions<'a>> = "extensions",
        data: Obj<Data<'a>> = "data",
    }
}

fields! {
    /// `extensions` of the legacy envelope.
    struct Extensions, keys ExtensionsKey {
        tenant_id: Loose<'a> = "tenantId",
        top_level_resource_id: Loose<'a> = "topLevelResourceId",
        owner_id: Loose<'a> = "ownerId",
        user_id: Loose<'a> = "userId",
        space_id: Loose<'a> = "spaceId",
    }
}

fields! {
    /// `data` of both event types.
    struct Data, keys DataKey {
        tenant_id: Loose<'a> = "tenantId",
        app_id: Loose<'a> = "appId",
        reload_id: Loose<'a> = "reloadId",
        id: Loose<'a> = "id",
        status: Loose<'a> = "status",
        succeeded: Loose<'a> = "succeeded",
        duration: Loose<'a> = "duration",
        duration_seconds: Loose<'a> = "durationSeconds",
        start_time: Loose<'a> = "startTime",
        end_time: Loose<'a> = "endTime",
        last_reload_time: Loose<'a> = "lastReloadTime",
        user_id: Loose<'a> = "userId",
        name: Loose<'a> = "name",
        r#type: Loose<'a> = "type",
        error_code: Loose<'a> = "errorCode",
        error_message: Loose<'a> = "errorMessage",
        is_session_app: Loose<'a> = "isSessionApp",
        is_partial_reload: Loose<'a> = "isPartialReload",
        partial: Loose<'a> = "partial",
        is_skip_store: Loose<'a> = "isSkipStore",
        is_direct_query_mode: Loose<'a> = "isDirectQueryMode",
        ended_with_memory_constraint: Loose<'a> = "endedWithMemoryConstraint",
        row_limit: Loose<'a> = "rowLimit",
        peak_memory_bytes: Loose<'a> = "peakMemoryBytes",
        size: Obj<Size<'a>> = "size",
        usage: Loose<'a> = "usage",
        app_usage: Loose<'a> = "appUsage",
        errors: List = "errors",
        warnings: List = "warnings",
    }
}

fields! {
    /// `data.size`.
    struct Size, keys SizeKey {
        memory: Loose<'a> = "memory",
    }
}
