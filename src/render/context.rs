//! The flat, Butler-compatible view of one failed reload that templates see. Field names and
//! meanings follow Butler's documented Qlik Cloud reload-failure fields; a field whose source is
//! missing is `null`, which renders empty (never "undefined" or "null"). docs/templates.md lists
//! every field.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use crate::config::{Config, LinkConfig, ScriptLogLines, TenantConfig};
use crate::qlik::event::{ReloadEvent, Status};
use crate::qlik::model::Enrichment;

/// Longest text kept in one field (script log excerpts, log message, error message): enough for
/// any alert, and a multi-megabyte line cannot bloat a message.
pub const MAX_FIELD_CHARS: usize = 64 * 1024;
/// Marker appended where a field was cut.
pub const CUT_MARKER: &str = " … [truncated]";

/// Everything an alert is made from.
pub struct AlertInput<'a> {
    pub event: &'a ReloadEvent,
    pub enrichment: &'a Enrichment,
    pub tenant: Option<&'a TenantConfig>,
    pub links: &'a [LinkConfig],
    /// `None`: the system's local zone.
    pub timezone: Option<Tz>,
}

impl<'a> AlertInput<'a> {
    /// The input for a real event: its own tenant's settings (none if it is not configured).
    pub fn new(config: &'a Config, event: &'a ReloadEvent, enrichment: &'a Enrichment) -> Self {
        Self {
            event,
            enrichment,
            tenant: config.tenants.iter().find(|t| t.id == event.tenant_id),
            links: &config.links,
            timezone: config.timezone,
        }
    }

    /// The input for a sample event: its tenant if configured, else the first tenant, so links
    /// in `check` and `test-alert` look like the real thing.
    pub fn for_sample(
        config: &'a Config,
        event: &'a ReloadEvent,
        enrichment: &'a Enrichment,
    ) -> Self {
        let mut input = Self::new(config, event, enrichment);
        input.tenant = input.tenant.or(config.tenants.first());
        input
    }
}

/// Builds the template context for one destination.
pub fn build(input: &AlertInput, destination: &str, lines: ScriptLogLines) -> Value {
    let mut ctx = base(input);
    ctx.insert("destinationName".into(), json!(destination));
    script_log_fields(&mut ctx, input.enrichment.script_log.as_deref(), lines);
    Value::Object(ctx)
}

