//! The `silences:` list: planned quiet periods. An alert that matches a silence in force is
//! recorded as silenced and not sent.

use chrono::{DateTime, NaiveTime, Utc, Weekday};

use super::reader::{FromYaml, Node, Section};

/// Which alerts a silence covers: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Matcher {
    pub tenant: Option<String>,
    pub space: Option<String>,
    pub app: Option<String>,
    pub app_tag: Option<String>,
    pub error_code: Option<String>,
}

impl Matcher {
    /// The criteria of routing's matching language (`crate::matcher`) that this silence sets.
    pub fn criteria(&self) -> crate::matcher::Criteria<'_> {
        crate::matcher::Criteria {
            tenant: self.tenant.as_slice(),
            space: self.space.as_slice(),
            app: self.app.as_slice(),
            app_tag: self.app_tag.as_slice(),
            error_code: self.error_code.as_slice(),
            ..Default::default()
        }
    }
}

/// When a silence is in force: between `start` and `end` (either open), and, if `weekly` is
/// set, only inside that weekly window (in the configured `timezone`).
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceConfig {
    pub comment: String,
    pub matcher: Matcher,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub weekly: Option<WeeklyWindow>,
    /// When the silence ends, the alerts it silenced are routed again.
    pub resend_after_silence: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyWindow {
    pub days: Vec<Weekday>,
    pub from: NaiveTime,
    /// `to <= from` spans midnight: `22:00`–`06:00` on a Saturday ends Sunday 06:00.
    pub to: NaiveTime,
}

struct Day(Weekday);
impl FromYaml for Day {
    fn from_yaml(value: &serde_yaml_ng::Value) -> Result<Self, String> {
        let text = String::from_yaml(value)?;
        text.trim()
            .parse::<Weekday>()
            .map(Day)
            .map_err(|_| format!("expected a day such as `mon` or `saturday`, found `{text}`"))
    }
}

struct Time(NaiveTime);
impl FromYaml for Time {
    fn from_yaml(value: &serde_yaml_ng::Value) -> Result<Self, String> {
        let text = String::from_yaml(value)?;
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map(Time)
            .map_err(|_| format!("expected a time of day such as `22:00`, found `{text}`"))
    }
}

struct Instant(DateTime<Utc>);
impl FromYaml for Instant {
    fn from_yaml(value: &serde_yaml_ng::Value) -> Result<Self, String> {
        let text = String::from_yaml(value)?;
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Instant(t.with_timezone(&Utc)))
            .map_err(|_| {
                format!("expected a time such as `2026-12-24T18:00:00+01:00`, found `{text}`")
            })
    }
}

pub(super) fn read_silences(root: &Section) -> Vec<SilenceConfig> {
    root.list("silences")
        .iter()
        .filter_map(read_silence)
        .collect()
}

fn read_silence(node: &Node) -> Option<SilenceConfig> {
    let s = node.section();
    let matcher = Matcher {
        tenant: s.opt("tenant"),
        space: s.opt("space"),
        app: s.opt("app"),
        app_tag: s.opt("app_tag"),
        error_code: s.opt("error_code"),
    };
    let weekly_node = s.node("weekly");
    let weekly = weekly_node.is_present().then(|| {
        let w = weekly_node.section();
        let days: Vec<Day> = w.req("days").unwrap_or_default();
        let window = WeeklyWindow {
            days: days.into_iter().map(|d| d.0).collect(),
            from: w.req::<Time>("from").map_or(NaiveTime::MIN, |t| t.0),
            to: w.req::<Time>("to").map_or(NaiveTime::MIN, |t| t.0),
        };
        if window.days.is_empty() {
            w.problem("days", "must name at least one day");
        }
        window
    });
    let silence = SilenceConfig {
        comment: s.or("comment", String::new()),
        matcher,
        start: s.opt::<Instant>("start").map(|i| i.0),
        end: s.opt::<Instant>("end").map(|i| i.0),
        weekly,
        resend_after_silence: s.or("resend_after_silence", false),
    };
    if silence.matcher == Matcher::default() {
        s.problem("", "needs at least one of tenant, space, app, app_tag, error_code (a silence of everything is `enabled: false` on the destinations)");
    }
    if let (Some(start), Some(end)) = (silence.start, silence.end) {
        if end <= start {
            s.problem("end", "must be after start");
        }
    }
    Some(silence)
}
