//! `import-butler`: a Butler config becomes a reload-butler config that passes `check`, with
//! secrets replaced by `${VAR}` references.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::process::{Command, Output};

fn reload_butler(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reload-butler"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("binary runs")
}

#[test]
fn a_butler_config_imports_and_passes_check() {
    let out = reload_butler(
        &["import-butler", "tests/fixtures/butler/production.yaml"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    for secret in [
        "butler-smtp-password",
        "butler-mqtt-password",
        "butler-jwt",
        "butler-slack",
        "workflows/abc",
    ] {
        assert!(
            !yaml.contains(secret),
            "{secret} was copied into the output"
        );
    }
    for expected in [
        "url: \"mqtts://mqtt.acme.com:8883\"",
        "only_apps_tagged: [\"Butler - Send Slack alert if app reload fails\"]",
        "include: [\"anna@acme.com\", \"joe@acme.com\"]",
        "exclude: [\"daniel@acme.com\"]",
        "rate_limit: 60s",
        "script_log: {head: 10, tail: 20}",
        "format: basic",
        "subject: \"❌ Qlik Sense reload failed: \\\"{{appName}}\\\"\"",
        "# html_template: \"/opt/butler/email_templates/failed-reload-qscloud.handlebars\"",
        "- {id: \"runbook\", text: \"Qlik runbook\", url: \"https://wiki.acme.com/qlik-runbook\"}",
        "topic_prefix: \"qscloud/app/reload\"",
    ] {
        assert!(yaml.contains(expected), "missing `{expected}` in\n{yaml}");
    }
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("imported.yaml");
    std::fs::write(&path, &yaml).expect("write");
    let env = [
        ("MQTT_PASSWORD", "x"),
        ("QLIK_API_KEY", "x"),
        ("SMTP_PASSWORD", "x"),
        (
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/x",
        ),
        ("TEAMS_WEBHOOK_URL", "https://x.logic.azure.com/workflows/y"),
    ];
    let out = reload_butler(&["check", "--config", path.to_str().expect("utf-8")], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the variables, check names each one.
    let out = reload_butler(&["check", "--config", path.to_str().expect("utf-8")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    for (var, _) in env {
        assert!(err.contains(var), "{var} not named:\n{err}");
    }
}

#[test]
fn a_file_that_is_not_a_butler_config_is_refused() {
    let out = reload_butler(&["import-butler", "config/local.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no top-level `Butler:` section"));
    let out = reload_butler(&["import-butler", "/nonexistent.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
