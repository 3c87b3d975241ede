//! Reconciliation: Qlik documents no retry for webhooks, so a delivery can be lost before it
//! reaches us. Every `poll.interval`, each tenant's Reloads API is asked for reloads that ended
//! in failure since the last look; each one not yet seen becomes a job through the same dedupe
//! as events (by reload id), so a failure that also came over MQTT alerts once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::domain::Failure;
use crate::metrics::{inc, Metrics};
use crate::qlik::api::QlikClient;
use crate::qlik::event::{EventKind, ReloadEvent, Status, RELOAD_FINISHED};
use crate::qlik::model::ReloadSummary;
use crate::store::{SharedStore, Written};

/// Reloads are looked for by creation time; one created this long before the watermark can
/// still have ended after it (Qlik Cloud stops reloads after a few hours).
const LONGEST_RELOAD: chrono::Duration = chrono::Duration::hours(6);
/// Each look overlaps the previous one by this much, for reloads the API lists late.
const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);
/// The lease that makes one instance at a time poll a shared store.
const POLL_LEASE: &str = "poll";
/// Pages of 100 reloads read per tenant and look, at most.
const MAX_PAGES: usize = 20;

pub struct Poller {
    pub config: Arc<Config>,
    pub clients: HashMap<String, Arc<QlikClient>>,
    pub store: SharedStore,
    pub metrics: Arc<Metrics>,
    pub jobs_committed: Arc<Notify>,
    /// Failures found here make their apps failing, for recovery notices.
    pub failing: Arc<crate::pipeline::FailingApps>,
}

/// The Reloads API statuses that `alert_on` asks for.
fn statuses(alert_on: &[Failure]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for failure in alert_on {
        let status = match failure {
            Failure::ReloadFailed => "FAILED",
            Failure::ReloadExceededLimit => "EXCEEDED_LIMIT",
            Failure::ReloadCanceled => "CANCELED",
            // Engine attempts and automation runs are not in the Reloads API.
            Failure::EngineAttemptFailed
            | Failure::AutomationFailed
            | Failure::AutomationExceededLimit => continue,
        };
        out.push(status);
    }
    out
}

