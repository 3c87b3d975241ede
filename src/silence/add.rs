//! Ad-hoc silences, kept in the state store: the request that `silence add` and
//! `POST /silences` both build, its one validation, and its creation. The running daemon reads
//! the stored silences for each alert, so a new one applies at once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Matcher;
use crate::store::{SharedStore, SilenceRow, StoreError, StoredSilence};

/// The longest silence: past this an end time is a typo, not a plan (a permanent silence is a
/// `silences:` entry in the config, or `enabled: false` on a destination).
pub const MAX_LENGTH: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Silences in force at once: more is a script gone wrong, and each alert is checked against
/// every one.
pub const MAX_ACTIVE: u64 = 1_000;
/// The longest comment, in characters: a sentence or two and a ticket link.
pub const MAX_COMMENT: usize = 1_000;
/// The longest filter value, in characters (Qlik ids are 36, names up to a few hundred).
pub const MAX_FILTER: usize = 512;

/// A silence to add: the filters (every one given must match), when it ends, and why. The JSON
/// body of `POST /silences` has exactly these fields.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub app: Option<String>,
    pub tenant: Option<String>,
    pub space: Option<String>,
    pub tag: Option<String>,
    pub error_code: Option<String>,
    /// How long from now, e.g. `2h` or `1d` (humantime).
    #[serde(rename = "for")]
    pub duration: Option<String>,
    /// Until when (RFC 3339), instead of `for`.
    pub until: Option<String>,
    #[serde(default)]
    pub comment: String,
    /// When the silence ends, route again the alerts it silenced.
    #[serde(default)]
    pub resend: bool,
}

/// Why a [`NewSilence`] was refused. The text is shown as is by the CLI and the admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("give at least one filter: app, tenant, space, tag or error_code")]
    NoFilter,
    #[error("`{0}` must not be empty")]
    EmptyFilter(&'static str),
    #[error("give how long (`for`, e.g. 2h) or until when (`until`, RFC 3339)")]
    NoEnd,
    #[error("give either `for` or `until`, not both")]
    BothEnds,
    #[error("`for`: expected a duration such as `2h` or `1d`: {0}")]
    Duration(String),
    #[error("`until`: expected an RFC 3339 time such as `2026-12-24T18:00:00+01:00`")]
    Until,
    #[error("the silence must end in the future")]
    EndsInPast,
    #[error("a silence may last at most 100 years")]
    TooLong,
    #[error("`{0}` is longer than {1} characters")]
    TooLongText(&'static str, usize),
    #[error("`{0}` must not contain control characters (line breaks, escapes)")]
    ControlCharacter(&'static str),
}

/// Why a silence was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{MAX_ACTIVE} silences are in force already; end some first (`silence list`, `silence end ID`)")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A validated silence, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSilence {
    pub matcher: Matcher,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub resend: bool,
}

impl NewSilence {
    /// Checks the request against `now`. Pure.
    pub fn validate(self, now: DateTime<Utc>) -> Result<ValidSilence, Invalid> {
        for (name, value) in [
            ("app", &self.app),
            ("tenant", &self.tenant),
            ("space", &self.space),
            ("tag", &self.tag),
            ("error_code", &self.error_code),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Invalid::EmptyFilter(name));
            }
            check_text(name, value.as_deref().unwrap_or_default(), MAX_FILTER)?;
        }
        check_text("comment", &self.comment, MAX_COMMENT)?;
        let matcher = Matcher {
            tenant: self.tenant,
            space: self.space,
            app: self.app,
            app_tag: self.tag,
            error_code: self.error_code,
        };
        if matcher == Matcher::default() {
            return Err(Invalid::NoFilter);
        }
        let ends_at = match (self.duration, self.until) {
            (None, None) => return Err(Invalid::NoEnd),
            (Some(_), Some(_)) => return Err(Invalid::BothEnds),
            (Some(text), None) => {
                let length = humantime::parse_duration(text.trim())
                    .map_err(|e| Invalid::Duration(e.to_string()))?;
                if length > MAX_LENGTH {
                    return Err(Invalid::TooLong);
                }
                chrono::Duration::from_std(length)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .ok_or(Invalid::TooLong)?
            }
            (None, Some(text)) => DateTime::parse_from_rfc3339(text.trim())
                .map_err(|_| Invalid::Until)?
                .with_timezone(&Utc),
        };
        if ends_at <= now {
            return Err(Invalid::EndsInPast);
        }
        if (ends_at - now).to_std().map_or(true, |d| d > MAX_LENGTH) {
            return Err(Invalid::TooLong);
        }
        Ok(ValidSilence {
            matcher,
            starts_at: now,
            ends_at,
            comment: self.comment,
            resend: self.resend,
        })
    }
}

/// Validates `request` and stores it: the one way a silence is added.
pub async fn add(
    store: &SharedStore,
    request: NewSilence,
    now: DateTime<Utc>,
) -> Result<StoredSilence, AddError> {
    let valid = request.validate(now)?;
    let row = SilenceRow {
        matcher: valid.matcher,
        starts_at: valid.starts_at.timestamp_millis(),
        ends_at: valid.ends_at.timestamp_millis(),
        comment: valid.comment,
        resend: valid.resend,
    };
    let Some(id) = store.add_silence(row.clone(), MAX_ACTIVE).await? else {
        return Err(AddError::TooMany);
    };
    Ok(StoredSilence {
        id,
        matcher: row.matcher,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        comment: row.comment,
        resend: row.resend,
    })
}

