//! `storm-rate-limited`: N failures of N × 0.3 apps at once (`reload.finished`, distinct
//! reloads) against a Qlik fake that enforces a rate limit like Qlik: 429 + Retry-After and
//! Qlik's error body beyond it, every request refused meanwhile. Two budgets:
//!
//! - Qlik's published tier 1 (1,000 a minute over 5 minutes: a burst of 5,000), the daemon
//!   configured with the same defaults;
//! - a tight one, as when other tools already spend most of it: a burst of 1,000, then 1,000 a
//!   minute, every 429 with `Retry-After: 13`, the daemon still on its defaults; then the same
//!   with `enrich.timeout: 30s`, so that alerts may wait out a pause for their script logs.
//!
//! Printed: alerts delivered, seconds to the first and last alert, alerts with the app's name,
//! Qlik requests per alert and 429s.

use std::time::{Duration, Instant};

use crate::fakes::qlik_budget::{storm_app_name, Limit, Load, TIER_1};
use crate::fakes::{self};
use crate::procs::{progress, wait_for, Broker, Daemon, Publisher, TENANT};
use crate::scenarios::Settings;
use crate::Row;

fn app_id(n: usize, apps: usize) -> String {
    format!("{:08x}-5a1e-4f00-9000-{:012x}", n % apps, n % apps)
}

fn failures(count: usize, apps: usize) -> Result<Vec<Vec<u8>>, String> {
    let path = format!(
        "{}/tests/fixtures/events/reload-finished-failed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut event: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
    (0..count)
        .map(|n| {
            event["id"] = format!("storm-limited-{n}").into();
            event["toplevelresourceid"] = app_id(n, apps).into();
            event["data"]["appId"] = app_id(n, apps).into();
            event["data"]["id"] = format!("{n:024x}").into();
            serde_json::to_vec(&event).map_err(|e| e.to_string())
        })
        .collect()
}

pub async fn storm_rate_limited(settings: &Settings) -> Result<Vec<Row>, String> {
    let count = settings.events.unwrap_or(1000);
    let apps = (count * 3 / 10).max(1);
    let tight = Limit {
        burst: 1_000,
        per_minute: 1_000,
        retry_after: Some(13),
    };
    let mut rows = run(settings, Budget::Tier1, TIER_1, count, apps).await?;
    rows.extend(run(settings, Budget::Tight, tight, count, apps).await?);
    rows.extend(run(settings, Budget::TightPatient, tight, count, apps).await?);
    Ok(rows)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Budget {
    Tier1,
    Tight,
    /// The tight budget with `enrich.timeout: 30s`.
    TightPatient,
}

impl Budget {
    fn scenario(self) -> &'static str {
        match self {
            Budget::Tier1 => "storm-rate-limited (tier 1)",
            Budget::Tight => "storm-rate-limited (tight)",
            Budget::TightPatient => "storm-rate-limited (tight, enrich.timeout 30s)",
        }
    }
}

async fn run(
    settings: &Settings,
    budget: Budget,
    limit: Limit,
    count: usize,
    apps: usize,
) -> Result<Vec<Row>, String> {
    let scenario = budget.scenario();
    progress(&format!(
        "{scenario} (burst {}, {}/min): {count} failures of {apps} apps",
        limit.burst, limit.per_minute
    ));
    let timeout = if budget == Budget::TightPatient {
        "30s"
    } else {
        "10s"
    };
    let broker = Broker::start()?;
    let (qlik, fake) = fakes::budgeted_qlik(limit).await?;
    let (hooks_url, hooks) = fakes::webhooks().await?;
    let mut daemon = Daemon::spawn(&settings.binary, |admin, state| {
        format!(
            "timezone: Europe/Stockholm\n\
             mqtt: {{url: 'mqtt://127.0.0.1:{}', client_id: rb-load-limited-{admin}, keep_alive: 30s}}\n\
             poll: {{enabled: false}}\n\
             enrich: {{enabled: true, timeout: {timeout}}}\n\
             state: {state}\n\
             admin: {{listen: '127.0.0.1:{admin}'}}\n\
             tenants:\n  - {{id: {TENANT}, url: '{qlik}', auth: {{api_key: load-test-key}}}}\n\
             destinations:\n  - {{name: chat, type: slack, webhook_url: '{hooks_url}/slack', rate_limit: 0}}\n",
            broker.port,
        )
    })?;
    daemon.wait_subscribed().await?;
    let publisher = Publisher::connect(broker.port).await?;
    let start = Instant::now();
    publisher
        .publish_all(failures(count, apps)?, Duration::from_secs(120))
        .await?;
    let waiting = hooks.clone();
    wait_for(
        "every alert",
        Duration::from_secs(600),
        Duration::from_millis(10),
        || waiting.counts().0 >= count,
    )
    .await?;
    let (first, last, named) = {
        let posts = hooks.slack.lock().map_err(|_| "poisoned")?;
        let at = |i: usize| posts.get(i).map(|p| p.at.duration_since(start));
        let named = posts
            .iter()
            .filter(|p| std::str::from_utf8(&p.body).is_ok_and(|b| b.contains(&storm_app_name(""))))
            .count();
        (at(0), at(posts.len().saturating_sub(1)), named)
    };
    let paused_series = format!("reload_butler_qlik_paused_seconds_total{{tenant=\"{TENANT}\"}}");
    let paused = daemon.metric(&paused_series).await.unwrap_or(0.0);
    daemon.stop();
    let load = &fake.load;
    let get = Load::get;
    let (requests, rate_limited) = (get(&load.requests), get(&load.rate_limited));
    let secs =
        |d: Option<Duration>| d.map_or("?".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
    let (first_target, last_target) = if budget == Budget::Tier1 {
        ("", "≤ 60 s")
    } else {
        ("≤ 5 s", "≤ 60 s")
    };
    Ok(vec![
        Row::new(
            scenario,
            format!("{count} failures of {apps} apps: alerts delivered; with the app name"),
            format!(
                "{} of {count}; {named} ({:.1} %)",
                hooks.counts().0,
                100.0 * named as f64 / count as f64
            ),
        )
        .vs("all; ≥ 99 %", ""),
        Row::new(scenario, "publish → first alert", secs(first)).vs(first_target, ""),
        Row::new(scenario, "publish → last alert", secs(last)).vs(last_target, ""),
        Row::new(
            scenario,
            "Qlik requests per alert (script logs; apps; items)",
            format!(
                "{:.2} ({requests} in all: {}; {}; {})",
                requests as f64 / count as f64,
                get(&load.logs),
                get(&load.apps),
                get(&load.items)
            ),
        )
        .vs("≤ 2.2", "8"),
        Row::new(
            scenario,
            "answered 429 (share of requests); time paused",
            format!(
                "{rate_limited} ({:.1} %); {paused:.0} s",
                100.0 * rate_limited as f64 / requests.max(1) as f64
            ),
        )
        .vs(
            if budget == Budget::Tier1 {
                "≤ 1 %"
            } else {
                ""
            },
            "",
        ),
    ])
}
