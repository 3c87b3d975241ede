//! The ingest pipeline, top to bottom: decode → tenant filter → failure filter → dedupe → commit
//! job → ack. A message is acknowledged only after its batch is committed (or it was judged
//! irrelevant or malformed, which is committed too: dead letters), so a crash before the commit
//! makes the broker deliver it again.

pub mod gate;
pub mod route;
pub mod routing;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::Config;
use crate::domain::Failure;
use crate::metrics::{inc, DropReason, Label, Metrics};
use crate::qlik::event::{decode, DecodeError, Disposal, ReloadEvent};
use crate::store::health::StoreTrouble;
use crate::store::{IngestStore, Record, StoreError, Written};

/// At most this many messages are committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// How often expired dedupe keys are deleted (checked after a batch).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// What the pipeline needs to know of a message, whatever brought it.
pub trait Message {
    fn topic(&self) -> &str;
    fn payload(&self) -> &[u8];
}

/// Which events deserve an alert.
#[derive(Debug, Clone)]
pub struct Rules {
    pub monitored_tenants: HashSet<String>,
    pub alert_on: Vec<Failure>,
    pub include_session_apps: bool,
    pub include_automation_test_runs: bool,
    /// Failing apps are tracked (recovery notices, the console): successful reloads of failing
    /// apps matter.
    pub recovery: bool,
}

impl Rules {
    pub fn from_config(config: &Config) -> Self {
        Self {
            monitored_tenants: config.tenants.iter().map(|t| t.id.clone()).collect(),
            alert_on: config.alert_on.clone(),
            include_session_apps: config.include_session_apps,
            include_automation_test_runs: config.include_automation_test_runs,
            recovery: config.tracks_failing_apps(),
        }
    }
}

/// Apps whose last known reload failed, by tenant: a successful reload of one of them is looked
/// up in the store (it may end a failing streak); any other success is dropped without I/O.
/// The store's `failing_apps` table is the truth; this is its cheap front door.
#[derive(Debug, Default)]
pub struct FailingApps(Mutex<HashMap<String, HashSet<String>>>);

impl FailingApps {
    pub fn new(apps: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map: HashMap<String, HashSet<String>> = HashMap::new();
        for (tenant, app) in apps {
            map.entry(tenant).or_default().insert(app);
        }
        Self(Mutex::new(map))
    }

    pub fn contains(&self, tenant: &str, app: &str) -> bool {
        self.0
            .lock()
            .map(|m| m.get(tenant).is_some_and(|apps| apps.contains(app)))
            .unwrap_or(true)
    }

    pub fn insert(&self, tenant: &str, app: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.entry(tenant.to_owned())
                .or_default()
                .insert(app.to_owned());
        }
    }

    pub fn remove(&self, tenant: &str, app: &str) {
        if let Ok(mut m) = self.0.lock() {
            if let Some(apps) = m.get_mut(tenant) {
                apps.remove(app);
            }
        }
    }
}

/// The pipeline's judgement of one payload, before anything is written.
#[derive(Debug)]
pub enum Verdict {
    Alert {
        event: Box<ReloadEvent>,
        failure: Failure,
    },
    Drop {
        reason: DropReason,
        event: Box<ReloadEvent>,
    },
    /// Cannot be parsed: a dead letter.
    Malformed(DecodeError),
    /// Parsed, but of a type or with a value we do not alert on: dropped and counted.
    Ignored {
        reason: DropReason,
        error: DecodeError,
    },
}

/// Decode, then the tenant filter, then the failure filter. Pure: no I/O.
pub fn judge(payload: &[u8], rules: &Rules) -> Verdict {
    let event = match decode(payload) {
        Ok(event) => Box::new(event),
        Err(error) => {
            return match error.disposal() {
                Disposal::DeadLetter(_) => Verdict::Malformed(error),
                Disposal::Drop(reason) => Verdict::Ignored { reason, error },
            }
        }
    };
    let reason = if !rules.monitored_tenants.contains(&event.tenant_id) {
        DropReason::UnmonitoredTenant
    } else {
        match event.failure() {
            None => DropReason::Succeeded,
            Some(failure) if !rules.alert_on.contains(&failure) => DropReason::NotInAlertOn,
            Some(_) if event.is_session_app == Some(true) && !rules.include_session_apps => {
                DropReason::SessionApp
            }
            Some(_) if event.is_test_run == Some(true) && !rules.include_automation_test_runs => {
                DropReason::AutomationTestRun
            }
            Some(failure) => return Verdict::Alert { event, failure },
        }
    };
    Verdict::Drop { reason, event }
}

