//! A flood of idle connections to the admin endpoint: the daemon keeps alerting with the usual
//! limit of 1,024 open files, closes what is over its cap at once and the idle ones after the
//! header timeout, and raises its own soft limit on open files at start-up.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Clone, Default)]
struct Slack {
    posts: Arc<AtomicUsize>,
}

impl Respond for Slack {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.posts.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_string("ok")
    }
}

/// The soft and hard "Max open files" of a process, from /proc.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn idle_admin_connections_never_stop_alerting() {
    // The test holds 1,100 sockets of its own.
    rlimit::increase_nofile_limit(4096).expect("raise the test's own limit");
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
    let daemon = Daemon::start_wrapped(&["prlimit", "--nofile=1024:4096", "--"], |admin, state| {
        format!(
            "{}destinations:\n  - {{name: chat, type: slack, webhook_url: '{}/slack', rate_limit: 0s}}\n",
            Daemon::config_for(&format!("mqtt://127.0.0.1:{}", broker.port), admin, state, ""),
            hooks.uri()
        )
    });
    daemon.wait_subscribed();
    assert_eq!(
        open_file_limits(daemon.pid()),
        (4096, 4096),
        "the soft limit is raised to the hard one"
    );
    // Back to the usual 1,024 for the flood.
    let lowered = Command::new("prlimit")
        .args(["--pid", &daemon.pid().to_string(), "--nofile=1024:1024"])
        .status()
        .expect("run prlimit");
    assert!(lowered.success());

    let flood: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", daemon.admin_port)).ok())
        .collect();
    assert_eq!(flood.len(), 1100, "the kernel accepts every connection");

    publish(
        broker.port,
        &topic(),
        &(1..=3).map(distinct_failure).collect::<Vec<_>>(),
    );
    wait_until(
        "three alerts delivered during the flood",
        Duration::from_secs(60),
        || slack.posts.load(Ordering::SeqCst) >= 3,
    );

    // The idle connections the endpoint kept are closed by the header timeout: each reads EOF.
    let mut closed = 0;
    for mut stream in flood {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 1100,
        "every flooding connection was closed by the daemon"
    );

    wait_until("/healthz answers again", Duration::from_secs(30), || {
        daemon.http_get("/healthz").map(|r| r.0) == Some(200)
    });
    let refused = daemon
        .metric("reload_butler_admin_connections_refused_total")
        .unwrap();
    assert!(
        refused >= 1036.0,
        "at most 64 of the 1,100 were kept: {refused} refused"
    );
    assert!(
        !daemon.log().contains("Too many open files"),
        "{}",
        daemon.log()
    );
    assert_eq!(slack.posts.load(Ordering::SeqCst), 3);
}
