//! The alerting half of `run`: the router, one outbox worker per destination, the
//! reconciliation poll, and history upkeep.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::RunError;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;

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
    metrics: &Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<Alerting, RunError> {
    let config = Arc::new(config.clone());
    let renderer = Arc::new(crate::render::Renderer::new(&config).map_err(RunError::Templates)?);
    let path = config.state.path.clone();
    let ttl = config.state.dedupe_ttl;
    let store = crate::store::SharedStore::new(
        tokio::task::spawn_blocking(move || Store::open(&path, ttl)).await??,
    )?;
    // API clients serve enrichment and the reconciliation poll.
    let mut clients = HashMap::new();
    if config.enrich.enabled || config.poll.enabled {
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
    if config.poll.enabled {
        let poller = crate::poll::Poller {
            config: config.clone(),
            clients: clients.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            jobs_committed: jobs_committed.clone(),
        };
        tasks.push(tokio::spawn(poller.run(shutdown.clone())));
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
