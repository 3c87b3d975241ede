//! A path-aware reader over the YAML tree that collects every problem instead of stopping at the
//! first, so that `check` (and start-up) can list all mistakes of a config file at once.
//!
//! serde's derive stops at the first error and cannot tell a typo from a new key; reading field by
//! field gives each problem its key path (`destinations[1].smtp.port`) and rejects unknown keys.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde_yaml_ng::{Mapping, Value};

pub use super::values::{http_url, kind, ByteSize, FromYaml, MAX_DURATION};

/// One thing wrong with the configuration, at one key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Problems collected while reading one file.
#[derive(Debug, Default)]
pub struct Problems(RefCell<Vec<Problem>>);

impl Problems {
    /// Records a problem; a key that already has one keeps its first (an unset `${VAR}` would
    /// otherwise also be reported as an invalid value).
    pub fn push(&self, path: &str, message: impl Into<String>) {
        let mut list = self.0.borrow_mut();
        if list.iter().any(|p| p.path == path) {
            return;
        }
        list.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0.into_inner()
    }
}

/// Joins a key onto a path: `mqtt` + `url` → `mqtt.url`.
pub fn join(path: &str, key: &str) -> String {
    if key.is_empty() {
        path.to_owned()
    } else if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// One value of the tree (possibly absent) and where it sits.
pub struct Node<'a> {
    pub path: String,
    pub value: Option<&'a Value>,
    problems: &'a Problems,
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value, problems: &'a Problems) -> Self {
        Node {
            path: String::new(),
            value: Some(value),
            problems,
        }
    }

    /// The value converted to `T`; `None` when absent or null. A value of the wrong kind is
    /// recorded as a problem and also gives `None`.
    pub fn get<T: FromYaml>(&self) -> Option<T> {
        match self.value {
            None | Some(Value::Null) => None,
            Some(value) => match T::from_yaml(value) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.problem(why);
                    None
                }
            },
        }
    }

    pub fn is_present(&self) -> bool {
        !matches!(self.value, None | Some(Value::Null))
    }

    pub fn problem(&self, message: impl Into<String>) {
        self.problems.push(&self.path, message);
    }

    /// A problem with a key below this node.
    pub fn problem_at(&self, key: &str, message: impl Into<String>) {
        self.problems.push(&join(&self.path, key), message);
    }

    /// This node read as a mapping of known keys (absent or null reads as empty).
    pub fn section(&self) -> Section<'a> {
        let map = match self.value {
            Some(Value::Mapping(map)) => Some(map),
            None | Some(Value::Null) => None,
            Some(other) => {
                self.problem(format!("expected a mapping, found {}", kind(other)));
                None
            }
        };
        Section {
            path: self.path.clone(),
            map,
            used: RefCell::new(Vec::new()),
            unknown_reported: Cell::new(true),
            problems: self.problems,
        }
    }

    /// This node read as a mapping of names the config chooses (header names, template
    /// variables), in file order; absent or null reads as empty.
    pub fn entries(&self) -> Vec<(String, Node<'a>)> {
        let map = match self.value {
            Some(Value::Mapping(map)) => map,
            None | Some(Value::Null) => return Vec::new(),
            Some(other) => {
                self.problem(format!("expected a mapping, found {}", kind(other)));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (key, value) in map {
            match key {
                Value::String(name) => out.push((
                    name.clone(),
                    Node {
                        path: join(&self.path, name),
                        value: Some(value),
                        problems: self.problems,
                    },
                )),
                other => self.problem(format!("keys must be text, found {}", kind(other))),
            }
        }
        out
    }

    /// This node read as a list (absent or null reads as empty).
    pub fn items(&self) -> Vec<Node<'a>> {
        match self.value {
            Some(Value::Sequence(seq)) => seq
                .iter()
                .enumerate()
                .map(|(i, value)| Node {
                    path: format!("{}[{i}]", self.path),
                    value: Some(value),
                    problems: self.problems,
                })
                .collect(),
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                self.problem(format!("expected a list, found {}", kind(other)));
                Vec::new()
            }
        }
    }
}

/// A mapping whose keys are read one by one. When it is dropped, every key that was not read is
/// reported as unknown: a typo must never silently disable an alert.
pub struct Section<'a> {
    pub path: String,
    map: Option<&'a Mapping>,
    used: RefCell<Vec<&'static str>>,
    unknown_reported: Cell<bool>,
    problems: &'a Problems,
}

