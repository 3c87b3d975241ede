//! The five local formats of a moment (`startTimeLocal1` … `5`), written field by field.
//! chrono's `format` parses its pattern and writes the offset out again on every call: that
//! was ~20 k instructions for each time of each alert (docs/performance.md, ninth round).

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};

use crate::zone::Zone;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const SHORT_MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The five local formats: `2025-03-14 07:12:31`, `3/14/2025, 7:12:31 AM`,
/// `Mar 14, 2025, 7:12:31 AM`, `March 14, 2025 at 7:12:31 AM CET`, `2025-03-14T07:12:31+01:00`.
/// The system's zone has no abbreviation here: the fourth format ends in its offset (`+01:00`).
/// Each is what chrono's `format` writes for `%Y-%m-%d %H:%M:%S`, `%-m/%-d/%Y, %-I:%M:%S %p`,
/// `%b %-d, %Y, %-I:%M:%S %p` and `%B %-d, %Y at %-I:%M:%S %p` (a test holds them to it).
pub fn local_formats(t: DateTime<Utc>, tz: Option<&Zone>) -> [String; 5] {
    let (t, zone) = on_clock(t, tz);
    let (year, month, day) = (Year(t.year()), t.month(), t.day());
    let month0 = t.month0() as usize;
    let (long, short) = (
        MONTHS.get(month0).copied().unwrap_or_default(),
        SHORT_MONTHS.get(month0).copied().unwrap_or_default(),
    );
    // A leap second is chrono's 59th second with more than a second of nanoseconds: `%S` says 60.
    let second = t.second() + u32::from(t.nanosecond() >= 1_000_000_000);
    let (hour, minute) = (t.hour(), t.minute());
    let (pm, hour12) = t.hour12();
    let clock12 = format!(
        "{hour12}:{minute:02}:{second:02} {}",
        if pm { "PM" } else { "AM" }
    );
    [
        format!("{year}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"),
        format!("{month}/{day}/{year}, {clock12}"),
        format!("{short} {day}, {year}, {clock12}"),
        format!("{long} {day}, {year} at {clock12} {zone}"),
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    ]
}

/// `t` on the clock of `tz` (the system's zone without one), and what the fourth format ends
/// in: the zone's abbreviation, or the system zone's offset.
fn on_clock(t: DateTime<Utc>, tz: Option<&Zone>) -> (DateTime<FixedOffset>, String) {
    match tz {
        Some(tz) => {
            let local = tz.local(t);
            (local.time, local.abbreviation)
        }
        None => {
            let t = t.with_timezone(&chrono::Local).fixed_offset();
            (t, t.offset().to_string())
        }
    }
}

/// A year as chrono's `%Y` writes it: four digits, with a sign outside 0–9999.
struct Year(i32);

impl fmt::Display for Year {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (0..=9999).contains(&self.0) {
            true => write!(f, "{:04}", self.0),
            false => write!(f, "{:+05}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    /// What chrono's patterns write for `t` in `tz`: the formats' definition.
    fn by_chrono(t: DateTime<Utc>, tz: Option<&Zone>) -> [String; 5] {
        let (t, zone) = on_clock(t, tz);
        [
            t.format("%Y-%m-%d %H:%M:%S").to_string(),
            t.format("%-m/%-d/%Y, %-I:%M:%S %p").to_string(),
            t.format("%b %-d, %Y, %-I:%M:%S %p").to_string(),
            format!("{} {zone}", t.format("%B %-d, %Y at %-I:%M:%S %p")),
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        ]
    }

    #[test]
    fn five_local_formats() {
        let t = DateTime::parse_from_rfc3339("2025-03-14T06:12:31.904Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        let f = local_formats(t, Zone::named("Europe/Stockholm").as_ref());
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
    fn the_same_as_chronos_patterns_through_a_year_and_at_the_edges() {
        let zones = [
            "UTC",
            "Europe/Stockholm",
            "America/St_Johns",
            "Asia/Kolkata",
        ]
        .map(|name| Zone::named(name).expect("zone"));
        let mut moments: Vec<DateTime<Utc>> = (0..24 * 366)
            .map(|hour| {
                Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 7)
                    .single()
                    .expect("time")
                    + chrono::Duration::minutes(hour * 60 + hour % 60)
            })
            .collect();
        for (y, m, d) in [
            (1, 1, 1),
            (9999, 12, 31),
            (10_000, 1, 1),
            (-44, 3, 15),
            (0, 6, 1),
        ] {
            let day = NaiveDate::from_ymd_opt(y, m, d).expect("date");
            moments.push(day.and_hms_opt(12, 0, 0).expect("time").and_utc());
        }
        // A leap second (chrono's 23:59:59 with 1.5 s of nanoseconds).
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .expect("leap second");
        moments.push(leap.and_utc());
        for t in moments {
            assert_eq!(local_formats(t, None), by_chrono(t, None), "{t:?}");
            for zone in &zones {
                assert_eq!(
                    local_formats(t, Some(zone)),
                    by_chrono(t, Some(zone)),
                    "{t:?} in {zone:?}"
                );
            }
        }
    }
}