fn base(input: &AlertInput) -> Map<String, Value> {
    let (e, x) = (input.event, input.enrichment);
    let (reload, app, item, owner, space) = (
        x.reload.as_ref(),
        x.app.as_ref(),
        x.item.as_ref(),
        x.owner.as_ref(),
        x.space.as_ref(),
    );
    let tenant_url = input.tenant.map(|t| t.base_url().to_owned());
    let start = e.start_time.or(reload.and_then(|r| r.start_time));
    let end = e
        .end_time
        .or(reload.and_then(|r| r.end_time))
        .or(e.event_time);
    let duration_ms = e.duration_ms.or_else(|| match (start, end) {
        (Some(s), Some(t)) if t >= s => Some((t - s).num_milliseconds() as u64),
        _ => None,
    });
    // An engine-attempt event has an end time and a duration but no start time.
    let start = start.or_else(|| {
        let ms = i64::try_from(duration_ms?).ok()?;
        end?.checked_sub_signed(chrono::Duration::milliseconds(ms))
    });
    let thumbnail = app
        .and_then(|a| a.thumbnail.clone())
        .filter(|t| !t.is_empty())
        .map(|t| match (&tenant_url, t.starts_with('/')) {
            (Some(base), true) => format!("{base}{t}"),
            _ => t,
        });
    let publish_time = app.and_then(|a| a.publish_time.clone());
    let app_url = tenant_url
        .as_ref()
        .map(|base| format!("{base}/sense/app/{}", e.app_id));
    let user_name =
        x.user
            .as_ref()
            .and_then(|u| u.name.clone())
            .or_else(|| match (&e.user_id, owner) {
                (Some(user), Some(o)) if *user == o.id => o.name.clone(),
                _ => None,
            });
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("tenantId", json!(e.tenant_id));
    put(
        "tenantComment",
        opt(input
            .tenant
            .map(|t| t.comment.clone())
            .filter(|c| !c.is_empty())),
    );
    put("tenantUrl", opt(tenant_url.clone()));
    put(
        "userId",
        opt(e.user_id.clone().or(reload.and_then(|r| r.user_id.clone()))),
    );
    put("userName", opt(user_name));
    put("appId", json!(e.app_id));
    put(
        "appName",
        opt(e
            .app_name
            .clone()
            .or(app.and_then(|a| a.name.clone()))
            .map(cap)),
    );
    put(
        "appDescription",
        opt(app.and_then(|a| a.description.clone()).map(cap)),
    );
    let app_url_for_buttons = app_url.clone();
    put("appUrl", opt(app_url));
    put(
        "appHasSectionAccess",
        opt(app.and_then(|a| a.has_section_access)),
    );
    put(
        "appIsPublished",
        opt(app.map(|_| publish_time.as_deref().is_some_and(|t| !t.is_empty()))),
    );
    put(
        "appPublishTime",
        opt(publish_time.filter(|t| !t.is_empty())),
    );
    put("appThumbnail", opt(thumbnail));
    put("appOwnerName", opt(owner.and_then(|o| o.name.clone())));
    put(
        "appOwnerUserId",
        opt(e.owner_id.clone().or(app.and_then(|a| a.owner_id.clone()))),
    );
    put(
        "appOwnerPicture",
        opt(owner.and_then(|o| o.picture.clone())),
    );
    put("appOwnerEmail", opt(owner.and_then(|o| o.email.clone())));
    put(
        "appTags",
        json!(item.map(|i| i.tags.clone()).unwrap_or_default()),
    );
    put(
        "spaceId",
        opt(e.space_id.clone().or(app.and_then(|a| a.space_id.clone()))),
    );
    put("spaceName", opt(space.and_then(|s| s.name.clone())));
    put("spaceType", opt(space.and_then(|s| s.kind.clone())));
    put(
        "reloadTrigger",
        opt(e.trigger.clone().or(reload.and_then(|r| r.trigger.clone()))),
    );
    put("source", opt(e.source.clone()));
    put("eventType", json!(e.event_type));
    put("eventTypeVersion", opt(e.event_type_version.clone()));
    put("eventId", json!(e.event_id));
    put("eventTime", opt(e.event_time.map(utc_text)));
    put("failure", opt(e.failure().map(|f| f.as_str())));
    put(
        "endedWithMemoryConstraint",
        opt(e.ended_with_memory_constraint),
    );
    put(
        "isDirectQueryMode",
        opt(e
            .is_direct_query_mode
            .or(app.and_then(|a| a.is_direct_query_mode))),
    );
    put(
        "isPartialReload",
        opt(e.is_partial_reload.or(reload.and_then(|r| r.partial))),
    );
    put("isSessionApp", opt(e.is_session_app));
    put("isSkipStore", opt(e.is_skip_store));
    put("reloadId", json!(e.reload_id));
    put("rowLimit", opt(e.row_limit));
    put("statements", json!([]));
    put("status", json!(e.status_text));
    put("usageDuration", opt(duration_ms));
    put("peakMemoryBytes", opt(e.peak_memory_bytes.map(grouped)));
    put(
        "sizeMemoryBytes",
        opt(e
            .size_memory_bytes
            .or(item.and_then(|i| i.app_memory_size))
            .map(grouped)),
    );
    put(
        "appFileSize",
        opt(item.and_then(|i| i.app_file_size).map(grouped)),
    );
    put(
        "errorCode",
        opt(e
            .error_code
            .clone()
            .or(reload.and_then(|r| r.error_code.clone()))),
    );
    put(
        "errorMessage",
        opt(e
            .error_message
            .clone()
            .or(reload.and_then(|r| r.error_message.clone()))
            .map(cap)),
    );
    put("engineErrors", json!(engine_errors(e)));
    put(
        "logMessage",
        opt(reload
            .and_then(|r| r.log.as_deref())
            .map(|l| cap(l.replace("\r\n", "\n")))),
    );
    put("executionDuration", duration_parts(duration_ms));
    put("executionStartTime", times(start, "start", input.timezone));
    put("executionStopTime", times(end, "stop", input.timezone));
    put(
        "executionStatusText",
        json!(reload
            .and_then(|r| r.status.clone())
            .unwrap_or_else(|| final_status(e.status).to_owned())),
    );
    let hub = input.tenant.map(|t| {
        t.hub_url
            .clone()
            .unwrap_or_else(|| format!("{}/hub", t.base_url()))
    });
    let qmc = input.tenant.map(|t| {
        t.qmc_url
            .clone()
            .unwrap_or_else(|| format!("{}/console", t.base_url()))
    });
    let mut buttons = Vec::new();
    for (text, url) in [
        ("Open app", &app_url_for_buttons),
        ("Hub", &hub),
        ("Console", &qmc),
    ] {
        if let Some(url) = url {
            buttons.push(json!({"text": text, "url": url}));
        }
    }
    buttons.extend(
        input
            .links
            .iter()
            .map(|l| json!({"text": l.text, "url": l.url})),
    );
    put("qlikSenseQMC", opt(qmc));
    put("qlikSenseHub", opt(hub));
    put(
        "genericUrls",
        Value::Array(
            input
                .links
                .iter()
                .map(|l| json!({"id": l.id, "linkText": l.text, "url": l.url}))
                .collect(),
        ),
    );
    put("buttons", Value::Array(buttons));
    m
}

