//! A full state disk: alerts pending (Slack failing), then the disk fills, then Slack recovers.
//! No alert goes out again and again, `/readyz` says not ready, the log stays short, and
//! everything is delivered once there is space again. The state lives on a small tmpfs mounted
//! by the test (the tests run as root).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and must run as root (uid 0): mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Slack: answers 500 until `healthy`, then 200; counts the answers per message body.
#[derive(Clone, Default)]
struct Slack {
    healthy: Arc<AtomicBool>,
    /// Body → (500s, 200s).
    answers: Arc<Mutex<HashMap<String, (u32, u32)>>>,
}

impl Respond for Slack {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let healthy = self.healthy.load(Ordering::SeqCst);
        let mut answers = self.answers.lock().unwrap();
        let counts = answers.entry(body).or_default();
        if healthy {
            counts.1 += 1;
            ResponseTemplate::new(200).set_body_string("ok")
        } else {
            counts.0 += 1;
            ResponseTemplate::new(500).set_body_string("internal_error")
        }
    }
}

impl Slack {
    fn answers(&self) -> Vec<(u32, u32)> {
        self.answers.lock().unwrap().values().copied().collect()
    }
}

/// Writes a file until the file system is full (ENOSPC).
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("create filler");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // Partial writes may leave a few bytes: take them too.
    while file.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
    filler
}

fn outbox_states(db: &Path) -> Vec<(String, u32)> {
    query(db, "SELECT state, attempts FROM outbox ORDER BY id")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect()
}

#[test]
fn a_full_state_disk_sends_each_alert_once_and_says_not_ready() {
    let tmpfs = Tmpfs::mount("8m");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let slack = Slack::default();
    let hooks = runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/slack"))
            .respond_with(slack.clone())
            .mount(&server)
            .await;
        server
    });
    let broker = Broker::start();
    let db = tmpfs.path().join("state.db");
    let daemon = Daemon::start_with(|admin, _| {
        format!(
            "mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-disk-{admin}, keep_alive: 5s}}\n\
             poll: {{enabled: false}}\n\
             enrich: {{enabled: false}}\n\
             state: {{path: '{}'}}\n\
             admin: {{listen: '127.0.0.1:{admin}'}}\n\
             delivery: {{retry_initial: 200ms, retry_max: 1s}}\n\
             tenants:\n  - {{id: {TENANT}, url: 'https://acme.eu.qlikcloud.com'}}\n\
             destinations:\n  - {{name: chat, type: slack, webhook_url: '{}/slack', rate_limit: 0s}}\n",
            broker.port,
            db.display(),
            hooks.uri()
        )
    });
    daemon.wait_subscribed();
    publish(
        broker.port,
        &topic(),
        &(1..=3).map(distinct_failure).collect::<Vec<_>>(),
    );

    // Three alerts pending, each with failed attempts on disk.
    wait_until(
        "3 pending rows with failed attempts",
        Duration::from_secs(30),
        || {
            let rows = outbox_states(&db);
            rows.len() == 3
                && rows
                    .iter()
                    .all(|(state, attempts)| state == "pending" && *attempts >= 1)
        },
    );
    assert_eq!(slack.answers().len(), 3, "three distinct alerts");
    assert_eq!(daemon.http_get("/readyz").map(|r| r.0), Some(200));

    let filler = fill(tmpfs.path());
    slack.healthy.store(true, Ordering::SeqCst);
    let lines_before = daemon.log().lines().count();
    // The outcome writes fail and are retried: counted, and readiness fails.
    let errors = daemon
        .metric("reload_butler_store_errors_total")
        .unwrap_or(0.0);
    daemon.wait_metric("reload_butler_store_errors_total", errors + 5.0);
    wait_until("/readyz not ready", Duration::from_secs(30), || {
        daemon.http_get("/readyz").map(|r| r.0) == Some(503)
    });
    let (status, body) = daemon.http_get("/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not writable"), "{body}");
    assert_eq!(daemon.metric("reload_butler_store_writable"), Some(0.0));
    for (_, sent) in slack.answers() {
        assert!(
            sent <= 2,
            "an alert was sent {sent} times while the disk was full"
        );
    }
    let lines_full = daemon.log().lines().count() - lines_before;
    assert!(
        lines_full < 60,
        "{lines_full} log lines while the disk was full:\n{}",
        daemon.log()
    );

    std::fs::remove_file(&filler).expect("remove filler");
    wait_until("every alert delivered", Duration::from_secs(60), || {
        outbox_states(&db)
            .iter()
            .all(|(state, _)| state == "delivered")
    });
    wait_until("/readyz ready again", Duration::from_secs(30), || {
        daemon.http_get("/readyz").map(|r| r.0) == Some(200)
    });
    assert_eq!(daemon.metric("reload_butler_store_writable"), Some(1.0));
    let answers = slack.answers();
    assert_eq!(answers.len(), 3);
    for (_, sent) in answers {
        assert!((1..=2).contains(&sent), "an alert was sent {sent} times");
    }
    drop(daemon);
}
