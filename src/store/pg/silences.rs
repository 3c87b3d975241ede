//! Stored silences on PostgreSQL, and resending what a silence held back once it ends.

use super::{pg, PgStore};
use crate::store::{now_ms, SilenceFilter, SilenceRow, StoreError, StoredSilence};

/// The advisory lock key that serialises silence inserts ("rb-silen"), so the bound on
/// silences in force holds across instances.
const SILENCE_LOCK: i64 = 0x7262_2d73_696c_656e;

impl PgStore {
    /// Stores `silence` unless `max_active` are in force already (`None`).
    pub async fn add_silence(
        &self,
        silence: &SilenceRow,
        max_active: u64,
    ) -> Result<Option<i64>, StoreError> {
        let json = serde_json::to_string(&silence.matcher)?;
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SILENCE_LOCK])
            .await
            .map_err(pg)?;
        let active: i64 = tx
            .query_one("SELECT count(*) FROM silences WHERE ends_at > $1", &[&now])
            .await
            .map_err(pg)?
            .get(0);
        if active.max(0) as u64 >= max_active {
            return Ok(None);
        }
        let row = tx
            .query_one(
                "INSERT INTO silences (matcher, starts_at, ends_at, comment, created_at, resend)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &json,
                    &silence.starts_at,
                    &silence.ends_at,
                    &silence.comment,
                    &now,
                    &silence.resend,
                ],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Some(row.get(0)))
    }

    /// Silences not yet over (all of them with `include_expired`).
    pub async fn silences(&self, include_expired: bool) -> Result<Vec<StoredSilence>, StoreError> {
        let since = if include_expired { i64::MIN } else { now_ms() };
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, matcher, starts_at, ends_at, comment, resend FROM silences
                 WHERE ends_at > $1 ORDER BY id",
                &[&since],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                // A row this build cannot read covers nothing rather than stopping every alert.
                let matcher = serde_json::from_str(r.get::<_, &str>(1)).ok()?;
                Some(StoredSilence {
                    id: r.get(0),
                    matcher,
                    starts_at: r.get(2),
                    ends_at: r.get(3),
                    comment: r.get(4),
                    resend: r.get(5),
                })
            })
            .collect())
    }

    /// The silences in force now, without their comments.
    pub async fn silence_filters(&self) -> Result<Vec<SilenceFilter>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, matcher, resend FROM silences
                 WHERE starts_at <= $1 AND ends_at > $1 ORDER BY id",
                &[&now_ms()],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let matcher = serde_json::from_str(r.get::<_, &str>(1)).ok()?;
                Some(SilenceFilter {
                    id: r.get(0),
                    matcher,
                    resend: r.get(2),
                })
            })
            .collect())
    }

    /// One silence's comment (empty when it is gone).
    pub async fn silence_comment(&self, id: i64) -> Result<String, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT comment FROM silences WHERE id = $1", &[&id])
            .await
            .map_err(pg)?;
        Ok(row.map(|r| r.get(0)).unwrap_or_default())
    }

    pub async fn remove_silence(&self, id: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM silences WHERE id = $1", &[&id])
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    /// See `Store::end_silence`.
    pub async fn end_silence(&self, id: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE silences SET ends_at = $2,
                    starts_at = CASE WHEN starts_at > $2 THEN $2 ELSE starts_at END
                 WHERE id = $1 AND ends_at > $2",
                &[&id, &now_ms()],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    pub async fn resend_keys(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT silence_key FROM outbox
                 WHERE silence_key IS NOT NULL AND state = 'silenced'",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// See `Store::resend_silenced`. Two instances resending the same key at once: the second
    /// finds no silenced rows left.
    pub async fn resend_silenced(&self, key: &str) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let jobs: Vec<i64> = tx
            .query(
                "DELETE FROM outbox WHERE silence_key = $1 AND state = 'silenced' RETURNING job_id",
                &[&key],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let routed = tx
            .execute(
                "UPDATE jobs SET state = 'new', lease_owner = NULL, lease_until = NULL
                 WHERE id = ANY($1)",
                &[&jobs],
            )
            .await
            .map_err(pg)?;
        tx.execute(
            "DELETE FROM outbox WHERE state = 'silenced' AND job_id = ANY($1)",
            &[&jobs],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(routed as usize)
    }
}
