//! Routing on PostgreSQL: jobs claimed with `FOR UPDATE SKIP LOCKED` and a lease (another
//! instance takes a job over when the lease of the one routing it runs out), their outbox rows
//! written with the rate-limit windows settled by one upsert each (so two instances cannot both
//! open one), credential notices, and who was told about a failing app.

use tokio_postgres::Transaction;

use super::{pg, PgStore};
use crate::store::{now_ms, JobKind, JobRow, NewDelivery, NewNotice, NewState, StoreError};

impl PgStore {
    /// Claims up to `limit` jobs waiting to be routed (new, and not claimed by another instance
    /// whose lease still runs), oldest first.
    pub async fn unrouted_jobs(&self, limit: usize) -> Result<Vec<JobRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE jobs SET lease_owner = $1, lease_until = rb_now_ms() + $2 WHERE id IN (
                    SELECT id FROM jobs
                    WHERE state = 'new'
                      AND (lease_until IS NULL OR lease_until < rb_now_ms() OR lease_owner = $1)
                    ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING id, event, kind, failing_since, failures",
                &[&self.instance, &self.lease_ms, &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            let json: String = row.get(1);
            let kind: String = row.get(2);
            let kind = match kind.as_str() {
                "recovery" => JobKind::Recovery {
                    failing_since: row.get::<_, Option<i64>>(3).unwrap_or_default(),
                    failures: row.get::<_, Option<i64>>(4).unwrap_or_default().max(0) as u64,
                },
                _ => JobKind::Failure {
                    streak: row.get::<_, Option<i64>>(4).unwrap_or_default().max(0) as u64,
                },
            };
            match serde_json::from_str(&json) {
                Ok(event) => jobs.push(JobRow { id, event, kind }),
                Err(error) => {
                    tracing::error!(job_id = id, %error, "stored job does not decode; marked broken");
                    client
                        .execute("UPDATE jobs SET state = 'broken' WHERE id = $1", &[&id])
                        .await
                        .map_err(pg)?;
                }
            }
        }
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// See `Store::route_job`.
    pub async fn route_job(
        &self,
        job_id: i64,
        mut deliveries: Vec<NewDelivery>,
    ) -> Result<Vec<NewDelivery>, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        insert_rows(&tx, job_id, &mut deliveries, now).await?;
        tx.execute(
            "UPDATE jobs SET state = 'routed', lease_owner = NULL, lease_until = NULL WHERE id = $1",
            &[&job_id],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.worked();
        Ok(deliveries)
    }

    /// See `Store::raise_notice`; the notice's window is taken by one upsert, so two instances
    /// noticing the same problem record it once.
    pub async fn raise_notice(
        &self,
        notice: &NewNotice,
        mut deliveries: Vec<NewDelivery>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let key = format!("notice:{}", notice.key);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        if open_window(&tx, &key, now, notice.every_ms)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let row = tx
            .query_one(
                "INSERT INTO jobs (created_at, tenant_id, app_id, reload_id, event_id, failure, topic, event, kind, state)
                 VALUES ($1, $2, '', '', $3, $4, 'credential-watch', '{}', 'notice', 'routed') RETURNING id",
                &[&now, &notice.tenant, &format!("{key}:{now}"), &notice.label],
            )
            .await
            .map_err(pg)?;
        insert_rows(&tx, row.get(0), &mut deliveries, now).await?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    /// See `Store::alerted_recipients`.
    pub async fn alerted_recipients(
        &self,
        tenant: &str,
        app: &str,
        destination: &str,
        since: i64,
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT o.recipient FROM jobs j JOIN outbox o ON o.job_id = j.id
                 WHERE j.tenant_id = $1 AND j.app_id = $2 AND j.kind = 'failure'
                   AND j.created_at >= $4 AND o.destination = $3
                   AND o.state IN ('pending', 'held', 'delivered', 'digested')
                 ORDER BY o.recipient",
                &[&tenant, &app, &destination, &since],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Opens the window `key` at `now` unless one opened within `window_ms`; returns when the open
/// one opened (`None`: this call opened it). One statement, so concurrent callers queue on the
/// row and exactly one opens it.
async fn open_window(
    tx: &Transaction<'_>,
    key: &str,
    now: i64,
    window_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let opened = tx
        .query_opt(
            "INSERT INTO rate_limits (key, last_sent_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET last_sent_at = EXCLUDED.last_sent_at
             WHERE rate_limits.last_sent_at <= $3
             RETURNING last_sent_at",
            &[&key, &now, &now.saturating_sub(window_ms)],
        )
        .await
        .map_err(pg)?;
    if opened.is_some() {
        return Ok(None);
    }
    let row = tx
        .query_opt(
            "SELECT last_sent_at FROM rate_limits WHERE key = $1",
            &[&key],
        )
        .await
        .map_err(pg)?;
    Ok(Some(row.map_or(now, |r| r.get(0))))
}

/// See `deliveries::insert_rows` (the SQLite one): the same rows and states.
async fn insert_rows(
    tx: &Transaction<'_>,
    job_id: i64,
    deliveries: &mut [NewDelivery],
    now: i64,
) -> Result<(), StoreError> {
    for d in deliveries.iter_mut() {
        if let (NewState::Pending, Some((key, window_ms))) = (&d.state, &d.rate_limit) {
            if let Some(at) = open_window(tx, key, now, *window_ms).await? {
                d.state = NewState::Suppressed(format!(
                    "rate limited: this app alerted here {} s ago (rate_limit {} s)",
                    (now - at) / 1000,
                    window_ms / 1000
                ));
            }
        }
        let mut due_at = now;
        let (state, detail) = match &d.state {
            NewState::Pending if d.hold.is_some() => {
                let window_ms = d.hold.as_ref().map_or(0, |(w, _)| *w);
                let open: Option<i64> = tx
                    .query_one(
                        "SELECT min(next_attempt_at) FROM outbox
                         WHERE destination = $1 AND recipient = $2 AND state = 'held' AND next_attempt_at > $3",
                        &[&d.destination, &d.recipient, &now],
                    )
                    .await
                    .map_err(pg)?
                    .get(0);
                due_at = open.unwrap_or(now.saturating_add(window_ms));
                ("held", None)
            }
            NewState::Pending => ("pending", None),
            NewState::Suppressed(reason) => ("suppressed", Some(reason)),
            NewState::Silenced(reason) => ("silenced", Some(reason)),
            NewState::Dead(reason) => ("dead", Some(reason)),
        };
        let item = d.hold.as_ref().and_then(|(_, item)| item.as_deref());
        tx.execute(
            "INSERT INTO outbox
             (job_id, destination, recipient, payload, state, created_at, next_attempt_at, updated_at,
              detail, digest_item, silence_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $8, $9, $10)
             ON CONFLICT (job_id, destination, recipient) DO NOTHING",
            &[
                &job_id,
                &d.destination,
                &d.recipient,
                &d.payload,
                &state,
                &now,
                &due_at,
                &detail,
                &item,
                &d.silence_key,
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}
