//! The store side of storm digests (held outbox rows, released one by one or as one digest) and
//! of recovery notices (the apps whose last reload failed, and who was told about them).

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Store, StoreError, Written};
use crate::qlik::event::ReloadEvent;

/// A held delivery whose grouping window has closed.
#[derive(Debug, Clone)]
pub struct HeldRow {
    pub id: i64,
    pub created_at: i64,
    /// What a digest lists for it; `None` for rows that never go into a digest (recoveries).
    pub item: Option<serde_json::Value>,
}

/// The held rows of one recipient of a destination ('' for Slack and Teams), oldest first.
#[derive(Debug, Clone)]
pub struct HeldGroup {
    pub recipient: String,
    pub rows: Vec<HeldRow>,
}

/// What to do with a closed group.
#[derive(Debug, Clone)]
pub enum Release {
    /// Send each row on its own.
    Each(Vec<i64>),
    /// Send `payload` in the carrier row; the `listed` rows are recorded as digested.
    Digest {
        carrier: i64,
        payload: String,
        listed: Vec<i64>,
    },
}

impl Store {
    /// Held groups of `destination` whose window has closed by `now`.
    pub fn closed_groups(&self, destination: &str, now: i64) -> Result<Vec<HeldGroup>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, recipient, created_at, digest_item FROM outbox
                 WHERE destination = ?1 AND state = 'held' AND next_attempt_at <= ?2
                 ORDER BY recipient, id",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(params![destination, now], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?;
        let rows: Vec<_> = rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))?;
        Ok(group_held(rows))
    }

    /// Applies the releases in one transaction. Rows no longer held are left alone.
    pub fn release_held(&mut self, releases: &[Release]) -> Result<(), StoreError> {
        let now = now_ms();
        self.in_transaction(|tx| {
            let mut send = tx.prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, updated_at = ?2
                 WHERE id = ?1 AND state = 'held'",
            )?;
            let mut carry = tx.prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, updated_at = ?2,
                    detail = ?3
                 WHERE id = ?1 AND state = 'held'",
            )?;
            let mut carry_payload = tx.prepare_cached(super::deliveries::PUT_PAYLOAD)?;
            let mut list = tx.prepare_cached(
                "UPDATE outbox SET state = 'digested', updated_at = ?2, detail = ?3
                 WHERE id = ?1 AND state = 'held'",
            )?;
            for release in releases {
                match release {
                    Release::Each(ids) => {
                        for id in ids {
                            send.execute(params![id, now])?;
                        }
                    }
                    Release::Digest {
                        carrier,
                        payload,
                        listed,
                    } => {
                        let detail = format!("digest of {} alerts", listed.len() + 1);
                        if carry.execute(params![carrier, now, detail])? == 1 {
                            carry_payload.execute(params![carrier, payload])?;
                        }
                        let detail = format!("listed in the digest sent as outbox row {carrier}");
                        for id in listed {
                            list.execute(params![id, now, detail])?;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Forgets every failing streak (no destination sends recovery notices any more).
    pub fn clear_failing_apps(&mut self) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM failing_apps", [])
            .map_err(|e| self.sqlite(e))
    }

    /// Apps whose last known reload failed, as (tenant, app).
    pub fn failing_apps(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT tenant_id, app_id FROM failing_apps")
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))
    }

    /// Who `destination` told about `app` failing since `since` (ms): the recipients of its
    /// alerts that were sent, are being sent, or went out in a digest.
    pub fn alerted_recipients(
        &self,
        tenant: &str,
        app: &str,
        destination: &str,
        since: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT o.recipient FROM jobs j JOIN outbox o ON o.job_id = j.id
                 WHERE j.tenant_id = ?1 AND j.app_id = ?2 AND j.kind = 'failure'
                   AND j.created_at >= ?4 AND o.destination = ?3
                   AND o.state IN ('pending', 'held', 'delivered', 'digested')
                 ORDER BY o.recipient",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(params![tenant, app, destination, since], |r| r.get(0))
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))
    }
}

/// Held rows `(id, recipient, created_at, digest item JSON)`, ordered by recipient, as one
/// group per recipient.
pub(super) fn group_held(rows: Vec<(i64, String, i64, Option<String>)>) -> Vec<HeldGroup> {
    let mut groups: Vec<HeldGroup> = Vec::new();
    for (id, recipient, created_at, item) in rows {
        let row = HeldRow {
            id,
            created_at,
            item: item.and_then(|json| serde_json::from_str(&json).ok()),
        };
        match groups.last_mut() {
            Some(group) if group.recipient == recipient => group.rows.push(row),
            _ => groups.push(HeldGroup {
                recipient,
                rows: vec![row],
            }),
        }
    }
    groups
}

/// A failure job was written: the app's failing streak starts or goes on. The job records its
/// place in the streak (`jobs.failures`), which `escalate_after` routes by.
pub(super) fn note_failure(
    tx: &rusqlite::Connection,
    event: &ReloadEvent,
    job_id: i64,
    now: i64,
) -> rusqlite::Result<()> {
    let streak: i64 = tx
        .prepare_cached(
            "INSERT INTO failing_apps (tenant_id, app_id, since, failures) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (tenant_id, app_id) DO UPDATE SET failures = failures + 1
             RETURNING failures",
        )?
        .query_row(params![event.tenant_id, event.app_id, now], |r| r.get(0))?;
    tx.prepare_cached("UPDATE jobs SET failures = ?2 WHERE id = ?1")?
        .execute(params![job_id, streak])?;
    Ok(())
}

/// A reload succeeded: if its app was failing, the streak ends and (with `job`) a recovery job
/// records it.
pub(super) fn write_recovery(
    tx: &rusqlite::Connection,
    event: &ReloadEvent,
    topic: &str,
    json: &str,
    now: i64,
    job: bool,
) -> rusqlite::Result<Written> {
    let streak: Option<(i64, i64)> = tx
        .prepare_cached(
            "DELETE FROM failing_apps WHERE tenant_id = ?1 AND app_id = ?2
             RETURNING since, failures",
        )?
        .query_row(params![event.tenant_id, event.app_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((since, failures)) = streak else {
        return Ok(Written::NotFailing);
    };
    if !job {
        return Ok(Written::StreakEnded);
    }
    tx.prepare_cached(
        "INSERT INTO jobs (created_at, tenant_id, app_id, reload_id, event_id, failure, topic, event,
                           kind, failing_since, failures)
         VALUES (?1, ?2, ?3, ?4, ?5, 'recovered', ?6, ?7, 'recovery', ?8, ?9)",
    )?
    .execute(params![
        now,
        event.tenant_id,
        event.app_id,
        event.reload_id,
        event.event_id,
        topic,
        json,
        since,
        failures
    ])?;
    Ok(Written::Recovery(tx.last_insert_rowid()))
}
