//! `demo`: a newcomer's first command. Runs an embedded broker, the gateway and the daemon in
//! one process on loopback (config/demo.yaml), POSTs a signed sample reload failure to the
//! gateway, waits until the email, Slack and Teams alerts are written to ./demo-out/, prints
//! them, and exits 0 — or exits 1 naming the stage that did not finish in time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{oneshot, watch};

use super::exit::{Code, Exit, Outcome};
use crate::config::{self, Config};
use crate::metrics::{AlertOutcome, Metrics};

const DEMO_CONFIG: &str = include_str!("../../config/demo.yaml");
const SAMPLE: &[u8] = include_bytes!("../../tests/fixtures/events/webhook-example-body.json");
/// How long each stage may take.
const STAGE_BOUND: Duration = Duration::from_secs(20);

fn free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

pub fn command() -> Outcome {
    let mut env = config::process_env();
    let Some(state) = state_dir(&env) else {
        return Err(fail(
            "cannot create a temporary directory for the demo's state",
        ));
    };
    let (Some(broker_port), Some(gateway_port)) = (free_port(), free_port()) else {
        return Err(fail("no free loopback port"));
    };
    env.insert(
        "RELOAD_BUTLER__MQTT__URL".into(),
        format!("embedded:{broker_port}"),
    );
    env.insert(
        "RELOAD_BUTLER__GATEWAY__LISTEN".into(),
        format!("127.0.0.1:{gateway_port}"),
    );
    env.insert(
        "RELOAD_BUTLER__STATE__PATH".into(),
        state.join("demo.db").display().to_string(),
    );
    let config = Config::from_yaml(DEMO_CONFIG, Path::new("config/demo.yaml"), &env)
        .map_err(|error| Exit::config(error.to_string()))?;
    let runtime = super::exit::runtime().map_err(|exit| fail(&exit.message))?;
    let outcome = runtime.block_on(demo(config, gateway_port));
    let _ = std::fs::remove_dir_all(&state);
    outcome
}

/// A fresh directory for the demo's state under `TMPDIR` (the environment as `config` read it).
fn state_dir(env: &config::Env) -> Option<PathBuf> {
    let tmp = env
        .get("TMPDIR")
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    let dir = tmp.join(format!("reload-butler-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok().map(|_| dir)
}

/// The demo names the stage that failed in its own words.
fn fail(message: &str) -> Exit {
    eprintln!("demo failed: {message}");
    Exit::said(Code::Runtime)
}

async fn demo(config: Config, gateway_port: u16) -> Outcome {
    let started_at = SystemTime::now();
    let out = config
        .delivery
        .dry_run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("demo-out"));
    let destinations: Vec<String> = config.destinations.iter().map(|d| d.name.clone()).collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let (metrics_tx, metrics_rx) = oneshot::channel::<Arc<Metrics>>();
    let daemon = tokio::spawn(crate::app::run_until(
        config.clone(),
        stopped(stop_rx.clone()),
        move |m| {
            let _ = metrics_tx.send(m);
        },
    ));
    let result = async {
        let metrics = tokio::time::timeout(STAGE_BOUND, metrics_rx)
            .await
            .map_err(|_| "the daemon did not start".to_owned())?
            .map_err(|_| "the daemon stopped during start-up (see the log above)".to_owned())?;
        wait(
            &metrics,
            "the daemon did not subscribe to the embedded broker",
            |m| m.mqtt_subscribed.load(Ordering::Relaxed),
        )
        .await?;
        println!(
            "demo: embedded MQTT broker, gateway on 127.0.0.1:{gateway_port} and daemon running"
        );
        let gateway = tokio::spawn(crate::gateway::run_until(
            config.clone(),
            stopped(stop_rx.clone()),
        ));
        post_sample(&config, gateway_port).await?;
        println!(
            "demo: the gateway verified the signed sample webhook and the broker acknowledged it"
        );
        wait(
            &metrics,
            "the daemon did not commit the reload failure as a job",
            |m| m.jobs_committed.load(Ordering::Relaxed) >= 1,
        )
        .await?;
        for name in &destinations {
            wait(
                &metrics,
                &format!("destination `{name}` did not write its alert"),
                |m| m.alert_count(name, AlertOutcome::Delivered) >= 1,
            )
            .await?;
        }
        Ok::<_, String>(gateway)
    }
    .await;
    let _ = stop_tx.send(true);
    let gateway = match result {
        Ok(gateway) => gateway,
        Err(stage) => {
            let _ = tokio::time::timeout(Duration::from_secs(20), daemon).await;
            return Err(fail(&stage));
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), gateway).await;
    if let Ok(Ok(Err(error))) = tokio::time::timeout(Duration::from_secs(20), daemon).await {
        return Err(fail(&format!("the daemon: {error}")));
    }
    let files = written_since(&out, started_at);
    println!("demo: wrote {} alerts to {}/", files.len(), out.display());
    for file in &files {
        println!("  {}  {}", file.display(), summary(file));
    }
    println!("demo: done. Next: docs/deployment.md to run it for real, docs/templates.md to change the messages.");
    Ok(())
}

async fn wait(
    metrics: &Metrics,
    stage: &str,
    done: impl Fn(&Metrics) -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while !done(metrics) {
        if start.elapsed() > STAGE_BOUND {
            return Err(format!("{stage} within {} s", STAGE_BOUND.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// POSTs the sample webhook, signed like Qlik signs it, until the gateway accepts it.
async fn post_sample(config: &Config, port: u16) -> Result<(), String> {
    let secret = config
        .gateway
        .secrets
        .first()
        .ok_or("config/demo.yaml has no gateway secret")?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).map_err(|e| e.to_string())?;
    mac.update(SAMPLE);
    let signature = hex::encode(mac.finalize().into_bytes());
    crate::tls::ensure_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{port}{}", config.gateway.path);
    let start = Instant::now();
    loop {
        let answer = client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Qlik-Signature", &signature)
            .body(SAMPLE)
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => return Ok(()),
            // 503: the gateway is not connected to the broker yet; connection refused: not up yet.
            Ok(response) if response.status().as_u16() != 503 => {
                return Err(format!(
                    "the gateway refused the sample webhook: {}",
                    response.status()
                ))
            }
            _ if start.elapsed() > STAGE_BOUND => {
                return Err(format!(
                    "the gateway did not accept the sample webhook within {} s",
                    STAGE_BOUND.as_secs()
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Alert files written during this run, sorted by name.
fn written_since(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t >= since)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// One line about an alert file: the email subject, or the chat message's first text.
fn summary(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if path.extension().is_some_and(|e| e == "eml") {
        // The subject is MIME-encoded in the file; the recipient reads plainly.
        return text
            .lines()
            .find_map(|l| l.strip_prefix("To: "))
            .map(|to| format!("email to {to}"))
            .unwrap_or_else(|| "email".into());
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if let Some(slack) = json["text"].as_str() {
        return format!("Slack message: {slack}");
    }
    match json
        .pointer("/attachments/0/content/body/1/text")
        .and_then(|t| t.as_str())
    {
        Some(app) => format!("Teams card: {}", as_shown(app)),
        None => "message".into(),
    }
}

/// A Teams text as Teams shows it: the Markdown escapes that keep a value literal removed.
fn as_shown(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut chars = markdown.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}