/// A filter or comment: bounded, and without control characters, which would forge lines in
/// the text log and in `silence list`.
fn check_text(name: &'static str, text: &str, max: usize) -> Result<(), Invalid> {
    if text.chars().count() > max {
        return Err(Invalid::TooLongText(name, max));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid::ControlCharacter(name));
    }
    Ok(())
}

/// `tenant=… app=…`: the filters a matcher sets, for lists and logs.
pub fn describe(m: &Matcher) -> String {
    [
        ("tenant", &m.tenant),
        ("space", &m.space),
        ("app", &m.app),
        ("tag", &m.app_tag),
        ("error_code", &m.error_code),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn app_for(duration: &str) -> NewSilence {
        NewSilence {
            app: Some("a1".into()),
            duration: Some(duration.into()),
            ..NewSilence::default()
        }
    }

    #[test]
    fn a_duration_ends_that_long_from_now() {
        let valid = app_for("2h").validate(now()).unwrap();
        assert_eq!(valid.ends_at - valid.starts_at, chrono::Duration::hours(2));
        assert_eq!(valid.matcher.app.as_deref(), Some("a1"));
    }

    #[test]
    fn until_is_read_in_its_offset() {
        let request = NewSilence {
            tag: Some("finance".into()),
            until: Some("2026-03-01T14:00:00+01:00".into()),
            ..NewSilence::default()
        };
        let valid = request.validate(now()).unwrap();
        assert_eq!(valid.ends_at - now(), chrono::Duration::hours(1));
        assert_eq!(valid.matcher.app_tag.as_deref(), Some("finance"));
    }

    #[test]
    fn refusals() {
        let cases = [
            (
                NewSilence {
                    duration: Some("2h".into()),
                    ..NewSilence::default()
                },
                Invalid::NoFilter,
            ),
            (
                NewSilence {
                    app: Some(" ".into()),
                    duration: Some("2h".into()),
                    ..NewSilence::default()
                },
                Invalid::EmptyFilter("app"),
            ),
            (
                NewSilence {
                    app: Some("a1".into()),
                    ..NewSilence::default()
                },
                Invalid::NoEnd,
            ),
            (
                NewSilence {
                    until: Some("2099-01-01T00:00:00Z".into()),
                    ..app_for("2h")
                },
                Invalid::BothEnds,
            ),
            (
                NewSilence {
                    app: Some("a1".into()),
                    until: Some("tomorrow".into()),
                    ..NewSilence::default()
                },
                Invalid::Until,
            ),
            (
                NewSilence {
                    app: Some("a1".into()),
                    until: Some("2020-01-01T00:00:00Z".into()),
                    ..NewSilence::default()
                },
                Invalid::EndsInPast,
            ),
            (app_for("0s"), Invalid::EndsInPast),
            (app_for("101y"), Invalid::TooLong),
            (
                NewSilence {
                    app: Some("a1".into()),
                    until: Some("9999-12-31T23:59:59Z".into()),
                    ..NewSilence::default()
                },
                Invalid::TooLong,
            ),
        ];
        for (request, want) in cases {
            assert_eq!(request.clone().validate(now()), Err(want), "{request:?}");
        }
        for bad in ["-2h", "2 parsecs", "", "99999999999999999999999y"] {
            assert!(
                matches!(app_for(bad).validate(now()), Err(Invalid::Duration(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn texts_are_bounded_and_single_line() {
        let long = NewSilence {
            comment: "x".repeat(MAX_COMMENT + 1),
            ..app_for("2h")
        };
        assert_eq!(
            long.validate(now()),
            Err(Invalid::TooLongText("comment", MAX_COMMENT))
        );
        let fits = NewSilence {
            comment: "é".repeat(MAX_COMMENT),
            ..app_for("2h")
        };
        assert!(
            fits.validate(now()).is_ok(),
            "characters are counted, not bytes"
        );
        for comment in ["line\r\nforged=1", "\u{1b}[31mred", "nul\0"] {
            let request = NewSilence {
                comment: comment.into(),
                ..app_for("2h")
            };
            assert_eq!(
                request.validate(now()),
                Err(Invalid::ControlCharacter("comment")),
                "{comment:?}"
            );
        }
        let app = NewSilence {
            app: Some("a".repeat(MAX_FILTER + 1)),
            ..app_for("2h")
        };
        assert_eq!(
            app.validate(now()),
            Err(Invalid::TooLongText("app", MAX_FILTER))
        );
    }

    #[tokio::test]
    async fn at_most_max_active_silences_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::store::Store::open(&dir.path().join("s.db"), Duration::from_secs(60)).unwrap();
        let store = SharedStore::new(store).unwrap();
        for _ in 0..MAX_ACTIVE {
            add(&store, app_for("2h"), Utc::now()).await.unwrap();
        }
        assert!(matches!(
            add(&store, app_for("2h"), Utc::now()).await,
            Err(AddError::TooMany)
        ));
        let first = store.silences(false).await.unwrap()[0].id;
        assert!(store.remove_silence(first).await.unwrap());
        add(&store, app_for("2h"), Utc::now()).await.unwrap();
    }
}
