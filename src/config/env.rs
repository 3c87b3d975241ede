//! The environment's two ways into the configuration: `${VAR}` inside a string, and
//! `RELOAD_BUTLER__SECTION__KEY=value` overrides. Only `config/` reads the environment; the
//! variables arrive here as a map so tests can pass their own.

use std::collections::HashMap;

use serde_yaml_ng::{Mapping, Value};

use super::reader::{join, Problems};

/// Prefix of environment overrides; `__` separates key path segments.
pub const OVERRIDE_PREFIX: &str = "RELOAD_BUTLER__";

/// A snapshot of the environment variables the configuration may use.
pub type Env = HashMap<String, String>;

/// Reads the process environment (the only place that does).
pub fn process_env() -> Env {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string of the tree. An unset variable without
/// a default is a problem at that key: a secret that silently became empty would send alerts
/// nowhere. `$${` is a literal `${`.
pub fn expand_vars(value: &mut Value, path: &str, env: &Env, problems: &Problems) {
    match value {
        Value::String(text) if text.contains("${") => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(why) => problems.push(path, why),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_vars(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                expand_vars(item, &join(path, key), env, problems);
            }
        }
        _ => {}
    }
}

fn expand(text: &str, env: &Env) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal)".to_owned())?;
            let expr = &tail[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            match (env.get(name), default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write `${{{name}:-}}` if it may be empty)"
                    ))
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Applies `RELOAD_BUTLER__A__B__C=value` as `a.b.c: value`. A numeric segment indexes a list
/// (`RELOAD_BUTLER__TENANTS__0__AUTH__API_KEY`). Values are set as text; the readers convert.
pub fn apply_overrides(root: &mut Value, env: &Env, problems: &Problems) {
    let mut overrides: Vec<(&String, &String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(OVERRIDE_PREFIX))
        .collect();
    overrides.sort();
    for (name, value) in overrides {
        let segments: Vec<String> = name[OVERRIDE_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if segments.iter().any(String::is_empty) {
            problems.push(
                name,
                "malformed override name (segments are separated by `__`)",
            );
            continue;
        }
        if let Err(why) = set_path(root, &segments, Value::String(value.clone())) {
            problems.push(name, why);
        }
    }
}

fn set_path(node: &mut Value, segments: &[String], value: Value) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        *node = value;
        return Ok(());
    };
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    match node {
        Value::Mapping(map) => {
            let key = Value::String(first.clone());
            let child = map.entry(key).or_insert(Value::Null);
            set_path(child, rest, value)
        }
        Value::Sequence(items) => {
            let index: usize = first
                .parse()
                .map_err(|_| format!("`{first}` is not a list index"))?;
            let len = items.len();
            let child = items
                .get_mut(index)
                .ok_or_else(|| format!("list item {index} does not exist (the list has {len})"))?;
            set_path(child, rest, value)
        }
        _ => Err(format!(
            "cannot set `{first}` inside a value that is not a mapping"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expands_variables_and_defaults() {
        let e = env(&[("A", "x"), ("EMPTY", "")]);
        assert_eq!(expand("${A}-${B:-y}-${EMPTY}", &e).as_deref(), Ok("x-y-"));
        assert_eq!(expand("cost $5, $${A}", &e).as_deref(), Ok("cost $5, ${A}"));
        let err = expand("${MISSING}", &e).unwrap_err();
        assert!(err.contains("MISSING is not set"), "{err}");
        assert!(expand("${A", &e).is_err());
        assert!(expand("${A B}", &e).is_err());
    }

    #[test]
    fn overrides_set_nested_keys_and_list_items() {
        let mut root: Value =
            serde_yaml_ng::from_str("mqtt: {url: x}\ntenants: [{id: a}]\n").unwrap_or(Value::Null);
        let problems = Problems::default();
        let e = env(&[
            ("RELOAD_BUTLER__MQTT__PASSWORD", "p"),
            ("RELOAD_BUTLER__TENANTS__0__ID", "b"),
            ("RELOAD_BUTLER__TENANTS__5__ID", "c"),
            ("OTHER", "ignored"),
        ]);
        apply_overrides(&mut root, &e, &problems);
        assert_eq!(root["mqtt"]["password"], Value::String("p".into()));
        assert_eq!(root["tenants"][0]["id"], Value::String("b".into()));
        let problems = problems.into_vec();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "RELOAD_BUTLER__TENANTS__5__ID");
    }
}
