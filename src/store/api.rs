//! What the alerting half, the admin endpoint and the CLI may ask of the shared store: one
//! typed method per question or write, so no caller outside `store/` sees a connection, SQL or
//! a transaction. With SQLite each method is one call on the store thread (one transaction
//! where it writes), so what was atomic stays atomic; with PostgreSQL it is the same question
//! asked of the pool (`pg/`), under the same transaction boundaries.

use crate::config::Matcher;
use crate::domain::Failure;
use crate::qlik::event::ReloadEvent;

use super::{
    AlertFilter, AlertRow, DueDelivery, FailingApp, HeldGroup, JobRow, NewDelivery, NewNotice,
    Outcome, Release, Resend, SharedStore, SilenceFilter, StoreError, StoredSilence, Written,
};

/// What an outbox worker looks at on each pass.
#[derive(Debug, Default)]
pub struct DueWork {
    /// Pending deliveries that are due, oldest first.
    pub due: Vec<DueDelivery>,
    /// When the next pending delivery is due or held group closes.
    pub next_due_at: Option<i64>,
    /// Held groups whose window has closed (asked for only when grouping).
    pub closed: Vec<HeldGroup>,
}

/// A silence to store, already validated (`silence::add`).
#[derive(Debug, Clone)]
pub struct SilenceRow {
    pub matcher: Matcher,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub resend: bool,
}

type Result<T> = std::result::Result<T, StoreError>;

impl SharedStore {
    // The poll.

    pub async fn poll_watermark(&self, tenant: &str) -> Result<Option<i64>> {
        if let Some(pg) = self.pg() {
            return pg.poll_watermark(tenant).await;
        }
        let tenant = tenant.to_owned();
        self.call(move |s| s.poll_watermark(&tenant)).await
    }

    /// Writes what a poll found as jobs (deduplicated like ingest) and moves the tenant's
    /// watermark to `until`, in one call.
    pub async fn commit_poll(
        &self,
        tenant: &str,
        events: Vec<(ReloadEvent, Failure)>,
        until: i64,
    ) -> Result<Vec<Written>> {
        if let Some(pg) = self.pg() {
            return pg.commit_poll(tenant, &events, until).await;
        }
        let tenant = tenant.to_owned();
        self.call(move |s| {
            let written = s.write(&super::polled(&events))?;
            s.set_poll_watermark(&tenant, until)?;
            Ok(written)
        })
        .await
    }

    /// Takes or renews the named lease (work that one instance at a time does, such as the
    /// poll) for `ttl`; returns whether this instance holds it. A SQLite file has one daemon,
    /// which always holds it.
    pub async fn hold_lease(&self, name: &str, ttl: std::time::Duration) -> Result<bool> {
        match self.pg() {
            Some(pg) => pg.hold_lease(name, ttl).await,
            None => Ok(true),
        }
    }

    /// Lets the named lease go (a clean shutdown), so another instance need not wait it out.
    pub async fn release_lease(&self, name: &str) -> Result<()> {
        match self.pg() {
            Some(pg) => pg.release_lease(name).await,
            None => Ok(()),
        }
    }

    // Routing.

    pub async fn unrouted_jobs(&self, limit: usize) -> Result<Vec<JobRow>> {
        if let Some(pg) = self.pg() {
            return pg.unrouted_jobs(limit).await;
        }
        self.call(move |s| s.unrouted_jobs(limit)).await
    }

