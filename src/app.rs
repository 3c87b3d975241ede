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
    #[error(transparent)]
    Embedded(#[from] crate::mqtt::embedded::EmbeddedError),
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
    #[error("templates:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Templates(Vec<crate::config::Problem>),
    #[error("destination `{name}`: {source}")]
    Notifier {
        name: String,
        #[source]
        source: crate::notify::NotifyError,
    },
    #[error("tenant `{tenant}`: {source}")]
    Api {
        tenant: String,
        #[source]
        source: crate::qlik::api::ApiError,
    },
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

    let alerting = start_alerting(&config, &metrics, shutdown_rx.clone()).await?;

    if let crate::config::MqttEndpoint::Embedded { port } = mqtt.endpoint {
        tokio::task::spawn_blocking(move || crate::mqtt::embedded::start(port)).await??;
    }
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
    let ingest = Ingest::new(
        store,
        Rules::from_config(&config),
        metrics.clone(),
        alerting.jobs_committed.clone(),
    );
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

    started(metrics.clone());
    stop.await;
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
    let _ = shutdown_tx.send(true);
    alerting.stop().await;
    metrics.store_open.store(false, Ordering::Relaxed);
    let _ = tokio::time::timeout(DISCONNECT_BOUND, client.disconnect()).await;
    let _ = tokio::time::timeout(DISCONNECT_BOUND, mqtt_task).await;
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(DISCONNECT_BOUND, admin).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The alerting half of the daemon: the router and one outbox worker per destination.
struct Alerting {
    jobs_committed: Arc<tokio::sync::Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Alerting {
    /// Waits for the router and the workers to stop (they drain their sends, bounded).
    async fn stop(self) {
        let bound = crate::outbox::DRAIN_BOUND + Duration::from_secs(2);
        for task in self.tasks {
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::warn!("an alerting task did not stop in time");
            }
        }
    }
}

async fn start_alerting(
    config: &Config,
    metrics: &Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<Alerting, RunError> {
    use std::collections::HashMap;

    let config = Arc::new(config.clone());
    let renderer = Arc::new(crate::render::Renderer::new(&config).map_err(RunError::Templates)?);
    let path = config.state.path.clone();
    let ttl = config.state.dedupe_ttl;
    let store = crate::store::SharedStore::new(
        tokio::task::spawn_blocking(move || Store::open(&path, ttl)).await??,
    );
    let mut clients = HashMap::new();
    if config.enrich.enabled {
        for tenant in &config.tenants {
            let client = crate::qlik::enrich::client_for(tenant, &config.enrich, metrics.clone())
                .map_err(|source| RunError::Api {
                tenant: tenant.id.clone(),
                source,
            })?;
            if let Some(client) = client {
                clients.insert(tenant.id.clone(), Arc::new(client));
            }
        }
    }
    let enabled: Vec<_> = config.destinations.iter().filter(|d| d.enabled).collect();
    metrics.register_destinations(enabled.iter().map(|d| d.name.as_str()));
    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let jobs_committed = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for d in &enabled {
        let notifier =
            crate::notify::Notifier::for_destination(d, config.delivery.dry_run_dir.as_deref())
                .map_err(|source| RunError::Notifier {
                    name: d.name.clone(),
                    source,
                })?;
        let worker = crate::outbox::Worker {
            destination: d.name.clone(),
            notifier: Arc::new(notifier),
            store: store.clone(),
            metrics: metrics.clone(),
            delivery: config.delivery.clone(),
        };
        tasks.push(tokio::spawn(
            worker.run(outbox_wake.clone(), shutdown.clone()),
        ));
    }
    if let Some(dir) = &config.delivery.dry_run_dir {
        tracing::warn!(dir = %dir.display(), "delivery.dry_run_dir is set: alerts are written there, not sent");
    }
    tasks.push(tokio::spawn(maintain(
        store.clone(),
        config.delivery.retention,
        shutdown.clone(),
    )));
    let router = Arc::new(crate::pipeline::route::Router {
        config,
        renderer,
        clients,
        store,
        metrics: metrics.clone(),
    });
    tasks.push(tokio::spawn(crate::pipeline::route::run(
        router,
        jobs_committed.clone(),
        outbox_wake,
        shutdown,
    )));
    Ok(Alerting {
        jobs_committed,
        tasks,
    })
}

/// Deletes history past `delivery.retention`, at start and then hourly.
async fn maintain(
    store: crate::store::SharedStore,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let retention_ms = retention.as_millis() as i64;
    loop {
        match store.call(move |s| s.purge_history(retention_ms)).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "history past delivery.retention deleted"),
            Err(error) => tracing::warn!(%error, "cannot purge old history"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
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
