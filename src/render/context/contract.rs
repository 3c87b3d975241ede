//! The template contract as a type: every field a reload alert's templates can use, under the
//! name they use (Butler's, plus what Butler lacks). docs/templates.md describes each one. A
//! field whose source is missing is `None`, serialised as `null`, which renders empty.

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{cap, grouped, local_formats, utc_text};
use crate::config::ScriptLogLines;
use crate::zone::Zone;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertContext {
    /// `reload` or `automation`.
    pub alert_kind: &'static str,
    pub tenant_id: String,
    pub tenant_comment: Option<String>,
    pub tenant_url: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub app_id: String,
    /// Never empty: the API's name, else the event's, else the last one an event carried
    /// (remembered in the store), else `app <appId>` (`automation <id>`).
    pub app_name: String,
    pub app_description: Option<String>,
    pub app_url: Option<String>,
    pub app_has_section_access: Option<bool>,
    pub app_is_published: Option<bool>,
    pub app_publish_time: Option<String>,
    pub app_thumbnail: Option<String>,
    pub app_owner_name: Option<String>,
    pub app_owner_user_id: Option<String>,
    pub app_owner_picture: Option<String>,
    pub app_owner_email: Option<String>,
    pub app_tags: Vec<String>,
    pub space_id: Option<String>,
    pub space_name: Option<String>,
    pub space_type: Option<String>,
    pub reload_trigger: Option<String>,
    pub source: Option<String>,
    pub event_type: String,
    pub event_type_version: Option<String>,
    pub event_id: String,
    pub event_time: Option<String>,
    /// `reload_failed`, `engine_attempt_failed`, … (the `alert_on` value that matched).
    pub failure: Option<&'static str>,
    pub ended_with_memory_constraint: Option<bool>,
    pub is_direct_query_mode: Option<bool>,
    pub is_partial_reload: Option<bool>,
    pub is_session_app: Option<bool>,
    pub is_skip_store: Option<bool>,
    pub reload_id: String,
    /// The reload task that started the reload (`resourceId` when `resourceType` is
    /// `reload-tasks` or `tasks`).
    pub reload_task_id: Option<String>,
    /// The service that started it (`reload-tasks`, `api`, `automate`, ...) and its id there.
    pub reload_resource_type: Option<String>,
    pub reload_resource_id: Option<String>,
    /// Queue priority, 1–10.
    pub reload_weight: Option<i64>,
    pub row_limit: Option<i64>,
    /// Butler's field; Qlik Cloud events carry no statements, so it is always empty.
    pub statements: Vec<String>,
    pub status: String,
    /// Milliseconds.
    pub usage_duration: Option<u64>,
    pub peak_memory_bytes: Option<String>,
    pub size_memory_bytes: Option<String>,
    pub app_file_size: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub engine_errors: Vec<String>,
    /// Readable lines from the event's `data.warnings[]`.
    pub engine_warnings: Vec<String>,
    pub log_message: Option<String>,
    pub execution_duration: DurationParts,
    pub execution_start_time: StartTimes,
    pub execution_stop_time: StopTimes,
    pub execution_status_text: String,
    #[serde(rename = "qlikSenseQMC")]
    pub qlik_sense_qmc: Option<String>,
    #[serde(rename = "qlikSenseHub")]
    pub qlik_sense_hub: Option<String>,
    pub generic_urls: Vec<GenericUrl>,
    /// Open app, Hub, Console, then the configured links: what chat messages show as buttons.
    pub buttons: Vec<Button>,
    pub destination_name: String,
    #[serde(flatten)]
    pub script_log: ScriptLogFields,
    #[serde(flatten)]
    pub automation: super::automation::AutomationFields,
}

/// Butler's `genericUrls[]` item.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericUrl {
    pub id: String,
    pub link_text: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Button {
    pub text: String,
    pub url: String,
}

/// `executionDuration.{hours,minutes,seconds}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DurationParts {
    pub hours: Option<u64>,
    pub minutes: Option<u64>,
    pub seconds: Option<u64>,
}

