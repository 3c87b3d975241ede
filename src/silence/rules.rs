//! Silences, pure: whether one is in force now, and whether it covers an alert.

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::config::{Matcher, SilenceConfig, WeeklyWindow};
use crate::matcher::{Facts, Judgement};
use crate::zone::Zone;

/// Whether the silence's matcher covers the alert: on known facts only (an unknown tag, name or
/// error code never silences). The language is routing's (`crate::matcher`).
pub fn matches(m: &Matcher, f: &Facts) -> bool {
    m.criteria().judge(f) == Judgement::Holds
}

/// Whether `s` is in force at `now`; weekly windows are read in `tz` (the system zone if none).
pub fn in_force(s: &SilenceConfig, now: DateTime<Utc>, tz: Option<&Zone>) -> bool {
    if s.start.is_some_and(|start| now < start) || s.end.is_some_and(|end| now >= end) {
        return false;
    }
    match &s.weekly {
        None => true,
        Some(w) => match tz {
            Some(tz) => in_window(w, &tz.local(now).time),
            None => in_window(w, &now.with_timezone(&chrono::Local)),
        },
    }
}

fn in_window<Z: TimeZone>(w: &WeeklyWindow, local: &DateTime<Z>) -> bool {
    let (day, time) = (local.weekday(), local.time());
    if w.from < w.to {
        w.days.contains(&day) && time >= w.from && time < w.to
    } else {
        // Spans midnight: the evening of a listed day, or the morning after it.
        (w.days.contains(&day) && time >= w.from) || (w.days.contains(&day.pred()) && time < w.to)
    }
}

/// Names a silence that resends what it silenced, in the outbox rows it silenced:
/// `config:<index in silences:>` or `stored:<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceKey {
    Config(usize),
    Stored(i64),
}

impl std::fmt::Display for SilenceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SilenceKey::Config(i) => write!(f, "config:{i}"),
            SilenceKey::Stored(id) => write!(f, "stored:{id}"),
        }
    }
}

impl SilenceKey {
    pub fn parse(text: &str) -> Option<SilenceKey> {
        match text.split_once(':')? {
            ("config", i) => i.parse().ok().map(SilenceKey::Config),
            ("stored", id) => id.parse().ok().map(SilenceKey::Stored),
            _ => None,
        }
    }

    /// Whether the silence is still in force at `now`. One that no longer exists (removed, or
    /// the config changed) has ended.
    pub fn in_force(
        self,
        config: &[SilenceConfig],
        stored: &[crate::store::StoredSilence],
        now: DateTime<Utc>,
        tz: Option<&Zone>,
    ) -> bool {
        match self {
            SilenceKey::Config(i) => config
                .get(i)
                .is_some_and(|s| s.resend_after_silence && in_force(s, now, tz)),
            SilenceKey::Stored(id) => {
                let now_ms = now.timestamp_millis();
                stored
                    .iter()
                    .any(|s| s.id == id && s.starts_at <= now_ms && now_ms < s.ends_at)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Weekday};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    fn silence(weekly: Option<WeeklyWindow>) -> SilenceConfig {
        SilenceConfig {
            comment: String::new(),
            matcher: Matcher::default(),
            start: None,
            end: None,
            weekly,
            resend_after_silence: false,
        }
    }

    #[test]
    fn matchers_need_every_field() {
        let tags = vec!["Finance".to_owned()];
        let f = Facts {
            tenant: "t",
            space: Some(crate::matcher::Space {
                id: Some("s"),
                name: None,
            }),
            app_id: "a",
            app_name: None,
            tags: Some(&tags),
            owner_id: None,
            owner_email: None,
            error_code: Some("EngineReloadScriptError"),
            kind: crate::domain::AlertKind::Reload,
        };
        let m = |app: Option<&str>, tag: Option<&str>| Matcher {
            app: app.map(Into::into),
            app_tag: tag.map(Into::into),
            ..Matcher::default()
        };
        assert!(matches(&m(Some("a"), None), &f));
        assert!(matches(&m(Some("a"), Some("finance")), &f));
        assert!(!matches(&m(Some("b"), None), &f));
        assert!(!matches(&m(Some("a"), Some("sales")), &f));
        let unknown = Facts { tags: None, ..f };
        assert!(
            !matches(&m(None, Some("finance")), &unknown),
            "unknown tags never silence"
        );
    }

    #[test]
    fn start_end_and_weekly_windows_in_the_time_zone() {
        let mut s = silence(None);
        s.start = Some(at("2026-12-01T00:00:00Z"));
        s.end = Some(at("2026-12-02T00:00:00Z"));
        assert!(in_force(&s, at("2026-12-01T12:00:00Z"), None));
        assert!(!in_force(&s, at("2026-12-02T00:00:00Z"), None));
        let weekend_nights = WeeklyWindow {
            days: vec![Weekday::Sat],
            from: NaiveTime::from_hms_opt(22, 0, 0).expect("time"),
            to: NaiveTime::from_hms_opt(6, 0, 0).expect("time"),
        };
        let s = silence(Some(weekend_nights));
        let tz = Zone::named("Europe/Stockholm");
        // 2026-12-05 is a Saturday; Stockholm is UTC+1 in December.
        assert!(
            in_force(&s, at("2026-12-05T21:30:00Z"), tz.as_ref()),
            "22:30 Saturday local"
        );
        assert!(
            in_force(&s, at("2026-12-06T04:30:00Z"), tz.as_ref()),
            "05:30 Sunday local"
        );
        assert!(
            !in_force(&s, at("2026-12-06T05:30:00Z"), tz.as_ref()),
            "06:30 Sunday local"
        );
        assert!(
            !in_force(&s, at("2026-12-05T20:30:00Z"), tz.as_ref()),
            "21:30 Saturday local"
        );
    }
}
