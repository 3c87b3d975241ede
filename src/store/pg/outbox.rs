//! The outbox on PostgreSQL: due rows claimed with a lease (renewed while they are sent, taken
//! over by another instance when it runs out), outcomes recorded only while the lease is ours,
//! digests released once, and history upkeep.

use super::{pg, PgStore};
use crate::store::api::DueWork;
use crate::store::notices::group_held;
use crate::store::{now_ms, DueDelivery, HeldGroup, Outcome, Release, StoreError};

impl PgStore {
    /// Claims up to `limit` due rows of `destination` for this instance (renewing the leases of
    /// the `busy` ones it is still sending), and says when the next is due and which held
    /// groups closed.
    pub async fn due_work(
        &self,
        destination: &str,
        limit: usize,
        busy: &[i64],
        grouping: bool,
    ) -> Result<DueWork, StoreError> {
        let now = now_ms();
        self.renew_claims(busy).await?;
        let client = self.client().await?;
        let closed = if grouping {
            closed_groups(&client, destination, now).await?
        } else {
            Vec::new()
        };
        let rows = client
            .query(
                "WITH claimed AS (
                    UPDATE outbox SET lease_owner = $1, lease_until = rb_now_ms() + $2 WHERE id IN (
                        SELECT id FROM outbox
                        WHERE destination = $3 AND state = 'pending' AND next_attempt_at <= $4
                          AND (lease_until IS NULL OR lease_until < rb_now_ms() OR lease_owner = $1)
                          AND NOT (id = ANY($5))
                        ORDER BY next_attempt_at, id LIMIT $6 FOR UPDATE SKIP LOCKED)
                    RETURNING id, job_id, destination, recipient, payload, attempts, created_at,
                              next_attempt_at)
                 SELECT c.id, c.job_id, c.destination, c.recipient, c.payload, c.attempts,
                        c.created_at, j.app_id, j.reload_id
                 FROM claimed c JOIN jobs j ON j.id = c.job_id
                 ORDER BY c.next_attempt_at, c.id",
                &[
                    &self.instance,
                    &self.lease_ms,
                    &destination,
                    &now,
                    &busy,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg)?;
        let due = rows
            .iter()
            .map(|r| DueDelivery {
                id: r.get(0),
                job_id: r.get(1),
                destination: r.get(2),
                recipient: r.get(3),
                payload: r.get(4),
                attempts: r.get::<_, i64>(5).clamp(0, u32::MAX as i64) as u32,
                created_at: r.get(6),
                app_id: r.get(7),
                reload_id: r.get(8),
            })
            .collect();
        let next = client
            .query_one(
                "SELECT min(next_attempt_at) FROM outbox
                 WHERE destination = $1 AND state IN ('pending', 'held')",
                &[&destination],
            )
            .await
            .map_err(pg)?;
        Ok(DueWork {
            due,
            next_due_at: next.get(0),
            closed,
        })
    }

