//! The outbox worker: the only place that sends, retries and backs off. One worker per
//! destination, so a slow or failing destination never delays the others.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::backoff::retry_delay;
use crate::config::DeliveryConfig;
use crate::config::Grouping;
use crate::metrics::{AlertOutcome, Metrics};
use crate::notify::{Notifier, Payload, Receipt, SendError, SendMeta};
use crate::render::notice::Digest;
use crate::render::Renderer;
use crate::store::health::StoreTrouble;
use crate::store::{
    now_ms, DueDelivery, DueWork, HeldGroup, HeldRow, Outcome, Release, SharedStore,
};

/// Sends in flight per destination.
const MAX_IN_FLIGHT: usize = 8;
/// Longest sleep between looks at the outbox when nothing wakes the worker.
const IDLE_POLL_MS: i64 = 5_000;
/// How often the pending gauge is counted while a destination's sends keep finishing.
const PENDING_GAUGE_EVERY: Duration = Duration::from_millis(250);
/// How long shutdown waits for sends in flight.
pub const DRAIN_BOUND: Duration = Duration::from_secs(10);
/// While every slot is sending, the claims on the rows in flight are renewed this often (a
/// shared store's lease is at least 5 s; each look for due rows renews them too).
const RENEW_EVERY: Duration = Duration::from_secs(2);

pub struct Worker {
    pub destination: String,
    pub notifier: Arc<Notifier>,
    pub store: SharedStore,
    pub metrics: Arc<Metrics>,
    pub delivery: DeliveryConfig,
    /// Storm grouping of this destination, if it has `group_window`.
    pub digests: Option<Digester>,
}

/// Turns closed groups of held alerts into one digest each (more than the threshold) or lets
/// them go one by one.
pub struct Digester {
    pub renderer: Arc<Renderer>,
    /// The destination's position in the config (the renderer's index).
    pub index: usize,
    pub grouping: Grouping,
    pub timezone: Option<crate::zone::Zone>,
}

