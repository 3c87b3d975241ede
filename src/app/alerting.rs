//! The alerting half of `run`: the router, one outbox worker per destination, the
//! reconciliation poll, the credential watch, and history upkeep.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::RunError;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::silence::SilenceKey;
use crate::store::StateStore;

/// The alerting half of the daemon: the router and one outbox worker per destination.
pub(super) struct Alerting {
    pub(super) jobs_committed: Arc<tokio::sync::Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Alerting {
    /// Waits for the router and the workers to stop (they drain their sends, bounded).
    pub(super) async fn stop(self) {
        let bound = crate::outbox::DRAIN_BOUND + Duration::from_secs(2);
        for task in self.tasks {
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::warn!("an alerting task did not stop in time");
            }
        }
    }
}

pub(super) async fn start(
    config: &Config,
    state: &StateStore,
    metrics: &Arc<Metrics>,
    failing: Arc<crate::pipeline::FailingApps>,
    outbox_wake: Arc<tokio::sync::Notify>,
    shutdown: watch::Receiver<bool>,
) -> Result<Alerting, RunError> {
    let config = Arc::new(config.clone());
    let renderer = Arc::new(crate::render::Renderer::new(&config).map_err(RunError::Config)?);
    let store = state.shared().await?;
    // API clients serve enrichment and the reconciliation poll.
    let clients = crate::qlik::enrich::clients_for(&config, metrics).map_err(RunError::Config)?;
    let notifiers = crate::notify::build_all(&config).map_err(RunError::Config)?;
    let enabled: Vec<_> = config.destinations.iter().filter(|d| d.enabled).collect();
    metrics.register_destinations(enabled.iter().map(|d| d.name.as_str()));
    let jobs_committed = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for (index, notifier) in notifiers {
        let d = &config.destinations[index];
        let worker = crate::outbox::Worker {
            destination: d.name.clone(),
            notifier: Arc::new(notifier),
            store: store.clone(),
            metrics: metrics.clone(),
            delivery: config.delivery.clone(),
            digests: d.grouping.map(|grouping| crate::outbox::Digester {
                renderer: renderer.clone(),
                index,
                grouping,
                timezone: config.timezone.clone(),
            }),
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
    tasks.push(tokio::spawn(resend_after_silences(
        store.clone(),
        config.clone(),
        jobs_committed.clone(),
        shutdown.clone(),
    )));
    if config.poll.enabled {
        let poller = crate::poll::Poller {
            config: config.clone(),
            clients: clients.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            jobs_committed: jobs_committed.clone(),
            failing,
        };
        tasks.push(tokio::spawn(poller.run(shutdown.clone())));
    }
    if !clients.is_empty() {
        let watch = crate::credential_watch::CredentialWatch {
            config: config.clone(),
            renderer: renderer.clone(),
            clients: clients.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            outbox_wake: outbox_wake.clone(),
        };
        tasks.push(tokio::spawn(watch.run(shutdown.clone())));
    }
    let router = Arc::new(crate::pipeline::route::Router {
        clients: if config.enrich.enabled {
            clients
        } else {
            HashMap::new()
        },
        config,
        renderer,
        store,
        metrics: metrics.clone(),
    });
    tasks.push(tokio::spawn(crate::pipeline::routing::run(
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

/// How often ended silences are looked for, to resend what they silenced.
const RESEND_CHECK: Duration = Duration::from_secs(5);

/// When a silence with `resend_after_silence` (or `silence add --resend`) has ended, the alerts
/// it silenced are routed again: silences, rate limits and digests apply as for new ones.
async fn resend_after_silences(
    store: crate::store::SharedStore,
    config: Arc<Config>,
    jobs_committed: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let resent = resend_ended(&store, &config).await;
        match resent {
            Ok(resent) => {
                for (jobs, silence) in resent.iter().filter(|(jobs, _)| *jobs > 0) {
                    tracing::info!(%silence, jobs, "silence ended; resending the alerts it silenced");
                }
                if !resent.is_empty() {
                    jobs_committed.notify_one();
                }
            }
            Err(error) => tracing::warn!(%error, "cannot look for ended silences"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RESEND_CHECK) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

/// Resends what each ended silence silenced; returns (jobs routed again, silence key) per key.
async fn resend_ended(
    store: &crate::store::SharedStore,
    config: &Config,
) -> Result<Vec<(usize, String)>, crate::store::StoreError> {
    let keys = store.resend_keys().await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let stored = store.silences(true).await?;
    let now = chrono::Utc::now();
    let mut resent = Vec::new();
    for text in keys {
        let ended = SilenceKey::parse(&text).is_none_or(|key| {
            !key.in_force(&config.silences, &stored, now, config.timezone.as_ref())
        });
        if ended {
            resent.push((store.resend_silenced(&text).await?, text));
        }
    }
    Ok(resent)
}

/// Deletes history past `delivery.retention`, at start and then hourly.
async fn maintain(
    store: crate::store::SharedStore,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let retention_ms = crate::domain::millis(retention);
    loop {
        match store.purge_history(retention_ms).await {
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
