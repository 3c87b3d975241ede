//! The one matching language of routing (`match:` / `skip:` on a destination) and silences:
//! which alerts a set of criteria covers, pure.
//!
//! Every criterion set must hold; a criterion holds when any of its values does. Some facts need
//! enrichment (names, tags, the owner's email) and may be unknown, so a judgement has three
//! outcomes: [`Judgement::Holds`], [`Judgement::Fails`] (a known fact excludes the alert) and
//! [`Judgement::Unknown`]. Callers choose the safe side: a destination's `match` drops an alert only
//! on `Fails`; its `skip` and a silence act only on `Holds`. An unknown fact therefore never
//! keeps an alert from anyone.

use crate::domain::AlertKind;

/// What is known of one alert. `None` means unknown (not "has none"), except where a field says.
/// `error_code: Some("")` is known to have none (an automation run, a reload the API answered
/// without one).
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub tenant: &'a str,
    /// `None`: unknown. `Some(Space { id: None, .. })`: a personal space (known to have none).
    pub space: Option<Space<'a>>,
    pub app_id: &'a str,
    pub app_name: Option<&'a str>,
    pub tags: Option<&'a [String]>,
    pub owner_id: Option<&'a str>,
    pub owner_email: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub kind: AlertKind,
}

/// The space an app lives in.
#[derive(Debug, Clone, Copy)]
pub struct Space<'a> {
    /// `None`: a personal space.
    pub id: Option<&'a str>,
    /// `None`: the name is unknown (the space look-up failed or was not made).
    pub name: Option<&'a str>,
}

/// The outcome of judging criteria against an alert's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Every criterion holds on known facts.
    Holds,
    /// A known fact fails the criterion named here.
    Fails(&'static str),
    /// Nothing failed, but some criterion depends on a fact that is unknown.
    Unknown,
}

/// Criteria by key; an empty list is not set. Borrowed, so that routes (lists) and silences
/// (single values) are judged by the same code without copying.
#[derive(Debug, Clone, Copy, Default)]
pub struct Criteria<'a> {
    pub tenant: &'a [String],
    /// A space id or name.
    pub space: &'a [String],
    /// An app id or name.
    pub app: &'a [String],
    pub app_tag: &'a [String],
    /// A user id or email address.
    pub owner: &'a [String],
    pub error_code: &'a [String],
    pub kind: &'a [AlertKind],
}

/// One value against the facts: yes, no, or cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum One {
    Yes,
    No,
    Unknown,
}

impl One {
    fn from_known(known: Option<bool>) -> One {
        match known {
            Some(true) => One::Yes,
            Some(false) => One::No,
            None => One::Unknown,
        }
    }
}

impl Criteria<'_> {
    /// Whether nothing is set (covers every alert).
    pub fn is_empty(&self) -> bool {
        self.tenant.is_empty()
            && self.space.is_empty()
            && self.app.is_empty()
            && self.app_tag.is_empty()
            && self.owner.is_empty()
            && self.error_code.is_empty()
            && self.kind.is_empty()
    }

    /// Ids and kinds compare exactly; names, tags, email addresses and error codes ignore case.
    pub fn judge(&self, f: &Facts) -> Judgement {
        let checks: [(&'static str, One); 7] = [
            (
                "tenant",
                any(self.tenant, |v| One::from_known(Some(v == f.tenant))),
            ),
            ("space", any(self.space, |v| space(v, f.space))),
            (
                "app",
                any(self.app, |v| id_or_name(v, Some(f.app_id), f.app_name)),
            ),
            ("app_tag", any(self.app_tag, |v| tag(v, f.tags))),
            (
                "owner",
                any(self.owner, |v| id_or_name(v, f.owner_id, f.owner_email)),
            ),
            (
                "error_code",
                any(self.error_code, |v| {
                    One::from_known(f.error_code.map(|c| c.eq_ignore_ascii_case(v)))
                }),
            ),
            (
                "kind",
                if self.kind.is_empty() || self.kind.contains(&f.kind) {
                    One::Yes
                } else {
                    One::No
                },
            ),
        ];
        if let Some((key, _)) = checks.iter().find(|(_, one)| *one == One::No) {
            return Judgement::Fails(key);
        }
        if checks.iter().any(|(_, one)| *one == One::Unknown) {
            Judgement::Unknown
        } else {
            Judgement::Holds
        }
    }
}

/// Any of `values` (none set: holds).
fn any(values: &[String], one: impl Fn(&str) -> One) -> One {
    if values.is_empty() {
        return One::Yes;
    }
    let mut unknown = false;
    for value in values {
        match one(value.trim()) {
            One::Yes => return One::Yes,
            One::Unknown => unknown = true,
            One::No => {}
        }
    }
    if unknown {
        One::Unknown
    } else {
        One::No
    }
}

/// An id (exact) or a name (ignoring case). A value that is neither is excluded only when both
/// are known: with one of them unknown, the value may still be the other.
fn id_or_name(value: &str, id: Option<&str>, name: Option<&str>) -> One {
    if id == Some(value) || name.is_some_and(|n| n.trim().eq_ignore_ascii_case(value)) {
        return One::Yes;
    }
    if id.is_some() && name.is_some() {
        One::No
    } else {
        One::Unknown
    }
}

fn space(value: &str, space: Option<Space>) -> One {
    match space {
        None => One::Unknown,
        // A personal space has neither id nor name: no value names it.
        Some(Space { id: None, .. }) => One::No,
        Some(Space { id, name }) => id_or_name(value, id, name),
    }
}

