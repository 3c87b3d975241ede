//! The shipped systemd units (deploy/) are valid units and hardened: `systemd-analyze verify`
//! accepts each (with the built binary in place of /usr/local/bin/reload-butler), and
//! `systemd-analyze security` rates each at an exposure of 3.0 or less ("OK").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::Path;
use std::process::Command;

const UNITS: &[&str] = &["reload-butler.service", "reload-butler-gateway.service"];

fn systemd_analyze() -> Command {
    // scripts/test installs systemd when it is missing; without it this test cannot judge.
    assert!(
        Path::new("/usr/bin/systemd-analyze").exists() || which("systemd-analyze"),
        "systemd-analyze is not installed (Debian package `systemd`; scripts/test installs it)"
    );
    Command::new("systemd-analyze")
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).exists()))
}

/// The unit with the test build's binary, in a directory of its own (verify checks ExecStart).
fn installed(unit: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(unit),
    )
    .expect("the unit ships in deploy/");
    assert!(
        text.contains("/usr/local/bin/reload-butler "),
        "{unit} runs the installed binary"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(unit);
    std::fs::write(
        &path,
        text.replace(
            "/usr/local/bin/reload-butler",
            env!("CARGO_BIN_EXE_reload-butler"),
        ),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn the_units_verify() {
    for unit in UNITS {
        let (_dir, path) = installed(unit);
        let out = systemd_analyze().arg("verify").arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !said.contains(unit),
            "{unit}: {said}"
        );
    }
}

#[test]
fn the_units_are_hardened() {
    for unit in UNITS {
        let (_dir, path) = installed(unit);
        let out = systemd_analyze()
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let level: f64 = text
            .lines()
            .find_map(|l| l.split("exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in {text}"));
        assert!(
            level <= 3.0,
            "{unit}: exposure {level} (at most 3.0)\n{text}"
        );
        for setting in [
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=",
        ] {
            let unit_text = std::fs::read_to_string(&path).unwrap();
            assert!(unit_text.contains(setting), "{unit}: {setting}");
        }
    }
}
