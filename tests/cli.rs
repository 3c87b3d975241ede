//! The binary's command line: exit codes, `check` on the shipped and on broken configs, help.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::Path;
use std::process::{Command, Output};

fn reload_butler(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reload-butler"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SHIPPED_ENV: &[(&str, &str)] = &[
    ("QLIK_TENANT_ID", "xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct"),
    ("QLIK_API_KEY", "test-key"),
    ("SMTP_PASSWORD", "smtp-secret-value"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/slack-secret",
    ),
    (
        "TEAMS_WEBHOOK_URL",
        "https://prod.westeurope.logic.azure.com/workflows/x",
    ),
];

#[test]
fn check_passes_on_the_shipped_config() {
    let out = reload_butler(&["check"], SHIPPED_ENV);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("config/reload-butler.yaml: OK"));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("smtp-secret-value") && !all.contains("slack-secret"));
}

#[test]
fn check_lists_every_problem_and_exits_2() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/three-mistakes.yaml");
    let out = reload_butler(
        &["check", "--config", path.to_str().expect("utf-8 path")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("has 3 problems"), "{err}");
    for key in ["poll.interval", "tenants[0].url", "alert_on"] {
        assert!(err.contains(key), "{key} missing from {err}");
    }
}

#[test]
fn a_missing_config_file_is_exit_2_with_a_hint() {
    let out = reload_butler(
        &["check", "--config", "/nonexistent/reload-butler.yaml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/reload-butler.yaml"));
    let out = reload_butler(&["run", "--config", "/nonexistent/reload-butler.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_reads_tls_files_named_in_the_config() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "mqtt: {url: 'mqtts://broker:8883', ca_file: /nonexistent/ca.pem}\n\
         poll: {enabled: false}\nenrich: {enabled: false}\n\
         tenants: [{id: t1, url: 'https://t1.eu.qlikcloud.com'}]\n",
    )
    .expect("write");
    let out = reload_butler(&["check", "--config", path.to_str().expect("utf-8")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read mqtt.ca_file /nonexistent/ca.pem"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_and_version() {
    let out = reload_butler(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for word in ["run", "check", "--config", "--log-format", "--verbose"] {
        assert!(help.contains(word), "{word} missing from --help");
    }
    let out = reload_butler(&["--version"], &[]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("reload-butler {}", env!("CARGO_PKG_VERSION"))
    );
    let out = reload_butler(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2), "bad usage is exit 2");
}

#[test]
fn check_passes_on_the_local_quick_start_config() {
    let out = reload_butler(&["check", "--config", "config/local.yaml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn render_prints_each_destination_for_an_event_file() {
    let out = reload_butler(
        &[
            "render",
            "--event",
            "tests/fixtures/events/app-reload-finished-error.json",
            "--offline",
        ],
        SHIPPED_ENV,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for name in [
        "===== ops-email =====",
        "===== data-team-slack =====",
        "===== ops-teams =====",
    ] {
        assert!(stdout.contains(name), "{name} missing");
    }
    assert!(stdout
        .contains("Subject: ❌ Qlik Cloud reload failed: \"Sales Dashboard <EU> & \"Nordics\"\""));
    assert!(stdout.contains("\"type\": \"AdaptiveCard\""));
    let out = reload_butler(
        &[
            "render",
            "--event",
            "tests/fixtures/events/reload-finished-failed.json",
            "--offline",
            "--destination",
            "nope",
        ],
        SHIPPED_ENV,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_reports_a_broken_template_with_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let template = dir.path().join("broken.json.hbs");
    std::fs::write(&template, "{\n  \"text\": \"{{#each appTags}}\"\n}\n").expect("write");
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "poll: {{enabled: false}}\nenrich: {{enabled: false}}\n\
             tenants: [{{id: t1, url: 'https://t1.eu.qlikcloud.com'}}]\n\
             destinations:\n  - {{name: chat, type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x', template: '{}'}}\n",
            template.display()
        ),
    )
    .expect("write");
    let out = reload_butler(&["check", "--config", config.to_str().expect("utf-8")], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("destinations[0].template"), "{err}");
    assert!(err.contains(&format!("{}:", template.display())), "{err}");
}

#[test]
fn check_renders_digest_and_recovery_templates_too() {
    let dir = tempfile::tempdir().expect("dir");
    // Compiles, but is not JSON once rendered.
    let template = dir.path().join("digest.json.hbs");
    std::fs::write(&template, "{\"text\": {{count}} apps}\n").expect("write");
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "poll: {{enabled: false}}\nenrich: {{enabled: false}}\n\
             tenants: [{{id: t1, url: 'https://t1.eu.qlikcloud.com'}}]\n\
             destinations:\n  - {{name: chat, type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x', group_window: 30s, digest_template: '{}'}}\n",
            template.display()
        ),
    )
    .expect("write");
    let out = reload_butler(&["check", "--config", config.to_str().expect("utf-8")], &[]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("cannot render a sample digest"), "{err}");
    assert!(err.contains("did not produce valid JSON"), "{err}");
}

/// The stock webhook templates render the sample and its hostile twin to JSON; a webhook
/// template whose output is not JSON is a problem, alert or recovery.
#[test]
fn check_renders_webhook_templates_with_the_hostile_sample() {
    let dir = tempfile::tempdir().expect("dir");
    let broken = dir.path().join("ticket.json.hbs");
    std::fs::write(&broken, "{\"title\": \"{{appName}}\" \"oops\"}\n").expect("write");
    let config = dir.path().join("c.yaml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "poll: {{enabled: false}}\nenrich: {{enabled: false}}\n\
                 tenants: [{{id: t1, url: 'https://t1.eu.qlikcloud.com'}}]\n\
                 destinations:\n\
                 \x20 - {{name: pd, type: webhook, url: 'https://events.pagerduty.com/v2/enqueue', template: 'stock:pagerduty', recovery_template: 'stock:pagerduty-recovered', notify_recovery: true, escalate_after: 3, vars: {{routing_key: k}}}}\n\
                 \x20 - {{name: gchat, type: webhook, url: 'https://chat.googleapis.com/v1/spaces/S/messages', template: 'stock:google-chat', recovery_template: 'stock:google-chat-recovered', notify_recovery: true}}\n{extra}"
            ),
        )
        .expect("write")
    };
    write("");
    let out = reload_butler(&["check", "--config", config.to_str().expect("utf-8")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for extra in [
        format!("  - {{name: tickets, type: webhook, url: 'https://t.acme.com/api', template: '{}'}}\n", broken.display()),
        format!("  - {{name: tickets, type: webhook, url: 'https://t.acme.com/api', template: 'stock:google-chat', notify_recovery: true, recovery_template: '{}'}}\n", broken.display()),
    ] {
        write(&extra);
        let out = reload_butler(&["check", "--config", config.to_str().expect("utf-8")], &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("destinations[2]") && err.contains("did not produce valid JSON"), "{err}");
    }
}

/// Instances sharing a group that all poll would each alert what the poll finds (each SQLite
/// store dedupes alone): `check` says so, and still passes (one instance may poll).
#[test]
fn check_warns_about_a_shared_group_that_polls() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.yaml");
    let write = |poll: bool| {
        std::fs::write(
            &path,
            format!(
                "mqtt: {{url: 'mqtt://broker:1883', shared_group: alerters}}\n\
                 poll: {{enabled: {poll}}}\nenrich: {{enabled: true}}\n\
                 state: {{path: '{}'}}\n\
                 tenants: [{{id: t1, url: 'https://t1.eu.qlikcloud.com', auth: {{api_key: k}}}}]\n",
                dir.path().join("s.db").display()
            ),
        )
        .expect("write");
    };
    let config = path.to_str().expect("utf-8");
    write(true);
    let out = reload_butler(&["check", "--config", config], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning:")
            && text(&out.stderr).contains("alerted once per instance"),
        "{}",
        text(&out.stderr)
    );
    write(false);
    let out = reload_butler(&["check", "--config", config], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning:"),
        "{}",
        text(&out.stderr)
    );
}