    /// Renews this instance's leases on the `busy` rows it is sending.
    pub async fn renew_claims(&self, busy: &[i64]) -> Result<(), StoreError> {
        if busy.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        client
            .execute(
                "UPDATE outbox SET lease_until = rb_now_ms() + $1
                 WHERE id = ANY($2) AND lease_owner = $3",
                &[&self.lease_ms, &busy, &self.instance],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// Records finished attempts in one transaction, each only while this instance holds the
    /// row (a row another instance took over is its to record); returns the rows waiting.
    pub async fn record_attempts(&self, outcomes: &[(i64, Outcome)]) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let mine = "AND (lease_owner = $2 OR lease_owner IS NULL)";
        let (delivered, retry, dead) = (
            format!("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, updated_at = $3, detail = $4, lease_owner = NULL, lease_until = NULL WHERE id = $1 {mine}"),
            format!("UPDATE outbox SET attempts = attempts + 1, updated_at = $3, next_attempt_at = $4, last_error = $5, lease_owner = NULL, lease_until = NULL WHERE id = $1 {mine}"),
            format!("UPDATE outbox SET state = 'dead', attempts = attempts + 1, updated_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL WHERE id = $1 {mine}"),
        );
        for (id, outcome) in outcomes {
            let me = &self.instance;
            let changed = match outcome {
                Outcome::Delivered { detail } => {
                    tx.execute(&delivered, &[id, me, &now, detail]).await
                }
                Outcome::Retry {
                    next_attempt_at,
                    error,
                } => {
                    tx.execute(&retry, &[id, me, &now, next_attempt_at, error])
                        .await
                }
                Outcome::Dead { error } => tx.execute(&dead, &[id, me, &now, error]).await,
            }
            .map_err(pg)?;
            if changed == 0 {
                tracing::warn!(
                    outbox_id = id,
                    "another instance took this delivery over; its outcome here is not recorded"
                );
            }
        }
        tx.commit().await.map_err(pg)?;
        self.worked();
        drop(client);
        self.pending_count().await
    }

    /// Applies the releases in one transaction; rows no longer held are left alone (another
    /// instance released them first), and a digest whose carrier is no longer held lists
    /// nothing, so no row is marked digested into a digest that does not name it.
    pub async fn release_held(&self, releases: &[Release]) -> Result<(), StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        for release in releases {
            match release {
                Release::Each(ids) => {
                    tx.execute(
                        "UPDATE outbox SET state = 'pending', next_attempt_at = $2, updated_at = $2
                         WHERE id = ANY($1) AND state = 'held'",
                        &[ids, &now],
                    )
                    .await
                    .map_err(pg)?;
                }
                Release::Digest {
                    carrier,
                    payload,
                    listed,
                } => {
                    let detail = format!("digest of {} alerts", listed.len() + 1);
                    let carried = tx.execute(
                        "UPDATE outbox SET state = 'pending', next_attempt_at = $2, updated_at = $2,
                            payload = $3, detail = $4
                         WHERE id = $1 AND state = 'held'",
                        &[carrier, &now, payload, &detail],
                    )
                    .await
                    .map_err(pg)?;
                    if carried == 0 {
                        // Another instance released this group first (its digest may not list
                        // what this one would): leave the rest to their own groups.
                        continue;
                    }
                    let detail = format!("listed in the digest sent as outbox row {carrier}");
                    tx.execute(
                        "UPDATE outbox SET state = 'digested', updated_at = $2, detail = $3
                         WHERE id = ANY($1) AND state = 'held'",
                        &[listed, &now, &detail],
                    )
                    .await
                    .map_err(pg)?;
                }
            }
        }
        tx.commit().await.map_err(pg)
    }

    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM outbox WHERE state IN ('pending', 'held')",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// See `Store::purge_history`.
    pub async fn purge_history(&self, retention_ms: i64) -> Result<usize, StoreError> {
        let cutoff = now_ms().saturating_sub(retention_ms);
        let client = self.client().await?;
        let mut deleted = 0;
        for statement in [
            "DELETE FROM outbox WHERE state NOT IN ('pending', 'held') AND updated_at < $1",
            "DELETE FROM jobs WHERE state != 'new' AND created_at < $1
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = jobs.id)",
            "DELETE FROM dead_letters WHERE received_at < $1",
            "DELETE FROM rate_limits WHERE last_sent_at < $1",
        ] {
            deleted += client.execute(statement, &[&cutoff]).await.map_err(pg)? as usize;
        }
        Ok(deleted)
    }
}

async fn closed_groups(
    client: &deadpool_postgres::Object,
    destination: &str,
    now: i64,
) -> Result<Vec<HeldGroup>, StoreError> {
    let rows = client
        .query(
            "SELECT id, recipient, created_at, digest_item FROM outbox
             WHERE destination = $1 AND state = 'held' AND next_attempt_at <= $2
             ORDER BY recipient, id",
            &[&destination, &now],
        )
        .await
        .map_err(pg)?;
    Ok(group_held(
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect(),
    ))
}