fn opt<T: Into<Value>>(value: Option<T>) -> Value {
    value.map_or(Value::Null, Into::into)
}

/// `FAILED`, `SUCCEEDED`, ... as the Reloads API names the status.
fn final_status(status: Status) -> &'static str {
    match status {
        Status::Succeeded => "SUCCEEDED",
        Status::Failed => "FAILED",
        Status::Canceled => "CANCELED",
        Status::ExceededLimit => "EXCEEDED_LIMIT",
    }
}

/// Readable lines from `data.errors[]` (no published schema): the engine's description when the
/// item has one, else the item as JSON.
fn engine_errors(e: &ReloadEvent) -> Vec<String> {
    e.errors
        .iter()
        .map(
            |item| match item.get("qDescription").and_then(Value::as_str) {
                Some(text) => cap(text.to_owned()),
                None => cap(item.to_string()),
            },
        )
        .collect()
}

/// Cuts a text at [`MAX_FIELD_CHARS`] with a visible marker.
pub fn cap(text: String) -> String {
    match text.char_indices().nth(MAX_FIELD_CHARS) {
        Some((at, _)) => format!("{}{CUT_MARKER}", &text[..at]),
        None => text,
    }
}

/// `12345678` → `12,345,678`, as Butler's `toLocaleString()` shows sizes.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration_parts(ms: Option<u64>) -> Value {
    match ms {
        Some(ms) => {
            let secs = ms / 1000;
            json!({"hours": secs / 3600, "minutes": secs % 3600 / 60, "seconds": secs % 60})
        }
        None => json!({"hours": null, "minutes": null, "seconds": null}),
    }
}

fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `{startTimeUTC, startTimeLocal1..5}` (or `stop...`); docs/templates.md shows each format.
fn times(t: Option<DateTime<Utc>>, prefix: &str, tz: Option<Tz>) -> Value {
    let formats = t.map(|t| local_formats(t, tz));
    let mut m = Map::new();
    m.insert(format!("{prefix}TimeUTC"), opt(t.map(utc_text)));
    for i in 0..5 {
        let text = formats.as_ref().map(|f| f[i].clone());
        m.insert(format!("{prefix}TimeLocal{}", i + 1), opt(text));
    }
    Value::Object(m)
}

