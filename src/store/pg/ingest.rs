//! The ingest transaction on PostgreSQL (dedupe keys, jobs, dead letters, failing streaks, app
//! names), the poll's watermarks, and what start-up reads.
//!
//! **Dedupe across instances.** Two instances may commit the same reload at once (the poll of
//! one and the MQTT intake of another, or a redelivery). Each record first takes a
//! transaction-scoped advisory lock on its reload key (`reload:<tenant>:<reloadId>`, which
//! every event of that reload shares), in a sorted order within the batch so two batches
//! cannot deadlock; the dedupe check and the job insert then run as one step for that reload.

use tokio_postgres::Transaction;

use super::{pg, PgStore};
use crate::domain::Failure;
use crate::qlik::event::ReloadEvent;
use crate::store::{dead_letters, dedupe_keys, now_ms, polled, Record, StoreError, Written};

impl PgStore {
    /// Writes a batch in one transaction: all of it is committed when this returns `Ok`.
    pub async fn write(&self, records: &[Record<'_>]) -> Result<Vec<Written>, StoreError> {
        let now = now_ms();
        let expires = now.saturating_add(self.dedupe_ttl_ms);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let mut locks: Vec<String> = records
            .iter()
            .filter_map(|r| match r {
                Record::Job { event, .. } | Record::Recovery { event, .. } => {
                    Some(dedupe_keys(event)[1].clone())
                }
                _ => None,
            })
            .collect();
        locks.sort();
        locks.dedup();
        if !locks.is_empty() {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k ORDER BY k",
                &[&locks],
            )
            .await
            .map_err(pg)?;
        }
        let mut written = Vec::with_capacity(records.len());
        for record in records {
            let outcome = match record {
                Record::Job {
                    event,
                    failure,
                    topic,
                } => {
                    if let Some(name) = event.app_name.as_deref() {
                        remember(&tx, &event.tenant_id, &event.app_id, name, now).await?;
                    }
                    let job = write_job(&tx, event, *failure, topic, now, expires).await?;
                    if let (Written::Job(job_id), true) = (job, self.track_failing) {
                        // The job records its place in the streak, which `escalate_after`
                        // routes by.
                        let streak: i64 = tx
                            .query_one(
                                "INSERT INTO failing_apps (tenant_id, app_id, since, failures)
                                 VALUES ($1, $2, $3, 1)
                                 ON CONFLICT (tenant_id, app_id)
                                 DO UPDATE SET failures = failing_apps.failures + 1
                                 RETURNING failures",
                                &[&event.tenant_id, &event.app_id, &now],
                            )
                            .await
                            .map_err(pg)?
                            .get(0);
                        tx.execute(
                            "UPDATE jobs SET failures = $2 WHERE id = $1",
                            &[&job_id, &streak],
                        )
                        .await
                        .map_err(pg)?;
                    }
                    job
                }
                Record::Recovery { event, topic } => {
                    write_recovery(&tx, event, topic, now, self.recovery_jobs).await?
                }
                Record::AppName { tenant, app, name } => {
                    remember(&tx, tenant, app, name, now).await?;
                    Written::AppName
                }
                Record::DeadLetter {
                    topic,
                    payload,
                    reason,
                    detail,
                } => {
                    let kept = &payload[..payload.len().min(dead_letters::DEAD_LETTER_MAX_BYTES)];
                    tx.execute(
                        "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason, detail)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &now,
                            &dead_letters::cut(topic),
                            &kept,
                            &(payload.len() as i64),
                            reason,
                            &dead_letters::cut(detail),
                        ],
                    )
                    .await
                    .map_err(pg)?;
                    Written::DeadLetter
                }
            };
            written.push(outcome);
        }
        tx.commit().await.map_err(pg)?;
        self.worked();
        Ok(written)
    }

    /// Forgets dedupe keys past their expiry; returns how many.
    pub async fn purge_expired_keys(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM dedupe_keys WHERE expires_at < $1",
                &[&now_ms()],
            )
            .await
            .map_err(pg)?;
        Ok(n as usize)
    }

    /// Apps whose last known reload failed, as (tenant, app).
    pub async fn failing_apps(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT tenant_id, app_id FROM failing_apps", &[])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn app_name(&self, tenant: &str, app: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name FROM app_names WHERE tenant_id = $1 AND app_id = $2",
                &[&tenant, &app],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn poll_watermark(&self, tenant: &str) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT polled_until FROM poll_watermarks WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The poll's findings as jobs, then its watermark; see `SharedStore::commit_poll`.
    pub async fn commit_poll(
        &self,
        tenant: &str,
        events: &[(ReloadEvent, Failure)],
        until: i64,
    ) -> Result<Vec<Written>, StoreError> {
        let written = self.write(&polled(events)).await?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO poll_watermarks (tenant_id, polled_until) VALUES ($1, $2)
                 ON CONFLICT (tenant_id) DO UPDATE SET polled_until = EXCLUDED.polled_until",
                &[&tenant, &until],
            )
            .await
            .map_err(pg)?;
        Ok(written)
    }
}

