//! The scenarios: each starts its own broker, fakes and daemon (fresh state), measures, and
//! returns rows for the table. `Err` only when the scenario could not run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::fakes::{self, Hooks, Smtp};
use crate::procs::{
    progress, wait_for, BareSubscriber, Broker, Daemon, Publisher, Session, TENANT,
};
use crate::Row;

pub struct Settings {
    pub binary: PathBuf,
    pub events: Option<usize>,
    pub idle_secs: u64,
    pub settle_secs: u64,
    /// Recipients of the email destination in `storm-email`.
    pub recipients: usize,
    /// Failures delivered before a storm is measured (`--warm-up`).
    pub warm_up: usize,
}

const MIB: f64 = 1024.0;

fn fixture(name: &str) -> Result<serde_json::Value, String> {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))
}

/// The reload id of the n-th failure: distinct per failure, and findable in the Slack message.
fn reload_id(n: usize) -> String {
    format!("{n:024x}")
}

/// `count` engine-attempt failures, each a distinct reload (so each alerts).
fn failures(from: usize, count: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut event = fixture("app-reload-finished-error.json")?;
    (from..from + count)
        .map(|n| {
            event["eventId"] = format!("load-fail-{n}").into();
            event["data"]["reloadId"] = reload_id(n).into();
            serde_json::to_vec(&event).map_err(|e| e.to_string())
        })
        .collect()
}

/// `count` successful-reload events.
fn successes(count: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut event = fixture("app-reload-finished-ok.json")?;
    (0..count)
        .map(|n| {
            event["eventId"] = format!("load-ok-{n}").into();
            serde_json::to_vec(&event).map_err(|e| e.to_string())
        })
        .collect()
}

/// Broker, fakes and a subscribed daemon with enrichment on, Slack + Teams (+ email).
struct Rig {
    broker: Broker,
    hooks: Hooks,
    smtp: Option<Smtp>,
    daemon: Daemon,
    /// Spawn to "subscribed".
    subscribed_after: Duration,
}

/// Broker port, Qlik and webhook base URLs, and the SMTP port with the number of recipients.
type RigPorts<'a> = (u16, &'a str, &'a str, Option<(u16, usize)>);

fn config(rig: RigPorts, admin: u16, state: &str) -> String {
    config_as(&format!("rb-load-{admin}"), rig, admin, state)
}

/// [`config`] with a given MQTT client id (a persistent session the daemon resumes).
fn config_as(client_id: &str, rig: RigPorts, admin: u16, state: &str) -> String {
    let (broker, qlik, hooks, smtp) = rig;
    let mut text = format!(
        "timezone: Europe/Stockholm\n\
         mqtt: {{url: 'mqtt://127.0.0.1:{broker}', client_id: {client_id}, keep_alive: 30s}}\n\
         poll: {{enabled: false}}\n\
         enrich: {{enabled: true, timeout: 5s}}\n\
         state: {state}\n\
         admin: {{listen: '127.0.0.1:{admin}'}}\n\
         tenants:\n  - {{id: {TENANT}, comment: Load test, url: '{qlik}', auth: {{api_key: load-test-key}}}}\n\
         destinations:\n\
         \x20 - {{name: chat, type: slack, webhook_url: '{hooks}/slack', rate_limit: 0}}\n\
         \x20 - {{name: cards, type: teams, webhook_url: '{hooks}/teams', rate_limit: 0}}\n"
    );
    if let Some((port, recipients)) = smtp {
        let recipients: Vec<String> = (1..=recipients)
            .map(|n| format!("ops{n}@acme.com"))
            .collect();
        let recipients = recipients.join(", ");
        text.push_str(&format!(
            "  - {{name: mail, type: email, from: alerts@acme.com, recipients: [{recipients}], \
             app_owner: {{enabled: false}}, rate_limit: 0, smtp: {{host: 127.0.0.1, port: {port}, security: none}}}}\n"
        ));
    }
    text
}