/// The stateful part of ingest: dedupe and commit, with the metrics and logs of each outcome.
pub struct Ingest {
    store: IngestStore,
    rules: Rules,
    metrics: Arc<Metrics>,
    /// Tenants already warned about (by hash: a sender chooses an id's length), so a busy
    /// foreign tenant logs one warning, not thousands.
    warned_tenants: HashSet<u64>,
    tenant_hasher: std::collections::hash_map::RandomState,
    /// Woken after a commit that added jobs: the router takes them from there.
    jobs_committed: Arc<tokio::sync::Notify>,
    failing: Arc<FailingApps>,
}

impl Ingest {
    pub fn new(
        store: impl Into<IngestStore>,
        rules: Rules,
        metrics: Arc<Metrics>,
        jobs_committed: Arc<tokio::sync::Notify>,
        failing: Arc<FailingApps>,
    ) -> Self {
        Self {
            store: store.into(),
            rules,
            metrics,
            warned_tenants: HashSet::new(),
            tenant_hasher: std::collections::hash_map::RandomState::new(),
            jobs_committed,
            failing,
        }
    }

    /// Whether a successful reload may end a failing streak (`batch`: failures of this batch).
    fn may_recover(&self, event: &ReloadEvent, batch: &[(&str, &str)]) -> bool {
        self.rules.recovery
            && (batch.contains(&(event.tenant_id.as_str(), event.app_id.as_str()))
                || self.failing.contains(&event.tenant_id, &event.app_id))
    }

    /// Judges and commits a batch. `Ok` means every message of the batch may be acked.
    pub fn process<M: Message>(&mut self, batch: &[M]) -> Result<(), StoreError> {
        let verdicts: Vec<Verdict> = batch
            .iter()
            .map(|m| judge(m.payload(), &self.rules))
            .collect();
        // One record at most per message; `recorded[i]` says whether message i has one.
        let mut records: Vec<Record> = Vec::new();
        let mut recorded = Vec::with_capacity(batch.len());
        let mut failing_in_batch: Vec<(&str, &str)> = Vec::new();
        for (message, verdict) in batch.iter().zip(&verdicts) {
            let record = match verdict {
                Verdict::Alert { event, failure } => {
                    if self.rules.recovery {
                        failing_in_batch.push((&event.tenant_id, &event.app_id));
                    }
                    Some(Record::Job {
                        event,
                        failure: *failure,
                        topic: message.topic(),
                    })
                }
                Verdict::Drop {
                    reason: DropReason::Succeeded,
                    event,
                } if self.may_recover(event, &failing_in_batch) => Some(Record::Recovery {
                    event,
                    topic: message.topic(),
                }),
                // A failure that raises no alert here still names its app for later alerts.
                Verdict::Drop {
                    reason: DropReason::NotInAlertOn | DropReason::SessionApp,
                    event,
                } if event.app_name.is_some() => Some(Record::AppName {
                    tenant: &event.tenant_id,
                    app: &event.app_id,
                    name: event.app_name.as_deref().unwrap_or_default(),
                }),
                Verdict::Malformed(error) => Some(Record::DeadLetter {
                    topic: message.topic(),
                    payload: message.payload(),
                    reason: error.reason(),
                    detail: error.to_string(),
                }),
                Verdict::Drop { .. } | Verdict::Ignored { .. } => None,
            };
            recorded.push(record.is_some());
            records.extend(record);
        }
        let written = if records.is_empty() {
            Vec::new()
        } else {
            self.store.write(&records)?
        };
        // Committed: now count and log, once per message.
        let mut written = written.into_iter();
        for ((message, verdict), has_record) in batch.iter().zip(&verdicts).zip(recorded) {
            let written = if has_record { written.next() } else { None };
            match verdict {
                Verdict::Alert { event, failure } => {
                    inc(&self.metrics.decoded);
                    self.report_alert(event, *failure, written);
                }
                Verdict::Ignored { reason, error } => {
                    self.metrics.dropped.inc(*reason);
                    tracing::debug!(
                        topic = message.topic(),
                        reason = reason.as_str(),
                        detail = %error,
                        "event of a type or with a value that raises no alert; dropped"
                    );
                }
                Verdict::Malformed(error) => {
                    if let Disposal::DeadLetter(label) = error.disposal() {
                        self.metrics.dead_letters.inc(label);
                    }
                    tracing::warn!(
                        topic = message.topic(),
                        bytes = message.payload().len(),
                        reason = error.reason(),
                        error = %error,
                        "malformed message kept as dead letter"
                    );
                }
                Verdict::Drop { reason, event } => {
                    inc(&self.metrics.decoded);
                    self.metrics.dropped.inc(*reason);
                    match written {
                        Some(Written::Recovery(job_id)) => {
                            self.failing.remove(&event.tenant_id, &event.app_id);
                            inc(&self.metrics.recoveries);
                            self.jobs_committed.notify_one();
                            tracing::info!(job_id, tenant_id = ?event.tenant_id, app_id = ?event.app_id, reload_id = ?event.reload_id, "failing app reloaded successfully; recovery recorded");
                        }
                        Some(Written::AppName) | None => self.report_drop(*reason, event),
                        Some(_) => self.failing.remove(&event.tenant_id, &event.app_id),
                    }
                }
            }
        }
        Ok(())
    }