impl DurationParts {
    pub fn of(ms: Option<u64>) -> Self {
        match ms {
            Some(ms) => {
                let secs = ms / 1000;
                Self {
                    hours: Some(secs / 3600),
                    minutes: Some(secs % 3600 / 60),
                    seconds: Some(secs % 60),
                }
            }
            None => Self::default(),
        }
    }
}

/// A time in UTC and in the five local formats (see [`local_formats`]).
#[derive(Debug, Clone, Default)]
pub struct Times {
    pub utc: Option<String>,
    pub local: Option<[String; 5]>,
}

impl Times {
    pub fn of(t: Option<DateTime<Utc>>, tz: Option<&Zone>) -> Self {
        Self {
            utc: t.map(utc_text),
            local: t.map(|t| local_formats(t, tz)),
        }
    }

    /// `keys`: the UTC key, then the five local ones ([`START_KEYS`], [`STOP_KEYS`]).
    fn serialize<S: Serializer>(&self, keys: &[&str; 6], serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry(keys[0], &self.utc)?;
        for (i, key) in keys[1..].iter().enumerate() {
            let text = self.local.as_ref().map(|l| &l[i]);
            map.serialize_entry(key, &text)?;
        }
        map.end()
    }
}

/// The keys of a start time, written out: every alert serialises four times.
const START_KEYS: [&str; 6] = [
    "startTimeUTC",
    "startTimeLocal1",
    "startTimeLocal2",
    "startTimeLocal3",
    "startTimeLocal4",
    "startTimeLocal5",
];
const STOP_KEYS: [&str; 6] = [
    "stopTimeUTC",
    "stopTimeLocal1",
    "stopTimeLocal2",
    "stopTimeLocal3",
    "stopTimeLocal4",
    "stopTimeLocal5",
];

/// `executionStartTime.{startTimeUTC,startTimeLocal1..5}`.
#[derive(Debug, Clone, Default)]
pub struct StartTimes(pub Times);

/// `executionStopTime.{stopTimeUTC,stopTimeLocal1..5}`.
#[derive(Debug, Clone, Default)]
pub struct StopTimes(pub Times);

impl Serialize for StartTimes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(&START_KEYS, serializer)
    }
}

impl Serialize for StopTimes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(&STOP_KEYS, serializer)
    }
}

/// The script log fields, for one destination's head and tail line counts. Lines are split on
/// CRLF or LF and joined with LF. Sizes are grouped like Butler's (`12,345`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptLogFields {
    pub script_log_size: Option<String>,
    pub script_log_size_rows: Option<String>,
    pub script_log_size_characters: Option<String>,
    pub script_log_head: Option<String>,
    pub script_log_tail: Option<String>,
    pub script_log_head_count: usize,
    pub script_log_tail_count: usize,
    /// The tail reaches the log's first line: head and tail together are the whole log.
    pub script_log_complete: bool,
    /// The script log was looked up and could not be fetched (Qlik's answer, or
    /// `enrich.timeout` in a storm under the rate limit).
    pub script_log_unavailable: bool,
}

impl ScriptLogFields {
    pub fn of(log: Option<&str>, lines: ScriptLogLines) -> Self {
        let Some(log) = log else {
            return Self::default();
        };
        let rows: Vec<&str> = log
            .trim_end_matches(['\r', '\n'])
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .collect();
        let head_n = lines.head.min(rows.len());
        let tail_n = lines.tail.min(rows.len());
        let chars = grouped(log.chars().count() as u64);
        Self {
            script_log_size: Some(chars.clone()),
            script_log_size_rows: Some(grouped(rows.len() as u64)),
            script_log_size_characters: Some(chars),
            script_log_head: Some(cap(rows[..head_n].join("\n"))),
            script_log_tail: Some(cap(rows[rows.len() - tail_n..].join("\n"))),
            script_log_head_count: head_n,
            script_log_tail_count: tail_n,
            script_log_complete: tail_n == rows.len(),
            script_log_unavailable: false,
        }
    }

    /// Says whether the look-up of the log failed; only a log we do not have is unavailable.
    pub fn lookup_failed(mut self, failed: bool) -> Self {
        self.script_log_unavailable = failed && self.script_log_tail.is_none();
        self
    }
}