async fn rig(settings: &Settings, email: bool) -> Result<Rig, String> {
    let broker = Broker::start()?;
    let qlik = fakes::qlik().await?;
    let (hooks_url, hooks) = fakes::webhooks().await?;
    let smtp = if email { Some(Smtp::start()?) } else { None };
    let smtp_port = smtp.as_ref().map(|s| (s.port, settings.recipients));
    let mut daemon = Daemon::spawn(&settings.binary, |admin, state| {
        config((broker.port, &qlik, &hooks_url, smtp_port), admin, state)
    })?;
    let subscribed_after = daemon.wait_subscribed().await?;
    Ok(Rig {
        broker,
        hooks,
        smtp,
        daemon,
        subscribed_after,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / MIB)
}

/// Start to subscribed (five starts) and RSS after `idle_secs`.
pub async fn idle(settings: &Settings) -> Result<Vec<Row>, String> {
    progress("idle: starting");
    let first = rig(settings, false).await?;
    let mut starts = vec![first.subscribed_after];
    tokio::time::sleep(Duration::from_secs(settings.idle_secs)).await;
    let rss = first.daemon.status_kib("VmRSS")?;
    let broker_port = first.broker.port;
    first.daemon.stop();
    for _ in 0..4 {
        let mut daemon = Daemon::spawn(&settings.binary, |admin, state| {
            // Enrichment against a dead port: start-up never calls it.
            config(
                (
                    broker_port,
                    "http://127.0.0.1:9",
                    "http://127.0.0.1:9",
                    None,
                ),
                admin,
                state,
            )
        })?;
        starts.push(daemon.wait_subscribed().await?);
        daemon.stop();
    }
    starts.sort();
    Ok(vec![
        Row::new(
            "idle",
            "start to subscribed (spawn → \"subscribed\" log line), median of 5",
            format!(
                "{} (min {}, max {})",
                ms(starts[2]),
                ms(starts[0]),
                ms(starts[4])
            ),
        )
        .vs("≤ 100 ms", ""),
        Row::new(
            "idle",
            format!("RSS {} s after start", settings.idle_secs),
            mib(rss),
        )
        .vs("≤ 10 MiB (no broker), ≤ 15 MiB", "134–143 MiB"),
    ])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The reload id a Slack message names (the stock template writes ``Reload `<id>` ``).
fn reload_id_in(body: &[u8], sent: &HashMap<String, Instant>) -> Option<Instant> {
    let text = std::str::from_utf8(body).ok()?;
    let marked = text
        .split("Reload `")
        .nth(1)
        .and_then(|rest| rest.get(..24))
        .and_then(|id| sent.get(id));
    marked.copied().or_else(|| {
        sent.iter()
            .find(|(id, _)| text.contains(*id))
            .map(|(_, t)| *t)
    })
}

/// Failures published one at a time at `per_second`; publish → Slack receipt latencies.
pub async fn single(settings: &Settings) -> Result<Vec<Row>, String> {
    let rig = rig(settings, false).await?;
    let publisher = Publisher::connect(rig.broker.port).await?;
    let mut rows = Vec::new();
    let mut next = 0;
    for (per_second, default) in [(4u64, 40usize), (50, 200)] {
        // Bounded: at most a minute per rate.
        let count = settings
            .events
            .unwrap_or(default)
            .min(60 * per_second as usize);
        progress(&format!("single: {count} failures at {per_second}/s"));
        rig.hooks.clear();
        let payloads = failures(next, count)?;
        let mut sent = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
        let cpu0 = rig.daemon.cpu_ms()?;
        for (i, payload) in payloads.into_iter().enumerate() {
            tick.tick().await;
            sent.insert(reload_id(next + i), Instant::now());
            publisher.publish(payload).await?;
        }
        next += count;
        let hooks = rig.hooks.clone();
        wait_for(
            "every Slack message",
            Duration::from_secs(60),
            Duration::from_millis(5),
            || hooks.counts().0 >= count && hooks.counts().1 >= count,
        )
        .await?;
        let cpu = rig.daemon.cpu_ms()? - cpu0;
        let first_id = reload_id(next - count);
        let first = rig
            .hooks
            .slack
            .lock()
            .map_err(|_| "poisoned")?
            .iter()
            .find(|post| post.body.windows(24).any(|w| w == first_id.as_bytes()))
            .and_then(|post| Some(post.at.duration_since(*sent.get(&first_id)?)));
        let mut latencies: Vec<Duration> = rig
            .hooks
            .slack
            .lock()
            .map_err(|_| "poisoned")?
            .iter()
            .filter_map(|post| Some(post.at.duration_since(reload_id_in(&post.body, &sent)?)))
            .collect();
        if latencies.len() != count {
            return Err(format!(
                "matched {} of {count} Slack messages to their publish",
                latencies.len()
            ));
        }
        latencies.sort();
        let (p50, p95, p99) = (
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            percentile(&latencies, 99.0),
        );
        let scenario = if per_second == 4 {
            "single 4/s"
        } else {
            "single 50/s"
        };
        let (target, butler) = if per_second == 4 {
            ("p50 ≤ 5 ms, p99 ≤ 15 ms", "p50 23 ms, p99 39 ms")
        } else {
            ("p50 ≤ 5 ms, p99 ≤ 15 ms", "")
        };
        rows.push(
            Row::new(
                scenario,
                format!("publish → Slack receipt, {count} failures: p50 / p95 / p99 (max; first)"),
                format!(
                    "{} / {} / {} ({}; {})",
                    ms(p50),
                    ms(p95),
                    ms(p99),
                    ms(*latencies.last().unwrap_or(&Duration::ZERO)),
                    first.map_or("?".to_owned(), ms)
                ),
            )
            .vs(target, butler),
        );
        rows.push(Row::new(
            scenario,
            "daemon CPU per failure (Slack + Teams)",
            format!("{:.2} ms", cpu / count as f64),
        ));
    }
    rig.daemon.stop();
    Ok(rows)
}

/// N distinct failures published at once; until every delivery arrived.
/// How long a storm of `count` failures may take to be delivered before the run gives up.
fn deliveries_timeout(count: usize) -> Duration {
    Duration::from_millis((count as u64 * 60).clamp(60_000, 900_000))
}

pub async fn storm(settings: &Settings, email: bool) -> Result<Vec<Row>, String> {
    let count = settings.events.unwrap_or(1000);
    let name: &'static str = if email { "storm-email" } else { "storm" };
    progress(&format!("{name}: {count} failures at once"));
    let mut rig = rig(settings, email).await?;
    let publisher = Publisher::connect(rig.broker.port).await?;
    let warm_up = settings.warm_up;
    let mails = if email { settings.recipients } else { 0 };
    let mut mails_before = 0;
    if warm_up > 0 {
        progress(&format!("{name}: {warm_up} failures first, not measured"));
        publisher
            .publish_all(failures(0, warm_up)?, Duration::from_secs(120))
            .await?;
        let hooks = rig.hooks.clone();
        let timeout = deliveries_timeout(warm_up);
        let smtp = &mut rig.smtp;
        wait_for(
            "every warm-up delivery",
            timeout,
            Duration::from_millis(5),
            || {
                let (slack, teams) = hooks.counts();
                let mail = smtp.as_mut().map_or(0, |s| s.received());
                slack >= warm_up && teams >= warm_up && mail >= mails * warm_up
            },
        )
        .await?;
        // The outcomes are recorded after the last POST; let the store go quiet.
        tokio::time::sleep(Duration::from_secs(3)).await;
        rig.hooks.clear();
        mails_before = rig.smtp.as_mut().map_or(0, |s| s.received());
    }
    let payloads = failures(warm_up, count)?;
    let rss_before = rig.daemon.status_kib("VmRSS")?;
    let (user0, system0) = rig.daemon.cpu_split_ms()?;
    let start = Instant::now();
    let published = publisher
        .publish_all(payloads, Duration::from_secs(120))
        .await?;
    let timeout = deliveries_timeout(count);
    let per_failure = 2 + mails;
    let (hooks, mut smtp) = (rig.hooks.clone(), rig.smtp.take());
    let mut mail_done_at = None;
    wait_for("every delivery", timeout, Duration::from_millis(5), || {
        let (slack, teams) = hooks.counts();
        let mail = match smtp.as_mut() {
            Some(smtp) => {
                let received = smtp.received() - mails_before;
                if received >= mails * count && mail_done_at.is_none() {
                    mail_done_at = Some(Instant::now());
                }
                received
            }
            None => 0,
        };
        slack >= count && teams >= count && mail >= mails * count
    })
    .await?;
    let end = rig.hooks.last_at().max(mail_done_at).unwrap_or(start);
    let elapsed = end.duration_since(start);
    let (user, system) = rig.daemon.cpu_split_ms()?;
    let system = system - system0;
    let cpu = user - user0 + system;
    let peak = rig.daemon.status_kib("VmHWM")?;
    let deliveries = count * per_failure;
    progress(&format!(
        "{name}: done in {}; {} s of quiet before the RSS reading",
        ms(elapsed),
        settings.settle_secs
    ));
    tokio::time::sleep(Duration::from_secs(settings.settle_secs)).await;
    let rss_after = rig.daemon.status_kib("VmRSS")?;
    let (errors, warnings) = rig.daemon.errors_and_warnings();
    rig.daemon.stop();
    let what = if email {
        format!("Slack + Teams + {mails} emails")
    } else {
        "Slack + Teams".to_owned()
    };
    let per_second = |n: usize| n as f64 / elapsed.as_secs_f64();
    Ok(vec![
        Row::new(
            name,
            format!(
                "{count} failures → {deliveries} deliveries ({what}), publish to last receipt{}",
                match warm_up {
                    0 => String::new(),
                    n => format!(" (after {n} warm-up failures)"),
                }
            ),
            format!(
                "{} (all {count} PUBACKed after {})",
                ms(elapsed),
                ms(published)
            ),
        ),
        Row::new(
            name,
            "throughput: failures/s (deliveries/s)",
            format!("{:.0} ({:.0})", per_second(count), per_second(deliveries)),
        )
        .vs(
            if email { "" } else { "≥ 7,000 alerts/s" },
            if email {
                ""
            } else {
                "287 alerts/s (issue #21)"
            },
        ),
        Row::new(
            name,
            "daemon CPU per failure (per delivery)",
            format!(
                "{:.2} ms ({:.2} ms)",
                cpu / count as f64,
                cpu / deliveries as f64
            ),
        )
        .vs(
            if email {
                "≤ 0.6 ms per failure"
            } else {
                "≤ 0.16 ms per alert"
            },
            if email { "" } else { "4.07 ms per alert" },
        ),
        // What callgrind does not count: system calls (the WAL's writes and fsyncs, sockets,
        // futexes) and page faults.
        Row::new(
            name,
            "of that CPU, in the kernel (system time)",
            format!(
                "{:.0} % ({:.2} ms per failure)",
                100.0 * system / cpu.max(f64::MIN_POSITIVE),
                system / count as f64
            ),
        ),
        Row::new(
            name,
            format!(
                "RSS before → peak (VmHWM) → after {} s idle",
                settings.settle_secs
            ),
            format!("{} → {} → {}", mib(rss_before), mib(peak), mib(rss_after)),
        )
        .vs(
            if email {
                ""
            } else {
                "peak ≤ 25 MiB, ≤ idle + 5 MiB 30 s later"
            },
            if email { "" } else { "406–510 MiB" },
        ),
        Row::new(
            name,
            "daemon log lines at ERROR (at WARN), start to the RSS reading",
            format!("{errors} ({warnings})"),
        )
        .vs(if email { "" } else { "no ERROR line" }, ""),
    ])
}

/// N successful-reload events: the daemon's drop rate, and a bare subscriber's on the same flood.
pub async fn flood(settings: &Settings) -> Result<Vec<Row>, String> {
    let count = settings.events.unwrap_or(50_000);
    let timeout = Duration::from_secs(300);

    progress(&format!(
        "flood: {count} successful-reload events to a bare subscriber"
    ));
    let (bare_elapsed, bare_published) = {
        let broker = Broker::start()?;
        let bare = BareSubscriber::start(broker.port, count as u64)?;
        let publisher = Publisher::connect(broker.port).await?;
        let payloads = successes(count)?;
        let start = Instant::now();
        let published = publisher.publish_all(payloads, timeout).await?;
        let done = bare.done_at.clone();
        wait_for(
            "the bare subscriber",
            timeout,
            Duration::from_millis(2),
            || done.lock().map(|d| d.is_some()).unwrap_or(false),
        )
        .await?;
        let at = done.lock().ok().and_then(|d| *d).unwrap_or(start);
        let received = bare.received.load(Ordering::Relaxed);
        if received != count as u64 {
            return Err(format!("the bare subscriber got {received} of {count}"));
        }
        (at.duration_since(start), published)
    };

    progress(&format!(
        "flood: {count} successful-reload events to the daemon"
    ));
    let rig = rig(settings, false).await?;
    let publisher = Publisher::connect(rig.broker.port).await?;
    let payloads = successes(count)?;
    let series = "reload_butler_events_dropped_total{reason=\"reload_succeeded\"}";
    let cpu0 = rig.daemon.cpu_ms()?;
    let start = Instant::now();
    let published = publisher.publish_all(payloads, timeout).await?;
    let mut dropped_at = None;
    while start.elapsed() < timeout {
        if rig.daemon.metric(series).await.unwrap_or(0.0) >= count as f64 {
            dropped_at = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = dropped_at
        .ok_or("the daemon did not drop every event in time")?
        .duration_since(start);
    let cpu = rig.daemon.cpu_ms()? - cpu0;
    let peak = rig.daemon.status_kib("VmHWM")?;
    rig.daemon.stop();

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let mut rows = vec![
        Row::new(
            "flood",
            format!("{count} ok events dropped by the daemon: events/s (publish to last drop)"),
            format!(
                "{:.0}/s ({}; publisher's last PUBACK after {})",
                rate(elapsed),
                ms(elapsed),
                ms(published)
            ),
        )
        .vs("≥ 50,000/s", ""),
        Row::new(
            "flood",
            "bare rumqttc subscriber, same flood (baseline)",
            format!(
                "{:.0}/s ({}; publisher's last PUBACK after {})",
                rate(bare_elapsed),
                ms(bare_elapsed),
                ms(bare_published)
            ),
        ),
        Row::new(
            "flood",
            "daemon time ÷ bare subscriber time",
            format!("{:.2}×", elapsed.as_secs_f64() / bare_elapsed.as_secs_f64()),
        )
        .vs("≤ 2×", ""),
        Row::new(
            "flood",
            "daemon CPU per event; peak RSS",
            format!("{:.1} µs; {}", cpu * 1000.0 / count as f64, mib(peak)),
        ),
    ];
    rows.extend(flood_queued(settings, count, timeout).await?);
    Ok(rows)
}

/// The same flood queued by the broker for two persistent sessions, the daemon's and a bare
/// subscriber's, while both are away; then each connects alone and takes its queue. No
/// publisher runs while either is timed, so this is the subscriber's rate, not the publisher's:
/// from its first message to its last (the daemon's from /metrics, polled every 2 ms).
async fn flood_queued(
    settings: &Settings,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Row>, String> {
    progress(&format!(
        "flood (queued): {count} events queued for the daemon's and a bare subscriber's session"
    ));
    let broker = Broker::start()?;
    let client_id = format!("rb-load-queued-{}", std::process::id());
    let dead = "http://127.0.0.1:9";
    let spawn = || {
        Daemon::spawn(&settings.binary, |admin, state| {
            config_as(&client_id, (broker.port, dead, dead, None), admin, state)
        })
    };
    // Both sessions subscribe once, then go away.
    let mut daemon = spawn()?;
    daemon.wait_subscribed().await?;
    daemon.stop();
    drop(BareSubscriber::start_session(
        broker.port,
        0,
        "loadtest-bare-queued",
        Session::Create,
    )?);
    let publisher = Publisher::connect(broker.port).await?;
    publisher.publish_all(successes(count)?, timeout).await?;
    drop(publisher);

    let bare = BareSubscriber::start_session(
        broker.port,
        count as u64,
        "loadtest-bare-queued",
        Session::Resume,
    )?;
    let bare_span = {
        let start = Instant::now();
        loop {
            if let Some((first, last)) = bare.span() {
                break last.duration_since(first);
            }
            if start.elapsed() > timeout {
                let got = bare.received.load(Ordering::Relaxed);
                return Err(format!("the bare subscriber got {got} of {count} queued"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    drop(bare);

    let daemon = spawn()?;
    let received = "reload_butler_events_received_total";
    let series = "reload_butler_events_dropped_total{reason=\"reload_succeeded\"}";
    let start = Instant::now();
    let mut first = None;
    let mut last = None;
    let mut cpu0 = 0.0;
    while start.elapsed() < timeout && last.is_none() {
        if first.is_none() {
            if daemon.metric(received).await.unwrap_or(0.0) > 0.0 {
                first = Some(Instant::now());
                cpu0 = daemon.cpu_ms()?;
            }
        } else if daemon.metric(series).await.unwrap_or(0.0) >= count as f64 {
            last = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Err("the daemon did not drop every queued event in time".into());
    };
    let cpu = daemon.cpu_ms()? - cpu0;
    daemon.stop();
    let span = last.duration_since(first);
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    Ok(vec![
        Row::new(
            "flood (queued)",
            format!("{count} ok events queued for the session, dropped by the daemon: events/s (first to last)"),
            format!("{:.0}/s ({}); CPU {:.1} µs per event", rate(span), ms(span), cpu * 1000.0 / count as f64),
        )
        .vs("≥ 50,000/s", ""),
        Row::new(
            "flood (queued)",
            "bare rumqttc subscriber, same queue on the same broker (baseline)",
            format!("{:.0}/s ({})", rate(bare_span), ms(bare_span)),
        ),
        Row::new(
            "flood (queued)",
            "daemon time ÷ bare subscriber time",
            format!("{:.2}×", span.as_secs_f64() / bare_span.as_secs_f64()),
        )
        .vs("≤ 2×", ""),
    ])
}
