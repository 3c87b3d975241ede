//! No event is lost when the daemon stops, crashes, or the broker goes away; TLS to the broker
//! works with a CA file and fails clearly with the wrong one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn events_published_while_the_daemon_is_stopped_arrive_when_it_is_back() {
    let broker = Broker::start();
    let mut daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();

    let status = daemon.sigterm();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    assert!(daemon.log().contains("stopped"));

    let events: Vec<Vec<u8>> = (0..3).map(distinct_failure).collect();
    publish(broker.port, &topic(), &events);

    daemon.resume();
    wait_until("3 jobs after restart", Duration::from_secs(20), || {
        daemon.job_count() == 3
    });
    assert!(
        daemon.log().contains("session_present=true"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_broker_restart_leaves_the_daemon_connected_and_receiving() {
    let mut broker = Broker::start();
    let daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();
    publish(broker.port, &topic(), &[distinct_failure(1)]);
    wait_until("first job", Duration::from_secs(10), || {
        daemon.job_count() == 1
    });

    broker.stop();
    daemon.wait_metric_eq("reload_butler_mqtt_connected", 0.0);
    assert_eq!(daemon.http_get("/readyz").map(|r| r.0), Some(503));
    std::thread::sleep(Duration::from_secs(2));
    broker.resume();

    daemon.wait_metric("reload_butler_mqtt_connects_total", 2.0);
    daemon.wait_metric("reload_butler_mqtt_connected", 1.0);
    publish(
        broker.port,
        &topic(),
        &[distinct_failure(2), distinct_failure(3)],
    );
    wait_until(
        "jobs after the broker came back",
        Duration::from_secs(20),
        || daemon.job_count() == 3,
    );
    assert!(
        daemon.log().contains("lost the MQTT connection"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_daemon_killed_before_its_commit_gets_the_message_again() {
    let broker = Broker::start();
    let mut daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();

    // Hold the store's write lock so the daemon receives the message but cannot commit it.
    let lock = rusqlite::Connection::open(daemon.state_path()).expect("open state");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    publish(broker.port, &topic(), &[distinct_failure(42)]);
    daemon.wait_metric("reload_butler_events_received_total", 1.0);
    assert_eq!(
        daemon.metric("reload_butler_jobs_committed_total"),
        Some(0.0)
    );
    daemon.sigkill();
    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    assert_eq!(
        daemon.job_count(),
        0,
        "nothing was committed before the kill"
    );

    daemon.resume();
    wait_until("the redelivered job", Duration::from_secs(20), || {
        daemon.job_count() == 1
    });
    let ids = daemon.query("SELECT event_id FROM jobs");
    assert_eq!(ids[0][0], "evt-42");
}

#[test]
fn store_commit_failures_are_retried_without_acking() {
    let broker = Broker::start();
    let daemon = Daemon::start(broker.port);
    daemon.wait_subscribed();
    let lock = rusqlite::Connection::open(daemon.state_path()).expect("open state");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    publish(broker.port, &topic(), &[distinct_failure(7)]);
    // The commit waits out the busy timeout, fails, is counted and retried.
    daemon.wait_metric("reload_butler_store_errors_total", 1.0);
    lock.execute_batch("ROLLBACK").expect("unlock");
    wait_until(
        "the job after the lock is gone",
        Duration::from_secs(30),
        || daemon.job_count() == 1,
    );
    assert!(daemon
        .log()
        .contains("commit failed; messages not acked, retrying"));
}

fn tls_daemon(broker: &Broker, ca_file: &std::path::Path) -> Daemon {
    let port = broker.tls_port.expect("tls listener");
    Daemon::start_with(|admin, state| {
        Daemon::config_for(
            &format!("mqtts://localhost:{port}"),
            admin,
            state,
            &format!("  ca_file: {}\n", ca_file.display()),
        )
    })
}

#[test]
fn mqtts_with_a_ca_file_receives_events() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let broker = Broker::start_tls(&pki);
    let daemon = tls_daemon(&broker, &pki.ca_file);
    daemon.wait_subscribed();
    publish(broker.port, &topic(), &[distinct_failure(1)]);
    wait_until("job over TLS", Duration::from_secs(10), || {
        daemon.job_count() == 1
    });
}

#[test]
fn mqtts_with_the_wrong_ca_fails_with_a_clear_error() {
    let certs = tempfile::tempdir().expect("dir");
    let pki = TestPki::create(certs.path());
    let broker = Broker::start_tls(&pki);
    let daemon = tls_daemon(&broker, &pki.other_ca_file);
    wait_until(
        "a certificate error in the log",
        Duration::from_secs(10),
        || daemon.log().contains("invalid peer certificate"),
    );
    assert!(daemon.log().contains("cannot connect to the MQTT broker"));
    assert_eq!(daemon.http_get("/readyz").map(|r| r.0), Some(503));
    assert_eq!(
        daemon.http_get("/healthz").map(|r| r.0),
        Some(200),
        "still alive"
    );
}
