//! The routing loop: takes the jobs waiting in the store, routes up to [`CONCURRENT_JOBS`] at once
//! (`route.rs` makes each job's outbox rows), records them, and wakes the outbox workers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::route::Router;
use crate::metrics::AlertOutcome;
use crate::store::health::StoreTrouble;
use crate::store::{JobRow, NewState, StoreError};

/// Jobs routed at once; enrichment waits on the network, so they overlap.
const CONCURRENT_JOBS: usize = 32;
/// How often the router looks for jobs when nobody woke it (a safety net, not the main path).
const IDLE_POLL: Duration = Duration::from_secs(5);

/// The routing loop: whenever woken (a job was committed) or every few seconds, routes the jobs
/// waiting in the store, then wakes the outbox workers. When the store fails it pauses with
/// backoff (the jobs stay `new`), so a full disk is no busy loop.
pub async fn run(
    router: Arc<Router>,
    wake: Arc<Notify>,
    outbox: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut trouble = StoreTrouble::new(router.metrics.clone());
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut pause = None;
        let jobs = match router.store.unrouted_jobs(CONCURRENT_JOBS).await {
            Ok(jobs) => {
                trouble.read_succeeded();
                jobs
            }
            Err(error) => {
                let failed = trouble.read_failed();
                if let Some(left_out) = failed.log {
                    tracing::error!(%error, retry_in = ?failed.retry_in, left_out, "cannot read jobs from the state store");
                }
                pause = Some(failed.retry_in);
                Vec::new()
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = wake.notified(), if pause.is_none() => {}
                _ = tokio::time::sleep(pause.unwrap_or(IDLE_POLL)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let mut batch = JoinSet::new();
        for job in jobs {
            batch.spawn(route(router.clone(), job));
        }
        let (mut routed, mut unrouted) = (0, Vec::new());
        while let Some(done) = batch.join_next().await {
            match done {
                Ok(Ok(())) => routed += 1,
                Ok(Err(failed)) => unrouted.push(failed),
                Err(_) => {}
            }
        }
        if let Some((job_id, error)) = unrouted.first() {
            let failed = trouble.write_failed();
            if let Some(left_out) = failed.log {
                let jobs = unrouted.len();
                tracing::error!(job_id, jobs, %error, retry_in = ?failed.retry_in, left_out, "cannot record the jobs' deliveries; will retry");
            }
            pause = Some(failed.retry_in);
        } else if let Some(left_out) = trouble.write_succeeded() {
            tracing::info!(left_out, "the state store takes the routed jobs again");
        }
        if routed > 0 {
            if let Ok(pending) = router.store.pending_count().await {
                router
                    .metrics
                    .outbox_pending
                    .store(pending, std::sync::atomic::Ordering::Relaxed);
            }
            outbox.notify_waiters();
        }
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Routes one job: builds its rows and records them (and the job's new state) atomically.
/// When that write fails the job stays `new`, to be routed again by the loop after a pause.
async fn route(router: Arc<Router>, job: JobRow) -> Result<(), (i64, StoreError)> {
    let deliveries = router.deliveries(&job).await;
    let job_id = job.id;
    match router.store.route_job(job_id, deliveries).await {
        Ok(recorded) => {
            let pending = recorded
                .iter()
                .filter(|d| d.state == NewState::Pending)
                .count();
            for d in &recorded {
                match &d.state {
                    NewState::Pending => {}
                    NewState::Suppressed(reason) => {
                        router
                            .metrics
                            .alert(&d.destination, AlertOutcome::Suppressed);
                        tracing::info!(job_id, destination = %d.destination, recipient = ?d.recipient, reason = ?reason, "alert suppressed");
                    }
                    NewState::Silenced(reason) => {
                        router.metrics.alert(&d.destination, AlertOutcome::Silenced);
                        tracing::info!(job_id, destination = %d.destination, reason = ?reason, "alert silenced");
                    }
                    NewState::Dead(reason) => {
                        router.metrics.alert(&d.destination, AlertOutcome::Dead);
                        tracing::error!(job_id, destination = %d.destination, reason = ?reason, "alert dead before sending");
                    }
                }
            }
            tracing::debug!(job_id, app_id = ?job.event.app_id, deliveries = pending, "alert routed");
            Ok(())
        }
        Err(error) => Err((job_id, error)),
    }
}
