//! `demo`: one command, no network beyond loopback, three alert files and exit 0.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::process::Command;

#[test]
fn the_demo_writes_the_three_alerts_and_exits_0() {
    let dir = tempfile::tempdir().expect("dir");
    for run in 1..=2 {
        let out = Command::new(env!("CARGO_BIN_EXE_reload-butler"))
            .arg("demo")
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {run}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("demo: wrote 3 alerts to demo-out/"),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("Teams card: Sales Dashboard <EU> & \"Nordics\""),
            "{stdout}"
        );
    }
    let files: Vec<String> = std::fs::read_dir(dir.path().join("demo-out"))
        .expect("demo-out")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for suffix in [".eml", ".json"] {
        assert!(files.iter().any(|f| f.ends_with(suffix)), "{files:?}");
    }
    let eml = files.iter().find(|f| f.ends_with(".eml")).expect("eml");
    let text = std::fs::read_to_string(dir.path().join("demo-out").join(eml)).expect("read");
    assert!(text.contains("multipart/alternative") && text.contains("To: qlik-admins@example.com"));
}

#[test]
fn the_demo_config_passes_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_reload-butler"))
        .args(["check", "--config", "config/demo.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
