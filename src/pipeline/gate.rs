//! Per-destination gating, pure: routing (tags, `match`, `skip`, `escalate_after`), email
//! recipients, rate-limit keys. The rate-limit
//! *window* lives in the store; this only names it.

use crate::config::{DestinationConfig, EmailConfig, Route};
use crate::matcher::{Criteria, Facts, Judgement};

/// Whether the destination lets this alert through: its tag shorthands (`only_apps_tagged`,
/// `skip_apps_tagged`), `match`, `skip` and `escalate_after`, all by the one matcher. `match`
/// and `only_apps_tagged` exclude only on a known fact; `skip` and `skip_apps_tagged` cover only
/// on known facts: an unknown fact (a failed look-up) never keeps an alert from a destination.
/// `streak` is the failure's place in its app's run of failures; 0 (not counted) escalates at
/// once.
pub fn allows(d: &DestinationConfig, facts: &Facts, streak: u64) -> Result<(), String> {
    let only = Criteria {
        app_tag: &d.only_apps_tagged,
        ..Criteria::default()
    };
    if let Judgement::Fails(_) = only.judge(facts) {
        return Err(format!(
            "app carries none of the tags {} (only_apps_tagged)",
            d.only_apps_tagged.join(", ")
        ));
    }
    let skip = Criteria {
        app_tag: &d.skip_apps_tagged,
        ..Criteria::default()
    };
    if covers(&skip, facts) {
        let tagged = |t: &&String| {
            facts
                .tags
                .is_some_and(|tags| tags.iter().any(|have| have.trim().eq_ignore_ascii_case(t)))
        };
        let tag = d
            .skip_apps_tagged
            .iter()
            .find(tagged)
            .map_or("", |t| t.as_str());
        return Err(format!("app is tagged `{tag}` (skip_apps_tagged)"));
    }
    route_allows(&d.route, facts, streak)
}

fn route_allows(route: &Route, facts: &Facts, streak: u64) -> Result<(), String> {
    if let Judgement::Fails(key) = route.matches.criteria().judge(facts) {
        return Err(format!("match.{key} does not cover this alert"));
    }
    if covers(&route.skip.criteria(), facts) {
        return Err("skip covers this alert".to_owned());
    }
    let after = u64::from(route.escalate_after);
    if streak != 0 && streak < after {
        return Err(format!(
            "failure {streak} in a row; escalate_after is {after}"
        ));
    }
    Ok(())
}

/// Whether set criteria hold on known facts (unset criteria cover nothing here).
fn covers(criteria: &Criteria, facts: &Facts) -> bool {
    !criteria.is_empty() && criteria.judge(facts) == Judgement::Holds
}

/// The addresses an email destination sends to: its list, plus the app owner when
/// `app_owner` says so; compared case-insensitively and without duplicates, in order.
pub fn email_recipients(email: &EmailConfig, owner_email: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |address: &str| {
        let address = address.trim();
        if !address.is_empty() && !out.iter().any(|a| a.eq_ignore_ascii_case(address)) {
            out.push(address.to_owned());
        }
    };
    email.recipients.iter().for_each(|a| add(a));
    let owner = &email.app_owner;
    if let Some(address) = owner_email.filter(|_| owner.enabled) {
        let listed = |list: &[String]| {
            list.iter()
                .any(|a| a.trim().eq_ignore_ascii_case(address.trim()))
        };
        if (owner.include_all || listed(&owner.include)) && !listed(&owner.exclude) {
            add(address);
        }
    }
    out
}