fn tag(value: &str, tags: Option<&[String]>) -> One {
    One::from_known(tags.map(|tags| tags.iter().any(|t| t.trim().eq_ignore_ascii_case(value))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn known<'a>(tags: &'a [String]) -> Facts<'a> {
        Facts {
            tenant: "t1",
            space: Some(Space {
                id: Some("s1"),
                name: Some("Finance"),
            }),
            app_id: "a1",
            app_name: Some("Sales KPIs"),
            tags: Some(tags),
            owner_id: Some("u1"),
            owner_email: Some("Jane@Acme.com"),
            error_code: Some("EDC_ERROR"),
            kind: AlertKind::Reload,
        }
    }

    /// The same alert with every enrichment fact unknown (the API was down).
    fn unenriched(f: Facts) -> Facts {
        Facts {
            space: None,
            app_name: None,
            tags: None,
            owner_email: None,
            error_code: None,
            ..f
        }
    }

    #[test]
    fn every_key_matches_by_id_or_name_ignoring_case_for_names() {
        let tags = list(&["Prod", "finance"]);
        let f = known(&tags);
        let (t, s, a, tg, o, e) = (
            list(&["t0", "t1"]),
            list(&["finance"]),
            list(&["sales kpis"]),
            list(&["FINANCE"]),
            list(&["jane@acme.com"]),
            list(&["edc_error"]),
        );
        let c = Criteria {
            tenant: &t,
            space: &s,
            app: &a,
            app_tag: &tg,
            owner: &o,
            error_code: &e,
            kind: &[AlertKind::Reload],
        };
        assert_eq!(c.judge(&f), Judgement::Holds);
        let by_id = (list(&["s1"]), list(&["a1"]), list(&["u1"]));
        let c = Criteria {
            space: &by_id.0,
            app: &by_id.1,
            owner: &by_id.2,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Holds);
        assert_eq!(Criteria::default().judge(&f), Judgement::Holds);
        assert!(Criteria::default().is_empty());
    }

    #[test]
    fn a_known_fact_fails_and_names_its_key() {
        let tags = list(&["Prod"]);
        let f = known(&tags);
        let other = list(&["t2"]);
        let c = Criteria {
            tenant: &other,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Fails("tenant"));
        let c = Criteria {
            kind: &[AlertKind::Automation],
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Fails("kind"));
        let hr = list(&["HR"]);
        let c = Criteria {
            space: &hr,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Fails("space"));
        // One failing criterion beats another's unknown.
        let code = list(&["X"]);
        let c = Criteria {
            tenant: &other,
            error_code: &code,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&unenriched(f)), Judgement::Fails("tenant"));
    }

    #[test]
    fn unknown_facts_are_unknown_never_a_failure() {
        let tags = list(&["Prod"]);
        let f = unenriched(known(&tags));
        for (space, app, tag, owner, code) in [
            (list(&["Finance"]), vec![], vec![], vec![], vec![]),
            (vec![], list(&["Sales KPIs"]), vec![], vec![], vec![]),
            (vec![], vec![], list(&["Prod"]), vec![], vec![]),
            (vec![], vec![], vec![], list(&["jane@acme.com"]), vec![]),
            (vec![], vec![], vec![], vec![], list(&["EDC_ERROR"])),
        ] {
            let c = Criteria {
                space: &space,
                app: &app,
                app_tag: &tag,
                owner: &owner,
                error_code: &code,
                ..Criteria::default()
            };
            assert_eq!(c.judge(&f), Judgement::Unknown, "{c:?}");
        }
        // Known by id even without enrichment.
        let (app, owner) = (list(&["a1"]), list(&["u1"]));
        let c = Criteria {
            app: &app,
            owner: &owner,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Holds);
    }

    #[test]
    fn a_known_name_with_an_unknown_id_cannot_exclude_an_id() {
        let tags = list(&[]);
        let f = Facts {
            owner_id: None,
            ..known(&tags)
        };
        let owner = list(&["u1"]);
        let c = Criteria {
            owner: &owner,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Unknown);
        let f = Facts {
            error_code: Some(""),
            ..known(&tags)
        };
        let code = list(&["EDC_ERROR"]);
        let c = Criteria {
            error_code: &code,
            ..Criteria::default()
        };
        assert_eq!(
            c.judge(&f),
            Judgement::Fails("error_code"),
            "known to have none"
        );
    }

    #[test]
    fn a_personal_space_matches_no_space_value() {
        let tags = list(&[]);
        let f = Facts {
            space: Some(Space {
                id: None,
                name: None,
            }),
            ..known(&tags)
        };
        let finance = list(&["Finance"]);
        let c = Criteria {
            space: &finance,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Fails("space"));
        // The space id known, its name not: a name may still be this space.
        let f = Facts {
            space: Some(Space {
                id: Some("s1"),
                name: None,
            }),
            ..f
        };
        assert_eq!(c.judge(&f), Judgement::Unknown);
    }

    #[test]
    fn any_value_of_a_list_may_hold() {
        let tags = list(&[]);
        let f = known(&tags);
        let codes = list(&["A", "edc_error"]);
        let c = Criteria {
            error_code: &codes,
            ..Criteria::default()
        };
        assert_eq!(c.judge(&f), Judgement::Holds);
        let no_tag = list(&["Prod"]);
        let c = Criteria {
            app_tag: &no_tag,
            ..Criteria::default()
        };
        assert_eq!(
            c.judge(&f),
            Judgement::Fails("app_tag"),
            "known to have no tags"
        );
    }
}