impl Poller {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let statuses = statuses(&self.config.alert_on);
        if statuses.is_empty() {
            tracing::warn!("poll is enabled but alert_on names no final outcome (reload_failed, reload_exceeded_limit, reload_canceled): the poll has nothing to look for");
            return;
        }
        for tenant in &self.config.tenants {
            if !self.clients.contains_key(&tenant.id) {
                tracing::warn!(tenant_id = %tenant.id, "tenant has no credentials: not polled");
            }
        }
        // With a shared store one instance polls at a time; the others take over when its
        // lease runs out (it stopped or died).
        let lease = self.config.poll.interval + self.config.state.lease;
        let mut polling = false;
        loop {
            let turn = match self.store.hold_lease(POLL_LEASE, lease).await {
                Ok(turn) => turn,
                Err(error) => {
                    inc(&self.metrics.poll_errors);
                    tracing::warn!(%error, "cannot tell whose turn the poll is; trying again at the next interval");
                    false
                }
            };
            if turn != polling {
                polling = turn;
                match turn {
                    true => tracing::info!("this instance runs the poll"),
                    false => tracing::info!("another instance runs the poll"),
                }
            }
            for (tenant, client) in self.clients.iter().filter(|_| turn) {
                match self.poll_tenant(tenant, client, &statuses).await {
                    Ok(0) => tracing::debug!(tenant_id = %tenant, "poll found nothing new"),
                    Ok(found) => {
                        tracing::warn!(tenant_id = %tenant, found, "poll found failures no event had brought; alerting them now")
                    }
                    Err(error) => {
                        inc(&self.metrics.poll_errors);
                        tracing::warn!(tenant_id = %tenant, %error, "poll failed; trying again at the next interval");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll.interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        if polling {
            if let Err(error) = self.store.release_lease(POLL_LEASE).await {
                tracing::debug!(%error, "cannot let the poll's lease go; it runs out by itself");
            }
        }
    }

    /// One look at one tenant; returns how many failures became jobs.
    async fn poll_tenant(
        &self,
        tenant: &str,
        client: &QlikClient,
        statuses: &[&str],
    ) -> Result<usize, String> {
        let started = Utc::now();
        let watermark = self
            .store
            .poll_watermark(tenant)
            .await
            .map_err(|e| e.to_string())?
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_else(|| {
                started - chrono::Duration::from_std(self.config.poll.lookback).unwrap_or_default()
            });
        let reloads = client
            .failed_reloads(tenant, statuses, asked_from(watermark), MAX_PAGES)
            .await
            .map_err(|e| e.to_string())?;
        let events: Vec<(ReloadEvent, Failure)> = reloads
            .into_iter()
            .filter(|r| {
                r.info
                    .end_time
                    .or(r.info.creation_time)
                    .is_some_and(|t| t >= watermark)
            })
            .filter_map(|r| to_event(tenant, r))
            .filter(|(_, failure)| self.config.alert_on.contains(failure))
            .collect();
        let until = (started - OVERLAP).timestamp_millis();
        let apps: Vec<(String, String)> = events
            .iter()
            .map(|(e, _)| (e.tenant_id.clone(), e.app_id.clone()))
            .collect();
        let written = self
            .store
            .commit_poll(tenant, events, until)
            .await
            .map_err(|e| e.to_string())?;
        let mut found = 0;
        for (w, (tenant, app)) in written.iter().zip(&apps) {
            if matches!(w, Written::Job(_)) {
                found += 1;
                if self.config.tracks_failing_apps() {
                    self.failing.insert(tenant, app);
                }
            }
        }
        if found > 0 {
            self.metrics
                .poll_found
                .fetch_add(found as u64, Ordering::Relaxed);
            self.metrics
                .jobs_committed
                .fetch_add(found as u64, Ordering::Relaxed);
            self.jobs_committed.notify_one();
        }
        Ok(found)
    }
}

/// A reload from the list as the event it would have been: `reload.finished` with its outcome.
fn to_event(tenant: &str, r: ReloadSummary) -> Option<(ReloadEvent, Failure)> {
    let status_text = r.info.status.clone()?;
    let (status, failure) = match status_text.as_str() {
        "FAILED" => (Status::Failed, Failure::ReloadFailed),
        "EXCEEDED_LIMIT" => (Status::ExceededLimit, Failure::ReloadExceededLimit),
        "CANCELED" => (Status::Canceled, Failure::ReloadCanceled),
        _ => return None,
    };
    let duration_ms = match (r.info.start_time, r.info.end_time) {
        (Some(s), Some(e)) if e >= s => Some((e - s).num_milliseconds() as u64),
        _ => None,
    };
    let event = ReloadEvent {
        kind: EventKind::FinalOutcome,
        event_type: RELOAD_FINISHED.to_owned(),
        event_type_version: None,
        event_id: format!("poll:{}", r.id),
        event_time: r.info.end_time,
        source: Some("reload-butler/poll".to_owned()),
        tenant_id: tenant.to_owned(),
        app_id: r.app_id,
        reload_id: r.id,
        owner_id: None,
        user_id: r.info.user_id,
        space_id: None,
        status,
        status_text,
        app_name: None,
        trigger: r.info.trigger,
        error_code: r.info.error_code,
        error_message: r.info.error_message,
        start_time: r.info.start_time,
        end_time: r.info.end_time,
        duration_ms,
        is_session_app: None,
        is_partial_reload: r.info.partial,
        is_skip_store: None,
        is_direct_query_mode: None,
        ended_with_memory_constraint: None,
        row_limit: None,
        peak_memory_bytes: None,
        size_memory_bytes: None,
        usage: None,
        errors: Vec::new(),
        warnings: Vec::new(),
        resource_type: r.info.resource_type,
        resource_id: r.info.resource_id,
        weight: r.info.weight,
        is_test_run: None,
    };
    Some((event, failure))
}

/// Where the poll's look-up starts: a reload's longest run before the watermark, so one that
/// started before it and ended after is found. A watermark the store holds near the start of
/// time (a database edited by hand) cannot overflow the subtraction.
fn asked_from(watermark: DateTime<Utc>) -> DateTime<Utc> {
    watermark
        .checked_sub_signed(LONGEST_RELOAD)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_look_up_starts_a_reload_before_the_watermark_and_never_overflows() {
        let watermark = DateTime::from_timestamp_millis(1_765_000_000_000).expect("time");
        assert_eq!(asked_from(watermark), watermark - LONGEST_RELOAD);
        assert_eq!(
            asked_from(DateTime::<Utc>::MIN_UTC),
            DateTime::<Utc>::MIN_UTC
        );
        let edited = DateTime::<Utc>::MIN_UTC + chrono::Duration::hours(1);
        assert_eq!(asked_from(edited), DateTime::<Utc>::MIN_UTC);
    }
}