/// The rate-limit window of one (destination, app[, recipient]).
pub fn rate_key(destination: &str, app_id: &str, recipient: Option<&str>) -> String {
    match recipient {
        Some(r) => format!(
            "{destination}\u{1f}{app_id}\u{1f}{}",
            r.to_ascii_lowercase()
        ),
        None => format!("{destination}\u{1f}{app_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DestinationKind, Env};

    fn destinations(yaml: &str) -> Vec<DestinationConfig> {
        let text = format!(
            "poll: {{enabled: false}}\ntenants: [{{id: t, url: 'https://t.example.com', auth: {{api_key: k}}}}]\ndestinations:\n{yaml}"
        );
        match Config::from_yaml(&text, std::path::Path::new("t.yaml"), &Env::new()) {
            Ok(config) => config.destinations,
            Err(error) => panic!("{error}"),
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    fn facts(tags: Option<&[String]>) -> Facts<'_> {
        Facts {
            tenant: "t",
            space: None,
            app_id: "a",
            app_name: None,
            tags,
            owner_id: None,
            owner_email: None,
            error_code: None,
            kind: crate::domain::AlertKind::Reload,
        }
    }

    #[test]
    fn tag_gating() {
        let d = destinations(
            "  - {name: s, type: slack, webhook_url: 'https://h.example.com/x', only_apps_tagged: [Finance, ops], skip_apps_tagged: [no-alerts]}\n",
        );
        let d = &d[0];
        let allows = |t: Option<&[&str]>| {
            let t = t.map(tags);
            allows(d, &facts(t.as_deref()), 1)
        };
        assert!(allows(Some(&["finance"])).is_ok(), "case-insensitive");
        assert!(allows(Some(&["sales"])).is_err());
        assert!(allows(Some(&[])).is_err());
        let skipped = allows(Some(&["ops", "NO-ALERTS"])).unwrap_err();
        assert_eq!(skipped, "app is tagged `no-alerts` (skip_apps_tagged)");
        assert!(allows(None).is_ok(), "unknown tags never silence an alert");
    }

    #[test]
    fn escalation_waits_for_the_nth_failure_in_a_row() {
        let d = destinations(
            "  - {name: s, type: slack, webhook_url: 'https://h.example.com/x', escalate_after: 3}\n",
        );
        let f = facts(None);
        assert_eq!(
            allows(&d[0], &f, 2).unwrap_err(),
            "failure 2 in a row; escalate_after is 3"
        );
        assert!(allows(&d[0], &f, 3).is_ok());
        assert!(allows(&d[0], &f, 7).is_ok());
        assert!(
            allows(&d[0], &f, 0).is_ok(),
            "an uncounted failure is never held back"
        );
    }

    #[test]
    fn recipients_with_owner_rules() {
        let d = destinations(
            "  - {name: m, type: email, from: a@acme.com, smtp: {host: h.acme.com}, recipients: [Ops@acme.com, ops@ACME.com, bi@acme.com],\n     app_owner: {enabled: true, include_all: false, include: [jane@acme.com], exclude: [boss@acme.com]}}\n",
        );
        let DestinationKind::Email(email) = &d[0].kind else {
            panic!("email")
        };
        assert_eq!(
            email_recipients(email, None),
            ["Ops@acme.com", "bi@acme.com"]
        );
        assert_eq!(
            email_recipients(email, Some("JANE@acme.com")),
            ["Ops@acme.com", "bi@acme.com", "JANE@acme.com"]
        );
        assert_eq!(
            email_recipients(email, Some("joe@acme.com")).len(),
            2,
            "not in include"
        );
        let mut all = email.clone();
        all.app_owner.include_all = true;
        assert_eq!(email_recipients(&all, Some("joe@acme.com")).len(), 3);
        assert_eq!(
            email_recipients(&all, Some("boss@acme.com")).len(),
            2,
            "excluded"
        );
        assert_eq!(
            email_recipients(&all, Some("bi@ACME.com")).len(),
            2,
            "deduplicated"
        );
        all.app_owner.enabled = false;
        assert_eq!(email_recipients(&all, Some("joe@acme.com")).len(), 2);
    }

    #[test]
    fn rate_keys() {
        assert_ne!(rate_key("d", "a", None), rate_key("d", "a", Some("x@y.z")));
        assert_eq!(
            rate_key("d", "a", Some("X@Y.z")),
            rate_key("d", "a", Some("x@y.z"))
        );
    }
}
