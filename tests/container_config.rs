//! The image's two configs (config/container.yaml for `run`, config/gateway-container.yaml for
//! `gateway`) need exactly the environment variables their headers list: `check` passes with
//! those alone and names each one that is missing; and each starts, with the image's
//! `healthcheck --of any` healthy for it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn config(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "config", name]
        .iter()
        .collect()
}

/// The variables a config's header says it needs: the `#   NAME   meaning` lines after
/// "It needs exactly these environment variables".
fn listed_variables(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip_while(|l| !l.contains("It needs exactly these environment variables"))
        .skip(1)
        .map_while(|l| l.strip_prefix("#   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// A plausible value for each variable.
fn value(name: &str, broker_port: u16) -> String {
    match name {
        "MQTT_URL" => format!("mqtt://127.0.0.1:{broker_port}"),
        "QLIK_TENANT_ID" => TENANT.to_owned(),
        "QLIK_TENANT_URL" => "https://acme.eu.qlikcloud.com".to_owned(),
        "SLACK_WEBHOOK_URL" => "https://hooks.slack.com/services/T0/B0/x".to_owned(),
        _ => "0123456789abcdef0123456789abcdef".to_owned(),
    }
}

/// `reload-butler --config path args…` with only PATH, `vars` and `extra` in its environment.
fn command(path: &Path, vars: &[(String, String)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reload-butler"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .arg("--config")
        .arg(path)
        .args(args);
    command
}

fn check(path: &Path, vars: &[(String, String)]) -> (Option<i32>, String) {
    let out = command(path, vars, &["check"]).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn needs_exactly_what_it_lists(name: &str, expected: &[&str]) {
    let path = config(name);
    let listed = listed_variables(&path);
    assert_eq!(listed, expected, "{name}'s header");
    let vars: Vec<(String, String)> = listed.iter().map(|n| (n.clone(), value(n, 1883))).collect();
    let (code, out) = check(&path, &vars);
    assert_eq!(code, Some(0), "{name} with its variables: {out}");
    for missing in &listed {
        let fewer: Vec<_> = vars.iter().filter(|(n, _)| n != missing).cloned().collect();
        let (code, out) = check(&path, &fewer);
        assert_eq!(code, Some(2), "{name} without {missing}: {out}");
        assert!(out.contains(&format!("{missing} is not set")), "{out}");
    }
}

#[test]
fn each_container_config_needs_exactly_the_variables_it_lists() {
    needs_exactly_what_it_lists(
        "container.yaml",
        &[
            "MQTT_URL",
            "QLIK_TENANT_ID",
            "QLIK_TENANT_URL",
            "QLIK_API_KEY",
            "SLACK_WEBHOOK_URL",
            "ADMIN_TOKEN",
        ],
    );
    needs_exactly_what_it_lists(
        "gateway-container.yaml",
        &["MQTT_URL", "QLIK_WEBHOOK_SECRET"],
    );
}

/// `reload-butler args…` as the image runs it: the config named by RELOAD_BUTLER_CONFIG, only
/// PATH and `vars` in the environment.
fn as_in_the_image(path: &Path, vars: &[(String, String)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reload-butler"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RELOAD_BUTLER_CONFIG", path)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args(args);
    command
}

/// Starts `role` with a container config, its variables and the overrides (ports, state), and
/// waits until `healthcheck --of any` (the image's HEALTHCHECK, run with the same environment)
/// passes.
fn starts_healthy(name: &str, role: &str, overrides: &[(&str, String)]) {
    let broker = Broker::start();
    let path = config(name);
    let mut vars: Vec<(String, String)> = listed_variables(&path)
        .iter()
        .map(|n| (n.clone(), value(n, broker.port)))
        .collect();
    vars.extend(overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let mut child: Child = as_in_the_image(&path, &vars, &[role])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        &format!("{role} healthy for `healthcheck --of any`"),
        Duration::from_secs(30),
        || {
            as_in_the_image(&path, &vars, &["healthcheck", "--of", "any"])
                .output()
                .is_ok_and(|o| o.status.success())
        },
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_image_healthcheck_passes_for_the_daemon_and_the_gateway() {
    let state = tempfile::tempdir().unwrap();
    starts_healthy(
        "container.yaml",
        "run",
        &[
            (
                "RELOAD_BUTLER__ADMIN__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "RELOAD_BUTLER__STATE__PATH",
                state.path().join("state.db").display().to_string(),
            ),
            ("RELOAD_BUTLER__POLL__ENABLED", "false".to_owned()),
        ],
    );
    starts_healthy(
        "gateway-container.yaml",
        "gateway",
        &[(
            "RELOAD_BUTLER__GATEWAY__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )],
    );
}
