//! `check` means "run will start" (design §9.7): what `run` would refuse, `check` reports with
//! its key path and exit 2; and a configuration with every kind of destination and tenant that
//! `check` accepts starts the daemon.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::Path;
use std::process::{Command, Output};

use reload_butler::config::{Config, Env};

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reload-butler"))
        .args(["check", "--config", config.to_str().expect("utf-8 path")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs")
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

#[test]
fn check_refuses_what_run_refused_with_one_problem_each() {
    for (name, key) in [
        ("tenant-url-with-space.yaml", "tenants[0].url"),
        ("from-not-a-mailbox.yaml", "destinations[0].from"),
        ("webhook-not-a-url.yaml", "destinations[0].webhook_url"),
        ("destination-type-typo.yaml", "destinations[0].type"),
        ("smtp-host-with-space.yaml", "destinations[0].smtp.host"),
        ("absurd-duration.yaml", "delivery.retention"),
    ] {
        let out = check(&fixture(name));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("has 1 problem:"), "{name}: {err}");
        assert!(err.contains(&format!("  - {key}: ")), "{name}: {err}");
        assert!(
            !err.contains("SECRETTOKEN"),
            "{name} repeats a secret: {err}"
        );
    }
}

#[test]
fn check_builds_the_senders_and_reads_the_gateway_tls_files() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "mqtt: {url: null}\nenrich: {enabled: false}\n\
         tenants: [{id: t1, url: 'http://127.0.0.1:9', auth: {api_key: k}}]\n\
         destinations:\n\
         - {name: m, type: email, smtp: {host: smtp.example.com, ca_file: /nonexistent/ca.pem},\n\
            from: a@example.com, recipients: [b@example.com]}\n\
         gateway: {tls: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}}\n",
    )
    .expect("write");
    let out = check(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has 2 problems:"), "{err}");
    assert!(
        err.contains("  - destinations[0]: cannot read smtp.ca_file /nonexistent/ca.pem"),
        "{err}"
    );
    assert!(
        err.contains("cannot read gateway.tls.cert_file /nonexistent/cert.pem"),
        "{err}"
    );
}

/// Every destination kind and security, both kinds of tenant credentials, enrichment and the
/// poll on: `check` accepts it, and `run` (the library's `run_until`, as `run` calls it, less the
/// signal handlers) gets to "running" and stops cleanly. Nothing is sent: the daemon stops as
/// soon as it runs, and every address is loopback or example.com.
#[test]
fn a_config_check_accepts_starts() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("every-kind.yaml");
    let state = dir.path().join("state.db");
    let yaml = format!(
        r#"
mqtt: {{url: null}}
poll: {{enabled: true, interval: 1h}}
enrich: {{enabled: true}}
state: {{path: "{state}"}}
admin: {{listen: null}}
tenants:
  - {{id: t1, url: "http://127.0.0.1:9/", auth: {{api_key: k}}}}
  - {{id: t2, url: "http://localhost:9", auth: {{oauth: {{client_id: c, client_secret: s}}}}}}
destinations:
  - name: mail-starttls
    type: email
    smtp: {{host: smtp.example.com, security: starttls, username: u, password: p}}
    from: "Qlik Cloud alerts <alerts@example.com>"
    recipients: ["Ops <ops@example.com>", admins@example.com]
  - {{name: mail-tls, type: email, smtp: {{host: 127.0.0.1, security: tls}}, from: a@example.com, recipients: [b@example.com]}}
  - {{name: mail-plain, type: email, smtp: {{host: localhost, security: none}}, from: a@example.com, recipients: [b@example.com]}}
  - {{name: slack, type: slack, webhook_url: "https://hooks.slack.com/services/T0/B0/x"}}
  - {{name: teams, type: teams, webhook_url: "https://x.logic.azure.com/workflows/1?api-version=2016-06-01&sig=abc"}}
  - {{name: off, type: slack, enabled: false}}
"#,
        state = state.display()
    );
    std::fs::write(&path, yaml).expect("write");
    let out = check(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let config = Config::load(&path, &Env::new()).expect("valid");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (running, stop) = tokio::sync::oneshot::channel::<()>();
    let result = runtime.block_on(reload_butler::app::run_until(
        config,
        async {
            let _ = stop.await;
        },
        move |_| {
            let _ = running.send(());
        },
    ));
    assert!(
        result.is_ok(),
        "run refused what check accepted: {result:?}"
    );
}
