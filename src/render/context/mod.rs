//! The flat, Butler-compatible view of one failed reload that templates see. Field names and
//! meanings follow Butler's documented Qlik Cloud reload-failure fields; a field whose source is
//! missing is `null`, which renders empty (never "undefined" or "null"). docs/templates.md lists
//! every field; [`AlertContext`] is that contract as a type.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{Config, LinkConfig, ScriptLogLines, TenantConfig};
use crate::domain::AlertKind;
use crate::metrics::{Label, Lookup};
use crate::qlik::event::{engine_error_text, EventKind, ReloadEvent, Status};
use crate::qlik::model::Enrichment;
use crate::zone::Zone;

mod automation;
mod contract;
mod local;

pub use automation::{automation_url, AutomationFields};
pub use contract::{
    AlertContext, Button, DurationParts, GenericUrl, ScriptLogFields, StartTimes, StopTimes, Times,
};
pub use local::local_formats;

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
    pub timezone: Option<&'a Zone>,
    /// The last name an event carried for this app (the store's), for when neither the API
    /// nor this event names it.
    pub remembered_name: Option<&'a str>,
}

impl<'a> AlertInput<'a> {
    /// The input for a real event: its own tenant's settings (none if it is not configured).
    pub fn new(config: &'a Config, event: &'a ReloadEvent, enrichment: &'a Enrichment) -> Self {
        Self {
            event,
            enrichment,
            tenant: config.tenants.iter().find(|t| t.id == event.tenant_id),
            links: &config.links,
            timezone: config.timezone.as_ref(),
            remembered_name: None,
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

/// One alert's contexts for all its destinations. Destinations differ only in
/// `destinationName` and the script-log lines they show, so a context is built once for each
/// setting of the lines in use and given each destination's name when asked for.
pub struct Contexts<'i, 'a> {
    input: &'i AlertInput<'a>,
    built: Vec<(ScriptLogLines, Value)>,
}

impl<'i, 'a> Contexts<'i, 'a> {
    pub fn new(input: &'i AlertInput<'a>) -> Self {
        Self {
            input,
            built: Vec::new(),
        }
    }

    pub fn input(&self) -> &'i AlertInput<'a> {
        self.input
    }

    /// The context for `destination`, as [`build`] makes it.
    pub fn for_destination(&mut self, destination: &str, lines: ScriptLogLines) -> &Value {
        let at = match self.built.iter().position(|(l, _)| *l == lines) {
            Some(at) => {
                if let Some(slot) = self.built[at].1.get_mut("destinationName") {
                    let mut name = destination.to_owned();
                    super::escape::keep_visible(&mut name);
                    *slot = Value::String(name);
                }
                at
            }
            None => {
                self.built
                    .push((lines, build(self.input, destination, lines)));
                self.built.len() - 1
            }
        };
        &self.built[at].1
    }
}

/// Builds the template context for one destination, as the JSON value templates render.
pub fn build(input: &AlertInput, destination: &str, lines: ScriptLogLines) -> Value {
    // Serialising plain strings, numbers and maps cannot fail.
    let mut ctx = serde_json::to_value(fields(input, destination, lines)).unwrap_or(Value::Null);
    // Names, owners, error texts and logs come from Qlik users: no control or bidi character
    // reaches any message, whatever the destination or template.
    super::escape::strings_in_place(&mut ctx, &super::escape::keep_visible);
    ctx
}

/// The context's fields for one destination.
pub fn fields(input: &AlertInput, destination: &str, lines: ScriptLogLines) -> AlertContext {
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
    let automation = e.kind == EventKind::AutomationRun;
    let app_name = app_name(input);
    // The hub link the items API gives (`links.open.href`), else the usual one.
    let app_url = match automation {
        true => automation_url(tenant_url.as_deref(), &e.app_id),
        false => item.and_then(|i| i.open_url.clone()).or_else(|| {
            tenant_url
                .as_ref()
                .map(|base| format!("{base}/sense/app/{}", e.app_id))
        }),
    };
    let user_name =
        x.user
            .as_ref()
            .and_then(|u| u.name.clone())
            .or_else(|| match (&e.user_id, owner) {
                (Some(user), Some(o)) if *user == o.id => o.name.clone(),
                _ => None,
            });
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
    let open = if automation {
        "Open automation"
    } else {
        "Open app"
    };
    let mut buttons: Vec<Button> = [(open, &app_url), ("Hub", &hub), ("Console", &qmc)]
        .into_iter()
        .filter_map(|(text, url)| {
            url.as_ref().map(|url| Button {
                text: text.to_owned(),
                url: url.clone(),
            })
        })
        .collect();
    buttons.extend(input.links.iter().map(|l| Button {
        text: l.text.clone(),
        url: l.url.clone(),
    }));
    let kind = e.failure().map_or(AlertKind::Reload, |f| f.kind());
    let reload_task_id = e
        .resource_type
        .as_deref()
        .or(reload.and_then(|r| r.resource_type.as_deref()))
        .filter(|t| matches!(*t, "reload-tasks" | "tasks"))
        .and(
            e.resource_id
                .clone()
                .or(reload.and_then(|r| r.resource_id.clone())),
        );
    AlertContext {
        alert_kind: kind.as_str(),
        automation: AutomationFields::of(input, &app_name, tenant_url.as_deref()),
        tenant_id: e.tenant_id.clone(),
        tenant_comment: input
            .tenant
            .map(|t| t.comment.clone())
            .filter(|c| !c.is_empty()),
        tenant_url,
        user_id: e.user_id.clone().or(reload.and_then(|r| r.user_id.clone())),
        user_name,
        app_id: e.app_id.clone(),
        app_name,
        app_description: app.and_then(|a| a.description.clone()).map(cap),
        app_url,
        app_has_section_access: app.and_then(|a| a.has_section_access),
        app_is_published: app.map(|_| publish_time.as_deref().is_some_and(|t| !t.is_empty())),
        app_publish_time: publish_time.filter(|t| !t.is_empty()),
        app_thumbnail: thumbnail,
        app_owner_name: owner.and_then(|o| o.name.clone()),
        app_owner_user_id: e.owner_id.clone().or(app.and_then(|a| a.owner_id.clone())),
        app_owner_picture: owner.and_then(|o| o.picture.clone()),
        app_owner_email: owner.and_then(|o| o.email.clone()),
        app_tags: item.map(|i| i.tags.clone()).unwrap_or_default(),
        space_id: e.space_id.clone().or(app.and_then(|a| a.space_id.clone())),
        space_name: space.and_then(|s| s.name.clone()),
        space_type: space.and_then(|s| s.kind.clone()),
        reload_trigger: e.trigger.clone().or(reload.and_then(|r| r.trigger.clone())),
        source: e.source.clone(),
        event_type: e.event_type.clone(),
        event_type_version: e.event_type_version.clone(),
        event_id: e.event_id.clone(),
        event_time: e.event_time.map(utc_text),
        failure: e.failure().map(|f| f.as_str()),
        ended_with_memory_constraint: e.ended_with_memory_constraint,
        is_direct_query_mode: e
            .is_direct_query_mode
            .or(app.and_then(|a| a.is_direct_query_mode)),
        is_partial_reload: e.is_partial_reload.or(reload.and_then(|r| r.partial)),
        is_session_app: e.is_session_app,
        is_skip_store: e.is_skip_store,
        reload_id: e.reload_id.clone(),
        reload_task_id,
        reload_resource_type: e
            .resource_type
            .clone()
            .or(reload.and_then(|r| r.resource_type.clone())),
        reload_resource_id: e
            .resource_id
            .clone()
            .or(reload.and_then(|r| r.resource_id.clone())),
        reload_weight: e.weight.or(reload.and_then(|r| r.weight)),
        row_limit: e.row_limit,
        statements: Vec::new(),
        status: e.status_text.clone(),
        usage_duration: duration_ms,
        peak_memory_bytes: e.peak_memory_bytes.map(grouped),
        size_memory_bytes: e
            .size_memory_bytes
            .or(item.and_then(|i| i.app_memory_size))
            .map(grouped),
        app_file_size: item.and_then(|i| i.app_file_size).map(grouped),
        error_code: e
            .error_code
            .clone()
            .or(reload.and_then(|r| r.error_code.clone())),
        error_message: e
            .error_message
            .clone()
            .or(reload.and_then(|r| r.error_message.clone()))
            .map(cap),
        engine_errors: e.errors.iter().map(|i| cap(engine_error_text(i))).collect(),
        engine_warnings: e
            .warnings
            .iter()
            .map(|i| cap(engine_error_text(i)))
            .collect(),
        log_message: reload
            .and_then(|r| r.log.as_deref())
            .map(|l| cap(l.replace("\r\n", "\n"))),
        execution_duration: DurationParts::of(duration_ms),
        execution_start_time: StartTimes(Times::of(start, input.timezone)),
        execution_stop_time: StopTimes(Times::of(end, input.timezone)),
        execution_status_text: reload
            .and_then(|r| r.status.clone())
            .unwrap_or_else(|| final_status(e.status).to_owned()),
        qlik_sense_qmc: qmc,
        qlik_sense_hub: hub,
        generic_urls: input
            .links
            .iter()
            .map(|l| GenericUrl {
                id: l.id.clone(),
                link_text: l.text.clone(),
                url: l.url.clone(),
            })
            .collect(),
        buttons,
        destination_name: destination.to_owned(),
        script_log: ScriptLogFields::of(input.enrichment.script_log.as_deref(), lines)
            .lookup_failed(
                input
                    .enrichment
                    .failures
                    .iter()
                    .any(|f| f.lookup == Lookup::ScriptLog.as_str()),
            ),
    }
}

/// Never empty (design §9.1): the API's name, else this event's, else the last name an event
/// carried for the app, else `app <appId>` (`automation <id>`).
pub fn app_name(input: &AlertInput) -> String {
    let (e, x) = (input.event, input.enrichment);
    let api = match e.kind {
        EventKind::AutomationRun => x.automation.as_ref().and_then(|a| a.name.clone()),
        EventKind::EngineAttempt | EventKind::FinalOutcome => {
            x.app.as_ref().and_then(|a| a.name.clone())
        }
    };
    let word = match e.kind {
        EventKind::AutomationRun => "automation",
        EventKind::EngineAttempt | EventKind::FinalOutcome => "app",
    };
    api.or(e.app_name.clone())
        .or(input.remembered_name.map(str::to_owned))
        .filter(|name| !name.trim().is_empty())
        .map(cap)
        .unwrap_or_else(|| format!("{word} {}", e.app_id))
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

/// Cuts a text at [`MAX_FIELD_CHARS`] with a visible marker.
pub fn cap(text: String) -> String {
    // No more bytes than the limit in characters: nothing to cut, nothing to count.
    if text.len() <= MAX_FIELD_CHARS {
        return text;
    }
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

fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_contexts_are_each_destinations_own() {
        let (event, enrichment) = (
            crate::render::sample::event(),
            crate::render::sample::enrichment(),
        );
        let utc = Zone::named("UTC");
        let input = AlertInput {
            event: &event,
            enrichment: &enrichment,
            tenant: None,
            links: &[],
            timezone: utc.as_ref(),
            remembered_name: None,
        };
        let mut contexts = Contexts::new(&input);
        let (short, long) = (
            ScriptLogLines { head: 0, tail: 2 },
            ScriptLogLines { head: 5, tail: 25 },
        );
        for (name, lines) in [("ops", short), ("dev\u{202E}", long), ("owners", short)] {
            assert_eq!(
                *contexts.for_destination(name, lines),
                build(&input, name, lines),
                "{name}"
            );
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(41_943_040), "41,943,040");
    }

    #[test]
    fn script_log_head_and_tail_by_line_count() {
        let m = serde_json::to_value(ScriptLogFields::of(
            Some("a\r\nb\r\nc\r\nd\r\n"),
            ScriptLogLines { head: 1, tail: 2 },
        ))
        .expect("json");
        assert_eq!(m["scriptLogHead"], "a");
        assert_eq!(m["scriptLogTail"], "c\nd");
        assert_eq!(m["scriptLogSizeRows"], "4");
        assert_eq!(m["scriptLogTailCount"], 2);
        let m = serde_json::to_value(ScriptLogFields::of(
            Some("only"),
            ScriptLogLines { head: 15, tail: 25 },
        ))
        .expect("json");
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