    fn report_alert(&self, event: &ReloadEvent, failure: Failure, written: Option<Written>) {
        match written {
            Some(Written::Job(job_id)) => {
                inc(&self.metrics.jobs_committed);
                if self.rules.recovery {
                    self.failing.insert(&event.tenant_id, &event.app_id);
                }
                self.jobs_committed.notify_one();
                tracing::info!(
                    job_id,
                    tenant_id = ?event.tenant_id,
                    app_id = ?event.app_id,
                    app_name = event.app_name.as_deref().unwrap_or(""),
                    reload_id = ?event.reload_id,
                    failure = failure.as_str(),
                    "reload failure committed as job"
                );
            }
            Some(Written::Duplicate { job_id }) => {
                inc(&self.metrics.duplicates);
                tracing::debug!(
                    job_id,
                    event_id = %event.event_id,
                    reload_id = ?event.reload_id,
                    "duplicate of an event already committed"
                );
            }
            Some(_) | None => {}
        }
    }

    fn report_drop(&mut self, reason: DropReason, event: &ReloadEvent) {
        if reason == DropReason::UnmonitoredTenant
            && self.warned_tenants.len() < 1000
            && self
                .warned_tenants
                .insert(self.tenant_hasher.hash_one(&event.tenant_id))
        {
            let shown: String = event.tenant_id.chars().take(64).collect();
            tracing::warn!(
                tenant_id = ?shown,
                "event from a tenant that is not in `tenants:`; its events are dropped (warned once per tenant)"
            );
            return;
        }
        tracing::debug!(
            reason = reason.as_str(),
            tenant_id = ?event.tenant_id,
            reload_id = ?event.reload_id,
            "event needs no alert"
        );
    }
}

/// Runs on its own thread: takes messages in batches, commits each batch, then acks its
/// messages. A failed commit is retried with backoff and nothing is acked until it succeeds; at
/// shutdown (`stopping`) an uncommitted batch is left unacked for the broker to redeliver.
pub fn run_batches<M: Message>(
    mut ingest: Ingest,
    mut rx: UnboundedReceiver<M>,
    mut ack: impl FnMut(&M),
    stopping: &AtomicBool,
) {
    let mut last_purge = Instant::now();
    let mut trouble = StoreTrouble::new(ingest.metrics.clone());
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        loop {
            match ingest.process(&batch) {
                Ok(()) => {
                    if let Some(left_out) = trouble.write_succeeded() {
                        tracing::info!(left_out, "the state store takes commits again");
                    }
                    batch.iter().for_each(&mut ack);
                    break;
                }
                Err(error) => {
                    let failed = trouble.write_failed();
                    if stopping.load(Ordering::Relaxed) {
                        tracing::error!(%error, messages = batch.len(), "commit failed during shutdown; messages left unacked for redelivery");
                        return;
                    }
                    if let Some(left_out) = failed.log {
                        tracing::error!(%error, messages = batch.len(), retry_in = ?failed.retry_in, left_out, "commit failed; messages not acked, retrying");
                    }
                    std::thread::sleep(failed.retry_in);
                }
            }
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            match ingest.store.purge_expired_keys() {
                Ok(purged) => tracing::debug!(purged, "expired dedupe keys purged"),
                Err(error) => tracing::warn!(%error, "cannot purge expired dedupe keys"),
            }
        }
    }
}
