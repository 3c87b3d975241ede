//! Wiring of `run`: open the store, start the admin endpoint, the MQTT subscriber and the ingest
//! thread, then wait for SIGINT/SIGTERM and shut down in order without losing a message.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::mqtt::MqttError;
use crate::store::{StateStore, StoreError};

mod alerting;
mod intake;

/// How long shutdown waits for the acks and the MQTT disconnect to go out.
const DISCONNECT_BOUND: Duration = Duration::from_secs(5);
/// How often the PostgreSQL state store is asked whether it answers (`/readyz`).
const STORE_HEALTH_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("MQTT: {0}")]
    Mqtt(#[from] MqttError),
    #[error("cannot listen on admin.listen {address}: {source}")]
    Admin {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Embedded(#[from] crate::mqtt::embedded::EmbeddedError),
    #[error("mqtt.url is null and poll is disabled: nothing would ever be received")]
    NoEventSource,
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the ingest thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// What `check` reports too: templates that do not compile, senders or API clients that
    /// cannot be built.
    #[error("configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<crate::config::Problem>),
}

/// What `run` builds from the configuration before anything starts, each failure a config
/// problem: the MQTT client's options (its TLS files), every sender and every Qlik Cloud
/// client, through the same functions `run` uses. No network. `check` runs it, so that a
/// configuration `check` accepts starts.
pub fn startup_problems(config: &Config) -> Vec<crate::config::Problem> {
    let mut problems = Vec::new();
    if let Some(mqtt) = &config.mqtt {
        if let Err(error) = crate::mqtt::client_options(mqtt) {
            problems.push(crate::config::Problem {
                path: "mqtt".to_owned(),
                message: error.to_string(),
            });
        }
    }
    let metrics = Arc::new(Metrics::default());
    if let Err(found) = crate::qlik::enrich::clients_for(config, &metrics) {
        problems.extend(found);
    }
    if let Err(found) = crate::notify::build_all(config) {
        problems.extend(found);
    }
    problems
}

/// What starts but will not work as the user likely expects: `check` prints these, `run` logs
/// them at start-up.
pub fn startup_warnings(config: &Config) -> Vec<crate::config::Problem> {
    let mut warnings = Vec::new();
    let shared = config
        .mqtt
        .as_ref()
        .is_some_and(|m| m.shared_group.is_some());
    // A shared PostgreSQL store (`state.url`) dedupes across instances and polls on one.
    if shared && config.poll.enabled && config.state.url.is_none() {
        warnings.push(crate::config::Problem {
            path: "mqtt.shared_group".to_owned(),
            message: "with poll.enabled, every instance of the group polls, and each remembers \
                      only its own alerts in its own state store: a failure the poll finds is \
                      alerted once per instance. Set poll.enabled: false on every instance but \
                      one, or share a PostgreSQL store (state.url)"
                .to_owned(),
        });
    }
    warnings
}

/// The daemon. Returns when a shutdown signal was handled.
pub async fn run(config: Config) -> Result<(), RunError> {
    let signals = signals()?;
    run_until(config, signals, |_| {}).await
}

/// The daemon until `stop` completes. `started` is called once everything runs, with the
/// metrics (the demo watches them to know when each stage is done).
pub async fn run_until(
    config: Config,
    stop: impl std::future::Future<Output = ()>,
    started: impl FnOnce(Arc<Metrics>),
) -> Result<(), RunError> {
    if config.mqtt.is_none() && !config.poll.enabled {
        return Err(RunError::NoEventSource);
    }
    for warning in startup_warnings(&config) {
        tracing::warn!(key = %warning.path, "{}", warning.message);
    }
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // Recovery notices and the console need to know which apps are failing; the set starts
    // from the store.
    let recovery = config.tracks_failing_apps();
    let state = StateStore::open(&config.state, recovery, config.recovery_enabled()).await?;
    let (purged, failing) = state.start_up(recovery).await?;
    let failing = Arc::new(crate::pipeline::FailingApps::new(failing));
    let store = state.ingest().await?;
    metrics.store_open.store(true, Ordering::Relaxed);
    if let Some(pg) = state.postgres() {
        tokio::spawn(crate::store::pg::watch_health(
            pg,
            metrics.clone(),
            STORE_HEALTH_EVERY,
            shutdown_rx.clone(),
        ));
    }
    tracing::info!(store = %state.describe(), expired_keys_purged = purged, "state store open");

    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let admin = match config.admin.listen {
        Some(address) => {
            // Its own connection, so a slow admin request never holds up the pipeline.
            let store = state.shared().await?;
            let admin = crate::admin::Admin {
                listen: address,
                token: config.admin.token.clone(),
                metrics: metrics.clone(),
                mqtt_expected: config.mqtt.is_some(),
                store,
                facts: crate::admin::Facts {
                    tenants: config.tenants.iter().map(|t| t.id.clone()).collect(),
                    destinations: config
                        .destinations
                        .iter()
                        .filter(|d| d.enabled)
                        .map(|d| d.name.clone())
                        .collect(),
                    mqtt_expected: config.mqtt.is_some(),
                },
                outbox_wake: outbox_wake.clone(),
            };
            Some(
                crate::admin::serve(admin, shutdown_rx.clone())
                    .await
                    .map_err(|source| RunError::Admin { address, source })?,
            )
        }
        None => None,
    };

    let alerting = alerting::start(
        &config,
        &state,
        &metrics,
        failing.clone(),
        outbox_wake,
        shutdown_rx.clone(),
    )
    .await?;

    let intake = match &config.mqtt {
        Some(mqtt) => Some(
            intake::MqttIntake::start(
                mqtt,
                store,
                &config,
                &metrics,
                alerting.jobs_committed.clone(),
                failing,
                shutdown_rx.clone(),
            )
            .await?,
        ),
        None => {
            drop(store);
            None
        }
    };
    tracing::info!(
        tenants = config.tenants.len(),
        mqtt = config
            .mqtt
            .as_ref()
            .map(|m| m.subscription())
            .unwrap_or_else(|| "off (polling only)".into()),
        poll = config.poll.enabled,
        "reload-butler running"
    );

    started(metrics.clone());
    stop.await;
    tracing::info!("shutting down: intake stopped, committing what is in flight");
    if let Some(intake) = &intake {
        intake.drain().await;
    }
    let _ = shutdown_tx.send(true);
    alerting.stop().await;
    metrics.store_open.store(false, Ordering::Relaxed);
    if let Some(intake) = intake {
        intake.disconnect().await;
    }
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(DISCONNECT_BOUND, admin).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A future that completes at SIGTERM or SIGINT. The handlers are installed now, so a signal
/// that arrives during start-up is not lost.
pub fn signals() -> Result<impl std::future::Future<Output = ()>, RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
        }
    })
}
