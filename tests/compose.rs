//! The docker-compose example of docs/deployment.md ("Scaling out", deploy/compose/): two
//! daemons, one PostgreSQL, one mosquitto. It parses as YAML with its anchors merged, gives the
//! daemons the same state store and distinct MQTT client ids, hands each exactly the variables
//! its config's header lists, and that config passes `check` against a real PostgreSQL server.
//! Where `docker compose` is installed, it also judges the file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::postgres::Postgres;
use serde_yaml_ng::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(dir().join("docker-compose.yaml")).unwrap();
    let mut value: Value = serde_yaml_ng::from_str(&text).unwrap();
    value.apply_merge().unwrap();
    value
}

/// The services that run the reload-butler image, with their environment.
fn daemons(compose: &Value) -> Vec<(String, serde_yaml_ng::Mapping)> {
    compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["image"].as_str() == Some("reload-butler"))
        .map(|(name, s)| {
            let env = s["environment"].as_mapping().cloned().unwrap_or_default();
            (name.as_str().unwrap().to_owned(), env)
        })
        .collect()
}

fn listed_variables(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip_while(|l| !l.contains("It needs exactly these environment variables"))
        .skip(1)
        .map_while(|l| l.strip_prefix("#   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn two_daemons_share_one_postgres_and_one_broker() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    for needed in ["mosquitto", "postgres"] {
        assert!(services.contains_key(needed), "a {needed} service");
    }
    let daemons = daemons(&compose);
    assert_eq!(daemons.len(), 2, "two daemons");
    let urls: BTreeSet<_> = daemons
        .iter()
        .map(|(_, env)| env["STATE_URL"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 1, "one shared store: {urls:?}");
    assert!(urls
        .iter()
        .all(|u| u.starts_with("postgres://") && u.contains("@postgres:5432/")));
    let instances: BTreeSet<_> = daemons
        .iter()
        .map(|(_, env)| env["INSTANCE"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(instances.len(), 2, "distinct MQTT client ids");
    for file in ["reload-butler.yaml", "mosquitto.conf", ".env.example"] {
        assert!(dir().join(file).is_file(), "deploy/compose/{file} ships");
    }
}

#[test]
fn each_daemon_gets_exactly_the_variables_its_config_needs_and_check_passes() {
    let config = dir().join("reload-butler.yaml");
    let needed = listed_variables(&config);
    assert!(needed.contains("STATE_URL"), "{needed:?}");
    let server = Postgres::shared();
    let url = server.database();
    for (name, env) in daemons(&compose()) {
        let given: BTreeSet<String> = env
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| *k != "RELOAD_BUTLER_CONFIG")
            .map(str::to_owned)
            .collect();
        assert_eq!(given, needed, "{name}");
        let mut check = Command::new(env!("CARGO_BIN_EXE_reload-butler"));
        check
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--config")
            .arg(&config)
            .arg("check");
        for var in &needed {
            let value = match var.as_str() {
                "STATE_URL" => url.clone(),
                "MQTT_URL" => "mqtt://127.0.0.1:1883".to_owned(),
                "QLIK_TENANT_ID" => common::TENANT.to_owned(),
                "QLIK_TENANT_URL" => "https://acme.eu.qlikcloud.com".to_owned(),
                "SLACK_WEBHOOK_URL" => "https://hooks.slack.com/services/T0/B0/x".to_owned(),
                _ => format!("{name}-0123456789abcdef"),
            };
            check.env(var, value);
        }
        let out = check.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name}: {text}");
        assert!(!text.contains("warning"), "{name}: {text}");
    }
}

#[test]
fn docker_compose_accepts_the_file_where_it_is_installed() {
    let available = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("docker compose is not installed: the file was judged by parsing alone");
        return;
    }
    let env = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        env.path(),
        "POSTGRES_PASSWORD=p\nQLIK_TENANT_ID=t\nQLIK_TENANT_URL=https://t.eu.qlikcloud.com\n\
         QLIK_API_KEY=k\nSLACK_WEBHOOK_URL=https://hooks.slack.com/services/T0/B0/x\nADMIN_TOKEN=a\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["compose", "--env-file"])
        .arg(env.path())
        .arg("-f")
        .arg(dir().join("docker-compose.yaml"))
        .args(["config", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