async fn remember(
    tx: &Transaction<'_>,
    tenant: &str,
    app: &str,
    name: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO app_names (tenant_id, app_id, name, seen_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, app_id) DO UPDATE SET name = EXCLUDED.name, seen_at = EXCLUDED.seen_at",
        &[&tenant, &app, &name, &now],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn write_job(
    tx: &Transaction<'_>,
    event: &ReloadEvent,
    failure: Failure,
    topic: &str,
    now: i64,
    expires: i64,
) -> Result<Written, StoreError> {
    let keys = dedupe_keys(event);
    let seen = tx
        .query_opt(
            "SELECT job_id FROM dedupe_keys WHERE key IN ($1, $2) AND expires_at >= $3 LIMIT 1",
            &[&keys[0], &keys[1], &now],
        )
        .await
        .map_err(pg)?;
    if let Some(row) = seen {
        return Ok(Written::Duplicate { job_id: row.get(0) });
    }
    let json = serde_json::to_string(event)?;
    let row = tx
        .query_one(
            "INSERT INTO jobs (created_at, tenant_id, app_id, reload_id, event_id, failure, topic, event)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &now,
                &event.tenant_id,
                &event.app_id,
                &event.reload_id,
                &event.event_id,
                &failure.as_str(),
                &topic,
                &json,
            ],
        )
        .await
        .map_err(pg)?;
    let job_id: i64 = row.get(0);
    for key in &keys {
        tx.execute(
            "INSERT INTO dedupe_keys (key, job_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET job_id = EXCLUDED.job_id, expires_at = EXCLUDED.expires_at",
            &[key, &job_id, &expires],
        )
        .await
        .map_err(pg)?;
    }
    Ok(Written::Job(job_id))
}

async fn write_recovery(
    tx: &Transaction<'_>,
    event: &ReloadEvent,
    topic: &str,
    now: i64,
    job: bool,
) -> Result<Written, StoreError> {
    let streak = tx
        .query_opt(
            "DELETE FROM failing_apps WHERE tenant_id = $1 AND app_id = $2 RETURNING since, failures",
            &[&event.tenant_id, &event.app_id],
        )
        .await
        .map_err(pg)?;
    let Some(streak) = streak else {
        return Ok(Written::NotFailing);
    };
    if !job {
        return Ok(Written::StreakEnded);
    }
    let (since, failures): (i64, i64) = (streak.get(0), streak.get(1));
    let json = serde_json::to_string(event)?;
    let row = tx
        .query_one(
            "INSERT INTO jobs (created_at, tenant_id, app_id, reload_id, event_id, failure, topic, event,
                               kind, failing_since, failures)
             VALUES ($1, $2, $3, $4, $5, 'recovered', $6, $7, 'recovery', $8, $9) RETURNING id",
            &[
                &now,
                &event.tenant_id,
                &event.app_id,
                &event.reload_id,
                &event.event_id,
                &topic,
                &json,
                &since,
                &failures,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(Written::Recovery(row.get(0)))
}
