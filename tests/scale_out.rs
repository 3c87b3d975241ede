//! Scale-out: two daemons in one MQTT shared subscription group, each with its own state store,
//! share the load: every failure is alerted exactly once across the two, and both do work.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;

fn config(broker: u16, admin: u16, state: &Path) -> String {
    let out = state.with_file_name("alerts");
    Daemon::config_for(
        &format!("mqtt://127.0.0.1:{broker}"),
        admin,
        state,
        "  shared_group: reload-butler\n",
    ) + &format!(
        "delivery: {{dry_run_dir: '{}'}}\n\
         destinations:\n  - {{name: chat, type: slack, rate_limit: 0, webhook_url: 'https://hooks.slack.com/services/T/B/x'}}\n",
        out.display()
    )
}

/// Reload ids of the alerts a daemon wrote, from the file names.
fn alerted(daemon: &Daemon) -> Vec<String> {
    std::fs::read_dir(daemon.dir.path().join("alerts"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| name.ends_with(".json"))
                .filter_map(|name| {
                    name.trim_end_matches(".json")
                        .rsplit('_')
                        .next()
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_daemons_in_a_shared_group_alert_each_failure_once() {
    let broker = Broker::start();
    let a = Daemon::start_with(|admin, state| config(broker.port, admin, state));
    let b = Daemon::start_with(|admin, state| config(broker.port, admin, state));
    a.wait_subscribed();
    b.wait_subscribed();

    let failures: Vec<Vec<u8>> = (0..200)
        .map(|n| {
            event("app-reload-finished-error.json", |v| {
                v["eventId"] = format!("evt-{n}").into();
                v["data"]["reloadId"] = format!("{n:024x}").into();
                v["extensions"]["topLevelResourceId"] =
                    format!("00000000-0000-4000-8000-{n:012}").into();
            })
        })
        .collect();
    publish(broker.port, &topic(), &failures);
    wait_until(
        "200 alerts across both daemons",
        Duration::from_secs(60),
        || alerted(&a).len() + alerted(&b).len() >= 200,
    );
    std::thread::sleep(Duration::from_millis(500));
    let (from_a, from_b) = (alerted(&a), alerted(&b));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for id in from_a.iter().chain(&from_b) {
        *counts.entry(id.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 200, "every failure alerted");
    assert!(
        counts.values().all(|&n| n == 1),
        "each exactly once: {counts:?}"
    );
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both did work: {} and {}",
        from_a.len(),
        from_b.len()
    );
}