    /// See [`super::Store::route_job`].
    pub async fn route_job(
        &self,
        job_id: i64,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Vec<NewDelivery>> {
        if let Some(pg) = self.pg() {
            return pg.route_job(job_id, deliveries).await;
        }
        self.call(move |s| s.route_job(job_id, deliveries)).await
    }

    pub async fn app_name(&self, tenant: &str, app: &str) -> Result<Option<String>> {
        if let Some(pg) = self.pg() {
            return pg.app_name(tenant, app).await;
        }
        let (tenant, app) = (tenant.to_owned(), app.to_owned());
        self.call(move |s| s.app_name(&tenant, &app)).await
    }

    /// See [`super::Store::alerted_recipients`].
    pub async fn alerted_recipients(
        &self,
        tenant: &str,
        app: &str,
        destination: &str,
        since: i64,
    ) -> Result<Vec<String>> {
        if let Some(pg) = self.pg() {
            return pg.alerted_recipients(tenant, app, destination, since).await;
        }
        let (tenant, app, destination) =
            (tenant.to_owned(), app.to_owned(), destination.to_owned());
        self.call(move |s| s.alerted_recipients(&tenant, &app, &destination, since))
            .await
    }

    pub async fn silence_filters(&self) -> Result<Vec<SilenceFilter>> {
        if let Some(pg) = self.pg() {
            return pg.silence_filters().await;
        }
        self.call(|s| s.silence_filters()).await
    }

    pub async fn silence_comment(&self, id: i64) -> Result<String> {
        if let Some(pg) = self.pg() {
            return pg.silence_comment(id).await;
        }
        self.call(move |s| s.silence_comment(id)).await
    }

    /// See [`super::Store::raise_notice`].
    pub async fn raise_notice(
        &self,
        notice: NewNotice,
        deliveries: Vec<NewDelivery>,
    ) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.raise_notice(&notice, deliveries).await;
        }
        self.call(move |s| s.raise_notice(&notice, deliveries))
            .await
    }

    // The outbox.

    /// What the worker of `destination` has to do: up to `limit` due rows (leaving out `busy`),
    /// when the next is due, and (with `grouping`) the held groups that closed.
    pub async fn due_work(
        &self,
        destination: &str,
        limit: usize,
        busy: Vec<i64>,
        grouping: bool,
    ) -> Result<DueWork> {
        if let Some(pg) = self.pg() {
            return pg.due_work(destination, limit, &busy, grouping).await;
        }
        let destination = destination.to_owned();
        self.call(move |s| {
            let closed = if grouping {
                s.closed_groups(&destination, super::now_ms())?
            } else {
                Vec::new()
            };
            Ok(DueWork {
                due: s.due_deliveries(&destination, limit, &busy)?,
                next_due_at: s.next_due_at(&destination)?,
                closed,
            })
        })
        .await
    }

    /// Renews this instance's claims on the rows it is sending (a shared store's lease); the
    /// SQLite store has no claims.
    pub async fn renew_claims(&self, busy: Vec<i64>) -> Result<()> {
        match self.pg() {
            Some(pg) => pg.renew_claims(&busy).await,
            None => Ok(()),
        }
    }

    /// Records finished attempts (one transaction); returns the deliveries still waiting.
    /// Records the outcomes of finished sends in one transaction; with `count`, also how many
    /// rows are pending then (for the gauge).
    pub async fn record_attempts(
        &self,
        outcomes: Vec<(i64, Outcome)>,
        count: bool,
    ) -> Result<Option<u64>> {
        if let Some(pg) = self.pg() {
            return pg
                .record_attempts(&outcomes)
                .await
                .map(|pending| count.then_some(pending));
        }
        self.call(move |s| {
            s.record_attempts(&outcomes)?;
            count.then(|| s.pending_count()).transpose()
        })
        .await
    }

    pub async fn release_held(&self, releases: Vec<Release>) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.release_held(&releases).await;
        }
        self.call(move |s| s.release_held(&releases)).await
    }

    pub async fn pending_count(&self) -> Result<u64> {
        if let Some(pg) = self.pg() {
            return pg.pending_count().await;
        }
        self.call(|s| s.pending_count()).await
    }

    pub async fn purge_history(&self, retention_ms: i64) -> Result<usize> {
        if let Some(pg) = self.pg() {
            return pg.purge_history(retention_ms).await;
        }
        self.call(move |s| s.purge_history(retention_ms)).await
    }

    // Silences.

    pub async fn silences(&self, include_expired: bool) -> Result<Vec<StoredSilence>> {
        if let Some(pg) = self.pg() {
            return pg.silences(include_expired).await;
        }
        self.call(move |s| s.silences(include_expired)).await
    }

    /// Stores `silence` unless `max_active` are in force already (`None`), in one call.
    pub async fn add_silence(&self, silence: SilenceRow, max_active: u64) -> Result<Option<i64>> {
        if let Some(pg) = self.pg() {
            return pg.add_silence(&silence, max_active).await;
        }
        self.call(move |s| s.add_silence_capped(&silence, max_active))
            .await
    }

    pub async fn remove_silence(&self, id: i64) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.remove_silence(id).await;
        }
        self.call(move |s| s.remove_silence(id)).await
    }

    pub async fn end_silence(&self, id: i64) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.end_silence(id).await;
        }
        self.call(move |s| s.end_silence(id)).await
    }

    /// The silence keys that silenced rows wait on.
    pub async fn resend_keys(&self) -> Result<Vec<String>> {
        if let Some(pg) = self.pg() {
            return pg.resend_keys().await;
        }
        self.call(|s| s.resend_keys()).await
    }

    /// Routes again the jobs that the silence `key` silenced; returns how many.
    pub async fn resend_silenced(&self, key: &str) -> Result<usize> {
        if let Some(pg) = self.pg() {
            return pg.resend_silenced(key).await;
        }
        let key = key.to_owned();
        self.call(move |s| s.resend_silenced(&key)).await
    }

    // The console.

    pub async fn failing_now(&self) -> Result<Vec<FailingApp>> {
        if let Some(pg) = self.pg() {
            return pg.failing_now().await;
        }
        self.call(|s| s.failing_now()).await
    }

    pub async fn alerts(&self, filter: AlertFilter, limit: usize) -> Result<Vec<AlertRow>> {
        if let Some(pg) = self.pg() {
            return pg.alerts(&filter, limit).await;
        }
        self.call(move |s| s.alerts(&filter, limit)).await
    }

    pub async fn alert(&self, id: i64) -> Result<Option<AlertRow>> {
        if let Some(pg) = self.pg() {
            return pg.alert(id).await;
        }
        self.call(move |s| s.alert(id)).await
    }

    pub async fn dead_deliveries(&self, limit: usize) -> Result<Vec<(AlertRow, bool)>> {
        if let Some(pg) = self.pg() {
            return pg.dead_deliveries(limit).await;
        }
        self.call(move |s| s.dead_deliveries(limit)).await
    }

    pub async fn last_delivered(&self) -> Result<Vec<(String, i64)>> {
        if let Some(pg) = self.pg() {
            return pg.last_delivered().await;
        }
        self.call(|s| s.last_delivered()).await
    }

    pub async fn resend_dead(&self, id: i64) -> Result<Resend> {
        if let Some(pg) = self.pg() {
            return pg.resend_dead(id).await;
        }
        self.call(move |s| s.resend_dead(id)).await
    }
}
