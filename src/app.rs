//! Wiring of `run`: open the store, start the admin endpoint, the MQTT subscriber and the ingest
//! thread, then wait for SIGINT/SIGTERM and shut down in order without losing a message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::mqtt::{subscriber, MqttError};
use crate::pipeline::{run_batches, Ingest, Rules};
use crate::store::{Store, StoreError};

/// How long shutdown waits for the ingest thread to commit what it holds.
const DRAIN_BOUND: Duration = Duration::from_secs(15);
/// How long shutdown waits for the acks and the MQTT disconnect to go out.
const DISCONNECT_BOUND: Duration = Duration::from_secs(5);

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
    #[error(
        "mqtt.url is null, but polling without MQTT is not available in this version; set mqtt.url"
    )]
    NoEventSource,
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the ingest thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The daemon. Returns when a shutdown signal was handled.
pub async fn run(config: Config) -> Result<(), RunError> {
    let mqtt = config.mqtt.clone().ok_or(RunError::NoEventSource)?;
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let store_path = config.state.path.clone();
    let dedupe_ttl = config.state.dedupe_ttl;
    let mut store =
        tokio::task::spawn_blocking(move || Store::open(&store_path, dedupe_ttl)).await??;
    let purged = store.purge_expired_keys()?;
    metrics.store_open.store(true, Ordering::Relaxed);
    tracing::info!(path = %config.state.path.display(), expired_keys_purged = purged, "state store open");

    let admin = match config.admin.listen {
        Some(address) => Some(
            crate::admin::serve(address, metrics.clone(), true, shutdown_rx.clone())
                .await
                .map_err(|source| RunError::Admin { address, source })?,
        ),
        None => None,
    };

    let (client, eventloop) = subscriber::connect(&mqtt)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let intake: subscriber::Intake = Arc::new(Mutex::new(Some(tx)));
    let mqtt_task = tokio::spawn(subscriber::run(
        eventloop,
        client.clone(),
        mqtt.subscription(),
        intake.clone(),
        metrics.clone(),
        shutdown_rx.clone(),
    ));

    let stopping = Arc::new(AtomicBool::new(false));
    let ingest = Ingest::new(store, Rules::from_config(&config), metrics.clone());
    let pipeline = {
        let stopping = stopping.clone();
        let client = client.clone();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                run_batches(
                    ingest,
                    rx,
                    |publish| {
                        if let Err(error) = runtime.block_on(client.ack(publish)) {
                            tracing::warn!(%error, "ack not queued; the broker will redeliver");
                        }
                    },
                    &stopping,
                );
            })
            .map_err(RunError::Thread)?
    };
    if config.poll.enabled {
        tracing::warn!("poll.enabled is set, but reconciliation polling is not available in this version; failures arrive over MQTT only");
    }
    tracing::info!(
        tenants = config.tenants.len(),
        topic = %mqtt.subscription(),
        "reload-butler running"
    );

    wait_for_signal().await?;
    tracing::info!("shutting down: intake stopped, committing what is in flight");
    stopping.store(true, Ordering::Relaxed);
    if let Ok(mut sender) = intake.lock() {
        sender.take();
    }
    let drained = tokio::time::timeout(
        DRAIN_BOUND,
        tokio::task::spawn_blocking(move || pipeline.join()),
    )
    .await;
    if drained.is_err() {
        tracing::warn!(bound = ?DRAIN_BOUND, "ingest did not finish in time; unacked messages will be redelivered");
    }
    metrics.store_open.store(false, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(DISCONNECT_BOUND, client.disconnect()).await;
    let _ = tokio::time::timeout(DISCONNECT_BOUND, mqtt_task).await;
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(DISCONNECT_BOUND, admin).await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> Result<(), RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
    }
    Ok(())
}