impl Worker {
    /// Claims due rows, sends them, records their outcomes. An outcome that cannot be written
    /// stays in memory with its row kept busy: the row is never claimed (so never sent) again
    /// while its outcome is unwritten; only the write is retried, with backoff, and nothing new
    /// is claimed until it succeeds.
    pub async fn run(self, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut in_flight: JoinSet<(DueDelivery, Result<Receipt, SendError>)> = JoinSet::new();
        let mut busy: Vec<i64> = Vec::new();
        let mut unwritten: Vec<(i64, Outcome)> = Vec::new();
        let mut trouble = StoreTrouble::new(this.metrics.clone());
        // When the store may be tried again after an error.
        let mut retry_at = Instant::now();
        let mut renewed = Instant::now();
        let mut counted_at = Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let room = MAX_IN_FLIGHT - in_flight.len();
            let mut wait_ms = IDLE_POLL_MS;
            let store_due = Instant::now() >= retry_at;
            if !unwritten.is_empty() {
                if store_due {
                    match this
                        .record(&mut unwritten, &mut busy, &mut trouble, true)
                        .await
                    {
                        Some(retry_in) => retry_at = Instant::now() + retry_in,
                        None => continue,
                    }
                }
            } else if room == 0 && store_due && renewed.elapsed() >= RENEW_EVERY {
                // All slots sending: with a shared store, keep the claims on them.
                renewed = Instant::now();
                if let Err(error) = this.store.renew_claims(busy.clone()).await {
                    tracing::debug!(destination = %this.destination, %error, "cannot renew the claims on the rows in flight");
                }
            } else if room > 0 && store_due {
                renewed = Instant::now();
                let (name, skip) = (this.destination.clone(), busy.clone());
                let grouping = this.digests.is_some();
                let lookup = this.store.due_work(&name, room, skip, grouping).await;
                if lookup.is_ok() {
                    trouble.read_succeeded();
                }
                match lookup {
                    Ok(work) if !work.closed.is_empty() => {
                        if let Some(retry_in) = this.release(work.closed, &mut trouble).await {
                            retry_at = Instant::now() + retry_in;
                        }
                        continue;
                    }
                    Ok(DueWork {
                        due,
                        next_due_at: next,
                        ..
                    }) => {
                        if due.is_empty() {
                            // A past `next` is a row already in flight: its completion wakes us.
                            if let Some(next) = next.filter(|t| *t > now_ms()) {
                                wait_ms = (next - now_ms()).clamp(1, IDLE_POLL_MS);
                            }
                        } else {
                            wait_ms = 0;
                        }
                        for row in due {
                            busy.push(row.id);
                            let notifier = this.notifier.clone();
                            in_flight.spawn(async move {
                                let result = send(&notifier, &row).await;
                                (row, result)
                            });
                        }
                    }
                    Err(error) => {
                        let failed = trouble.read_failed();
                        retry_at = Instant::now() + failed.retry_in;
                        if let Some(left_out) = failed.log {
                            tracing::error!(destination = %this.destination, %error, retry_in = ?failed.retry_in, left_out, "cannot read the outbox");
                        }
                    }
                }
            }
            if room == 0 {
                // Back in time to renew the claims of the rows in flight.
                wait_ms = wait_ms.min(crate::domain::millis(RENEW_EVERY));
            }
            if let Some(left) = retry_at.checked_duration_since(Instant::now()) {
                wait_ms = wait_ms.min(left.as_millis().try_into().unwrap_or(i64::MAX).max(1));
            }
            if wait_ms == 0 && in_flight.len() < MAX_IN_FLIGHT {
                continue;
            }
            tokio::select! {
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    // Every send that has finished by now is recorded in one transaction.
                    let finished = std::iter::once(done)
                        .chain(std::iter::from_fn(|| in_flight.try_join_next()))
                        .filter_map(Result::ok);
                    unwritten.extend(finished.map(|(row, result)| (row.id, this.outcome(&row, result))));
                    if Instant::now() >= retry_at {
                        // The pending gauge is a count over the outbox: once a batch is done,
                        // and at most every PENDING_GAUGE_EVERY while sends keep finishing.
                        let count = in_flight.is_empty() || counted_at.elapsed() >= PENDING_GAUGE_EVERY;
                        if count {
                            counted_at = Instant::now();
                        }
                        if let Some(retry_in) = this.record(&mut unwritten, &mut busy, &mut trouble, count).await {
                            retry_at = Instant::now() + retry_in;
                        }
                    }
                }
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                _ = shutdown.changed() => {}
            }
        }
        let drain = async {
            while let Some(done) = in_flight.join_next().await {
                if let Ok((row, result)) = done {
                    unwritten.push((row.id, this.outcome(&row, result)));
                }
            }
            if !unwritten.is_empty() {
                this.record(&mut unwritten, &mut busy, &mut trouble, true)
                    .await;
            }
        };
        if tokio::time::timeout(DRAIN_BOUND, drain).await.is_err() {
            tracing::warn!(destination = %this.destination, "sends still in flight at shutdown stay pending and go out after restart");
        }
        if !unwritten.is_empty() {
            let ids: Vec<i64> = unwritten.iter().map(|(id, _)| *id).collect();
            tracing::error!(destination = %this.destination, ?ids, "outcomes not written at shutdown: these deliveries may be sent once more after restart");
        }
    }

    /// Releases closed groups of held alerts: a digest where more than the threshold gathered,
    /// each on its own otherwise.
    /// Returns how long to wait before the store is tried again when the release failed.
    async fn release(
        &self,
        groups: Vec<HeldGroup>,
        trouble: &mut StoreTrouble,
    ) -> Option<Duration> {
        let Some(digester) = &self.digests else {
            return None;
        };
        let mut releases = Vec::new();
        let mut digested = 0;
        for group in groups {
            let (items, others): (Vec<HeldRow>, Vec<HeldRow>) =
                group.rows.into_iter().partition(|r| r.item.is_some());
            releases.push(Release::Each(others.iter().map(|r| r.id).collect()));
            if items.len() <= digester.grouping.threshold {
                releases.push(Release::Each(items.iter().map(|r| r.id).collect()));
                continue;
            }
            let listed: Vec<serde_json::Value> =
                items.iter().filter_map(|r| r.item.clone()).collect();
            let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            let digest = Digest {
                items: &listed,
                threshold: digester.grouping.threshold,
                window: digester.grouping.window,
                first_at: at(items.iter().map(|r| r.created_at).min().unwrap_or_default()),
                last_at: at(items.iter().map(|r| r.created_at).max().unwrap_or_default()),
                timezone: digester.timezone.as_ref(),
            };
            let rendered = digester.renderer.render_digest(digester.index, &digest);
            let payload = Payload::encode_for(&rendered, &group.recipient);
            tracing::info!(destination = %self.destination, recipient = ?group.recipient, alerts = items.len(), "storm: one digest instead of single alerts");
            digested += items.len() - 1;
            releases.push(Release::Digest {
                carrier: items[0].id,
                payload,
                listed: items[1..].iter().map(|r| r.id).collect(),
            });
        }
        let digests = releases
            .iter()
            .filter(|r| matches!(r, Release::Digest { .. }))
            .count();
        match self.store.release_held(releases).await {
            Ok(()) => {
                self.wrote_again(trouble);
                self.metrics
                    .digests
                    .fetch_add(digests as u64, Ordering::Relaxed);
                self.metrics
                    .alerts_n(&self.destination, AlertOutcome::Digested, digested as u64);
                None
            }
            // The rows stay held and are looked at again on the next pass.
            Err(error) => {
                let failed = trouble.write_failed();
                if let Some(left_out) = failed.log {
                    tracing::error!(destination = %self.destination, %error, retry_in = ?failed.retry_in, left_out, "cannot release held alerts; will retry");
                }
                Some(failed.retry_in)
            }
        }
    }

    /// A write succeeded after failed ones: says so once.
    fn wrote_again(&self, trouble: &mut StoreTrouble) {
        if let Some(left_out) = trouble.write_succeeded() {
            tracing::info!(destination = %self.destination, left_out, "the state store takes writes again");
        }
    }

    /// Writes the outcomes of finished sends (one transaction for all of them), then (with
    /// `count`) the pending gauge; written rows are no longer busy. When the write fails the outcomes stay in
    /// `unwritten` and their rows busy, and this returns how long to wait before trying again.
    async fn record(
        &self,
        unwritten: &mut Vec<(i64, Outcome)>,
        busy: &mut Vec<i64>,
        trouble: &mut StoreTrouble,
        count: bool,
    ) -> Option<Duration> {
        let outcomes = unwritten.clone();
        let recorded = self.store.record_attempts(outcomes, count).await;
        match recorded {
            Ok(pending) => {
                self.wrote_again(trouble);
                busy.retain(|id| !unwritten.iter().any(|(row, _)| row == id));
                unwritten.clear();
                if let Some(pending) = pending {
                    self.metrics
                        .outbox_pending
                        .store(pending, Ordering::Relaxed);
                }
                None
            }
            // Never sent again while the outcome waits: the rows stay busy.
            Err(error) => {
                let failed = trouble.write_failed();
                if let Some(left_out) = failed.log {
                    let ids: Vec<i64> = unwritten.iter().map(|(id, _)| *id).collect();
                    tracing::error!(destination = %self.destination, ?ids, %error, retry_in = ?failed.retry_in, left_out, "cannot record the delivery outcomes; kept in memory, not sent again, retrying the write");
                }
                Some(failed.retry_in)
            }
        }
    }

    /// Turns a send result into the row's next state: delivered, retried later, or dead.
    fn outcome(&self, row: &DueDelivery, result: Result<Receipt, SendError>) -> Outcome {
        let now = now_ms();
        if let Err(SendError::Transient { reason, .. } | SendError::Permanent { reason }) = &result
        {
            self.metrics
                .destination_attempt(&row.destination, Err(reason));
        }
        let attempt = row.attempts + 1;
        let give_up_at = row
            .created_at
            .saturating_add(crate::domain::millis(self.delivery.give_up_after));
        match result {
            Ok(receipt) => {
                self.metrics
                    .alert(&row.destination, AlertOutcome::Delivered);
                self.metrics.destination_attempt(&row.destination, Ok(()));
                self.metrics
                    .delivery_seconds
                    .observe(Duration::from_millis((now - row.created_at).max(0) as u64));
                // Debug, not info: one line per delivery cost a storm ~2 % of its CPU; counted in
                // `alerts_total{outcome="delivered"}`.
                tracing::debug!(destination = %row.destination, job_id = row.job_id, recipient = ?row.recipient, attempt, detail = ?receipt.detail, "alert delivered");
                Outcome::Delivered {
                    detail: receipt.detail,
                }
            }
            Err(SendError::Transient {
                reason,
                retry_after,
            }) if now < give_up_at => {
                let backoff = retry_delay(
                    self.delivery.retry_initial,
                    self.delivery.retry_max,
                    attempt,
                );
                let delay = retry_after.map_or(backoff, |r| r.max(backoff));
                self.metrics.alert(&row.destination, AlertOutcome::Retried);
                tracing::warn!(destination = %row.destination, job_id = row.job_id, attempt, retry_in = ?delay, reason = ?reason, "delivery failed; will retry");
                Outcome::Retry {
                    next_attempt_at: now.saturating_add(crate::domain::millis(delay)),
                    error: reason,
                }
            }
            Err(SendError::Transient { reason, .. }) => {
                self.metrics.alert(&row.destination, AlertOutcome::Dead);
                let error = format!(
                    "gave up after {}: {reason}",
                    humantime::format_duration(self.delivery.give_up_after)
                );
                tracing::error!(destination = %row.destination, job_id = row.job_id, attempt, %error, "delivery dead");
                Outcome::Dead { error }
            }
            Err(SendError::Permanent { reason }) => {
                self.metrics.alert(&row.destination, AlertOutcome::Dead);
                tracing::error!(destination = %row.destination, job_id = row.job_id, attempt, reason = ?reason, "delivery dead: the service refused it");
                Outcome::Dead { error: reason }
            }
        }
    }
}

async fn send(notifier: &Notifier, row: &DueDelivery) -> Result<Receipt, SendError> {
    let meta = SendMeta {
        destination: &row.destination,
        app_id: &row.app_id,
        reload_id: &row.reload_id,
        job_id: row.job_id,
    };
    notifier.send_stored(&row.payload, &meta).await
}
