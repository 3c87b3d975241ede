//! `healthcheck --of gateway|any`: the container image's one check is healthy for a gateway
//! container too, over HTTPS when the gateway serves HTTPS (trusting exactly its own
//! certificate), and says what it asked when nothing answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::gateway::Gateway;
use common::*;

/// Runs `healthcheck` with `config` and `args`: exit code and stderr.
fn healthcheck(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reload-butler"))
        .arg("--config")
        .arg(config)
        .arg("healthcheck")
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The gateway's config, with the admin endpoint on a port where nothing listens.
fn with_idle_admin(text: String) -> String {
    format!("{text}admin: {{listen: '127.0.0.1:{}'}}\n", free_port())
}

#[test]
fn a_plain_gateway_is_healthy_for_of_gateway_and_of_any() {
    let broker = Broker::start();
    let gateway =
        Gateway::start_with(|port, _| with_idle_admin(Gateway::config(broker.port, port, "")));
    let config = gateway.dir.path().join("config.yaml");
    assert_eq!(healthcheck(&config, &["--of", "gateway"]).0, Some(0));
    assert_eq!(healthcheck(&config, &["--of", "any"]).0, Some(0));
    let (code, stderr) = healthcheck(&config, &[]);
    assert_eq!(code, Some(1), "the daemon is not running: {stderr}");
    assert!(stderr.contains("admin endpoint"), "{stderr}");
}

#[test]
fn an_https_gateway_is_asked_over_tls_pinned_to_its_certificate() {
    let broker = Broker::start();
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let tls = format!(
        "  tls: {{cert_file: {}, key_file: {}}}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let gateway =
        Gateway::start_with(|port, _| with_idle_admin(Gateway::config(broker.port, port, &tls)));
    let config = gateway.dir.path().join("config.yaml");
    assert_eq!(healthcheck(&config, &["--of", "gateway"]).0, Some(0));
    assert_eq!(healthcheck(&config, &["--of", "any"]).0, Some(0));

    // A config naming another certificate: the server is not trusted.
    let other = tempfile::tempdir().expect("dir");
    let other_pki = TestPki::create(other.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &pki.server_cert.display().to_string(),
        &other_pki.server_cert.display().to_string(),
    );
    let other_config = other.path().join("config.yaml");
    std::fs::write(&other_config, text).unwrap();
    let (code, stderr) = healthcheck(&other_config, &["--of", "gateway"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not gateway.tls.cert_file's"), "{stderr}");
}

#[test]
fn nothing_running_is_unhealthy_and_says_what_was_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.yaml");
    let text = with_idle_admin(Gateway::config(free_port(), free_port(), ""));
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = healthcheck(&config, &["--of", "any"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("admin endpoint"), "{stderr}");
    assert!(stderr.contains("gateway"), "{stderr}");
}