/// The five local formats: `2025-03-14 07:12:31`, `3/14/2025, 7:12:31 AM`,
/// `Mar 14, 2025, 7:12:31 AM`, `March 14, 2025 at 7:12:31 AM CET`, `2025-03-14T07:12:31+01:00`.
pub fn local_formats(t: DateTime<Utc>, tz: Option<Tz>) -> [String; 5] {
    fn all<Z: chrono::TimeZone>(t: DateTime<Z>) -> [String; 5]
    where
        Z::Offset: std::fmt::Display,
    {
        [
            t.format("%Y-%m-%d %H:%M:%S").to_string(),
            t.format("%-m/%-d/%Y, %-I:%M:%S %p").to_string(),
            t.format("%b %-d, %Y, %-I:%M:%S %p").to_string(),
            t.format("%B %-d, %Y at %-I:%M:%S %p %Z").to_string(),
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        ]
    }
    match tz {
        Some(tz) => all(t.with_timezone(&tz)),
        None => all(t.with_timezone(&chrono::Local)),
    }
}

/// Script log fields for this destination's head and tail line counts. Lines are split on CRLF
/// or LF and joined with LF.
fn script_log_fields(m: &mut Map<String, Value>, log: Option<&str>, lines: ScriptLogLines) {
    let Some(log) = log else {
        for key in [
            "scriptLogSize",
            "scriptLogSizeRows",
            "scriptLogSizeCharacters",
            "scriptLogHead",
            "scriptLogTail",
        ] {
            m.insert(key.into(), Value::Null);
        }
        m.insert("scriptLogHeadCount".into(), json!(0));
        m.insert("scriptLogTailCount".into(), json!(0));
        m.insert("scriptLogComplete".into(), json!(false));
        return;
    };
    let rows: Vec<&str> = log
        .trim_end_matches(['\r', '\n'])
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let head_n = lines.head.min(rows.len());
    let tail_n = lines.tail.min(rows.len());
    let chars = grouped(log.chars().count() as u64);
    m.insert("scriptLogSize".into(), json!(chars));
    m.insert("scriptLogSizeCharacters".into(), json!(chars));
    m.insert(
        "scriptLogSizeRows".into(),
        json!(grouped(rows.len() as u64)),
    );
    m.insert(
        "scriptLogHead".into(),
        json!(cap(rows[..head_n].join("\n"))),
    );
    m.insert(
        "scriptLogTail".into(),
        json!(cap(rows[rows.len() - tail_n..].join("\n"))),
    );
    m.insert("scriptLogHeadCount".into(), json!(head_n));
    m.insert("scriptLogTailCount".into(), json!(tail_n));
    m.insert("scriptLogComplete".into(), json!(tail_n == rows.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(41_943_040), "41,943,040");
    }

    #[test]
    fn five_local_formats() {
        let t = DateTime::parse_from_rfc3339("2025-03-14T06:12:31.904Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        let f = local_formats(t, Some(chrono_tz::Europe::Stockholm));
        assert_eq!(
            f,
            [
                "2025-03-14 07:12:31",
                "3/14/2025, 7:12:31 AM",
                "Mar 14, 2025, 7:12:31 AM",
                "March 14, 2025 at 7:12:31 AM CET",
                "2025-03-14T07:12:31+01:00",
            ]
        );
    }

    #[test]
    fn script_log_head_and_tail_by_line_count() {
        let mut m = Map::new();
        script_log_fields(
            &mut m,
            Some("a\r\nb\r\nc\r\nd\r\n"),
            ScriptLogLines { head: 1, tail: 2 },
        );
        assert_eq!(m["scriptLogHead"], "a");
        assert_eq!(m["scriptLogTail"], "c\nd");
        assert_eq!(m["scriptLogSizeRows"], "4");
        assert_eq!(m["scriptLogTailCount"], 2);
        let mut m = Map::new();
        script_log_fields(&mut m, Some("only"), ScriptLogLines { head: 15, tail: 25 });
        assert_eq!(m["scriptLogHead"], "only");
        assert_eq!(m["scriptLogHeadCount"], 1);
    }

    #[test]
    fn long_fields_are_cut_with_a_marker() {
        let long = "x".repeat(MAX_FIELD_CHARS + 10);
        let cut = cap(long);
        assert!(cut.ends_with(CUT_MARKER));
        assert_eq!(
            cut.chars().count(),
            MAX_FIELD_CHARS + CUT_MARKER.chars().count()
        );
    }
}