impl<'a> Section<'a> {
    pub fn node(&self, key: &'static str) -> Node<'a> {
        self.used.borrow_mut().push(key);
        Node {
            path: join(&self.path, key),
            value: self.map.and_then(|m| m.get(key)),
            problems: self.problems,
        }
    }

    pub fn opt<T: FromYaml>(&self, key: &'static str) -> Option<T> {
        self.node(key).get()
    }

    pub fn or<T: FromYaml>(&self, key: &'static str, default: T) -> T {
        self.opt(key).unwrap_or(default)
    }

    /// A key whose absence means `default` and whose explicit `null` means "off" (`None`).
    pub fn default_or_null<T: FromYaml>(&self, key: &'static str, default: T) -> Option<T> {
        let node = self.node(key);
        match node.value {
            None => Some(default),
            Some(_) => node.get(),
        }
    }

    /// A key that must be present and non-null.
    pub fn req<T: FromYaml>(&self, key: &'static str) -> Option<T> {
        let node = self.node(key);
        if !node.is_present() {
            node.problem("is required");
        }
        node.get()
    }

    pub fn section(&self, key: &'static str) -> Section<'a> {
        self.node(key).section()
    }

    pub fn list(&self, key: &'static str) -> Vec<Node<'a>> {
        self.node(key).items()
    }

    pub fn problem(&self, key: &str, message: impl Into<String>) {
        self.problems.push(&join(&self.path, key), message);
    }

    /// Keys not read are not reported: which keys belong here depends on a value that already
    /// has its problem (a destination's misspelt `type`), and one typo is one problem.
    pub fn skip_unknown_keys(&self) {
        self.unknown_reported.set(false);
    }
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        let Some(map) = self.map else { return };
        if !self.unknown_reported.get() {
            return;
        }
        let used = self.used.borrow();
        for key in map.keys() {
            let name = match key {
                Value::String(s) => s.as_str(),
                other => {
                    self.problems.push(
                        &self.path,
                        format!("keys must be text, found {}", kind(other)),
                    );
                    continue;
                }
            };
            if !used.contains(&name) {
                let hint = closest(name, &used)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                self.problems
                    .push(&join(&self.path, name), format!("unknown key{hint}"));
            }
        }
    }
}

/// The known key nearest to a misspelt one, if any is close.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Two keys that must be set together (a certificate and its key).
pub fn pair(
    s: &Section,
    a: &'static str,
    b: &'static str,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    match (
        s.opt::<std::path::PathBuf>(a),
        s.opt::<std::path::PathBuf>(b),
    ) {
        (Some(x), Some(y)) => Some((x, y)),
        (None, None) => None,
        (Some(_), None) => {
            s.problem(b, format!("is required when {a} is set"));
            None
        }
        (None, Some(_)) => {
            s.problem(a, format!("is required when {b} is set"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::time::Duration;

    fn read(yaml: &str) -> (Vec<Problem>, Option<u16>) {
        let value: Value = serde_yaml_ng::from_str(yaml).unwrap_or(Value::Null);
        let problems = Problems::default();
        let port = {
            let root = Node::root(&value, &problems).section();
            let mqtt = root.section("mqtt");
            mqtt.opt::<u16>("port")
        };
        (problems.into_vec(), port)
    }

    #[test]
    fn unknown_keys_are_reported_with_a_hint() {
        let (problems, port) = read("mqtt: {prot: 1883}\nextra: 1\n");
        assert_eq!(port, None);
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "mqtt.prot: unknown key (did you mean `port`?)",
                "extra: unknown key"
            ]
        );
    }

    #[test]
    fn wrong_types_name_the_path() {
        let (problems, _) = read("mqtt: {port: 99999}\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "mqtt.port");
        assert!(
            problems[0].message.contains("65535"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn durations_and_sizes() {
        let d = |s: &str| Duration::from_yaml(&Value::String(s.into()));
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert!(d("5 minutes please").is_err());
        assert_eq!(d("100y"), Ok(MAX_DURATION));
        assert_eq!(
            d("300000000y"),
            Err("expected at most 100y, found `300000000y`".to_owned())
        );
        let b = |s: &str| ByteSize::from_yaml(&Value::String(s.into()));
        assert_eq!(b("1MiB"), Ok(ByteSize(1 << 20)));
        assert_eq!(b("512KiB"), Ok(ByteSize(512 << 10)));
        assert_eq!(b("2048"), Ok(ByteSize(2048)));
        assert!(b("1 parsec").is_err());
    }

    #[test]
    fn secrets_never_appear_in_reasons() {
        let err = Secret::from_yaml(&Value::Sequence(vec![Value::String("hunter2".into())]));
        assert!(err.is_err_and(|why| !why.contains("hunter2")));
    }
}
