//! A destination's routing keys: `match:` and `skip:` (the matching language of
//! [`crate::matcher`], shared with silences) and `escalate_after`.

use serde_yaml_ng::Value;

use super::reader::Section;
use super::values::FromYaml;
use crate::domain::AlertKind;
use crate::matcher::Criteria;

/// One `match:` or `skip:` map: each key a value or a list of values (any of).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteMatch {
    pub tenant: Vec<String>,
    pub space: Vec<String>,
    pub app: Vec<String>,
    pub app_tag: Vec<String>,
    pub owner: Vec<String>,
    pub error_code: Vec<String>,
    pub kind: Vec<AlertKind>,
}

impl RouteMatch {
    pub fn criteria(&self) -> Criteria<'_> {
        Criteria {
            tenant: &self.tenant,
            space: &self.space,
            app: &self.app,
            app_tag: &self.app_tag,
            owner: &self.owner,
            error_code: &self.error_code,
            kind: &self.kind,
        }
    }
}

/// Who a destination hears of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Route {
    /// Empty: every alert. Else only alerts it does not exclude by a known fact.
    pub matches: RouteMatch,
    /// Alerts it covers on known facts go elsewhere.
    pub skip: RouteMatch,
    /// An app's alerts come here from its Nth failure in a row on; 1 (the default) is every one.
    pub escalate_after: u32,
}

/// A value or a list of values.
struct OneOrMore<T>(Vec<T>);

impl<T: FromYaml> FromYaml for OneOrMore<T> {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let list = match value {
            Value::Sequence(_) => Vec::<T>::from_yaml(value)?,
            // An environment override sets a list as text: `[a, b]`.
            Value::String(text) if text.trim_start().starts_with('[') => {
                Vec::<T>::from_yaml(value)?
            }
            other => vec![T::from_yaml(other)?],
        };
        Ok(OneOrMore(list))
    }
}

pub(super) fn read_route(s: &Section) -> Route {
    let escalate_after: u32 = s.or("escalate_after", 1);
    if escalate_after == 0 {
        s.problem(
            "escalate_after",
            "must be at least 1 (1 alerts on every failure; 3 from the third failure in a row)",
        );
    }
    Route {
        matches: read_match(s, "match"),
        skip: read_match(s, "skip"),
        escalate_after: escalate_after.max(1),
    }
}

fn read_match(parent: &Section, key: &'static str) -> RouteMatch {
    let s = parent.section(key);
    let list = |k: &'static str| -> Vec<String> {
        let values = s
            .opt::<OneOrMore<String>>(k)
            .map(|v| v.0)
            .unwrap_or_default();
        if values.iter().any(|v| v.trim().is_empty()) {
            s.problem(k, "has an empty value, which no alert carries");
        }
        values
    };
    let m = RouteMatch {
        tenant: list("tenant"),
        space: list("space"),
        app: list("app"),
        app_tag: list("app_tag"),
        owner: list("owner"),
        error_code: list("error_code"),
        kind: s
            .opt::<OneOrMore<AlertKind>>("kind")
            .map(|v| v.0)
            .unwrap_or_default(),
    };
    if parent.node(key).is_present() && m.criteria().is_empty() {
        s.problem(
            "",
            "sets none of tenant, space, app, app_tag, owner, error_code, kind",
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Env};

    fn routes(yaml: &str) -> Result<Vec<super::Route>, String> {
        let text = format!(
            "poll: {{enabled: false}}\ntenants: [{{id: t, url: 'https://t.example.com', auth: {{api_key: k}}}}]\ndestinations:\n  - {{name: s, type: slack, webhook_url: 'https://h.example.com/x', {yaml}}}\n"
        );
        Config::from_yaml(&text, std::path::Path::new("t.yaml"), &Env::new())
            .map(|c| c.destinations.into_iter().map(|d| d.route).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn values_and_lists() {
        let r = routes("match: {tenant: t1, space: [Finance, s2], kind: automation}, skip: {error_code: [A, B]}, escalate_after: 3")
            .expect("config");
        assert_eq!(r[0].matches.tenant, ["t1"]);
        assert_eq!(r[0].matches.space, ["Finance", "s2"]);
        assert_eq!(r[0].matches.kind, [crate::domain::AlertKind::Automation]);
        assert_eq!(r[0].skip.error_code, ["A", "B"]);
        assert_eq!(r[0].escalate_after, 3);
        let plain = routes("rate_limit: 0s").expect("config");
        assert_eq!(plain[0].escalate_after, 1);
        assert!(plain[0].matches.criteria().is_empty());
    }

    #[test]
    fn mistakes_are_problems() {
        for (yaml, expect) in [
            (
                "match: {tenat: t1}",
                "destinations[0].match.tenat: unknown key",
            ),
            ("match: {}", "destinations[0].match: sets none of"),
            ("skip: {kind: app}", "destinations[0].skip.kind"),
            (
                "match: {app: ''}",
                "destinations[0].match.app: has an empty value",
            ),
            (
                "escalate_after: 0",
                "destinations[0].escalate_after: must be at least 1",
            ),
        ] {
            let error = routes(yaml).expect_err(yaml);
            assert!(error.contains(expect), "{yaml}: {error}");
        }
    }
}
