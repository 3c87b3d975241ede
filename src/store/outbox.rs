//! The delivery side of the store: jobs waiting to be routed, the outbox (which doubles as the
//! alert history), and rate-limit windows.

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Store, StoreError};
use crate::qlik::event::ReloadEvent;

/// A committed job not yet routed to its destinations.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub event: ReloadEvent,
    pub kind: JobKind,
}

/// What a job is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A failed reload to alert.
    Failure,
    /// A successful reload of an app that was failing: recovery notices may be due.
    Recovery { failing_since: i64, failures: u64 },
}

/// One outbox row to create when a job is routed.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub destination: String,
    pub recipient: String,
    /// The rendered message; empty when there is nothing to send.
    pub payload: String,
    pub state: NewState,
    /// Rate-limit window this delivery opens when it is sent, and its length.
    pub rate_limit: Option<(String, i64)>,
    /// Storm grouping: a pending delivery is held for this window (ms), joining the open one if
    /// there is; with an item (JSON) it may be listed in a digest instead of sent on its own.
    pub hold: Option<(i64, Option<String>)>,
    /// A silenced delivery whose silence resends what it silenced: the silence's key.
    pub silence_key: Option<String>,
}

/// How a new outbox row starts.
#[derive(Debug, Clone, PartialEq)]
pub enum NewState {
    Pending,
    /// Recorded, never sent (tags, rate limit); the reason is kept.
    Suppressed(String),
    /// Covered by a silence in force; the reason names it.
    Silenced(String),
    /// Could not even be prepared (no recipients, a template error); the reason is kept.
    Dead(String),
}

/// A pending delivery whose time has come.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub job_id: i64,
    pub destination: String,
    pub recipient: String,
    pub payload: String,
    pub attempts: u32,
    pub created_at: i64,
    pub app_id: String,
    pub reload_id: String,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered { detail: String },
    Retry { next_attempt_at: i64, error: String },
    Dead { error: String },
}

impl Store {
    /// Jobs waiting to be routed, oldest first. A job whose stored event no longer decodes is
    /// marked `broken` (it cannot be alerted) and skipped.
    pub fn unrouted_jobs(&mut self, limit: usize) -> Result<Vec<JobRow>, StoreError> {
        type Row = (i64, String, String, Option<i64>, Option<i64>);
        let rows: Vec<Row> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id, event, kind, failing_since, failures FROM jobs
                     WHERE state = 'new' ORDER BY id LIMIT ?1",
                )
                .map_err(|e| self.sqlite(e))?;
            let rows = stmt
                .query_map(params![limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(|e| self.sqlite(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))?
        };
        let mut jobs = Vec::with_capacity(rows.len());
        for (id, json, kind, failing_since, failures) in rows {
            let kind = match kind.as_str() {
                "recovery" => JobKind::Recovery {
                    failing_since: failing_since.unwrap_or_default(),
                    failures: failures.unwrap_or_default().max(0) as u64,
                },
                _ => JobKind::Failure,
            };
            match serde_json::from_str(&json) {
                Ok(event) => jobs.push(JobRow { id, event, kind }),
                Err(error) => {
                    tracing::error!(job_id = id, %error, "stored job does not decode; marked broken");
                    self.conn
                        .execute(
                            "UPDATE jobs SET state = 'broken' WHERE id = ?1",
                            params![id],
                        )
                        .map_err(|e| self.sqlite(e))?;
                }
            }
        }
        Ok(jobs)
    }

    /// Creates the job's outbox rows and marks the job routed, in one transaction. A pending
    /// delivery whose rate-limit window is open becomes suppressed; one that is sent opens its
    /// window. Rows that already exist (a job routed again after a crash) are kept. Returns the
    /// deliveries as recorded.
    pub fn route_job(
        &mut self,
        job_id: i64,
        mut deliveries: Vec<NewDelivery>,
    ) -> Result<Vec<NewDelivery>, StoreError> {
        let now = now_ms();
        self.in_transaction(|tx| {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO outbox
                     (job_id, destination, recipient, payload, state, created_at, next_attempt_at, updated_at,
                      detail, digest_item, silence_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?8, ?9, ?10)",
                )?;
            let mut window = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO rate_limits (key, last_sent_at) VALUES (?1, ?2)",
                )?;
            let mut open = tx
                .prepare_cached(
                    "SELECT last_sent_at FROM rate_limits WHERE key = ?1 AND last_sent_at > ?2",
                )?;
            for d in deliveries.iter_mut() {
                if let (NewState::Pending, Some((key, window_ms))) = (&d.state, &d.rate_limit) {
                    let since: Option<i64> = open
                        .query_row(params![key, now.saturating_sub(*window_ms)], |r| r.get(0))
                        .optional()
                        ?;
                    match since {
                        Some(at) => {
                            d.state = NewState::Suppressed(format!(
                                "rate limited: this app alerted here {} s ago (rate_limit {} s)",
                                (now - at) / 1000,
                                window_ms / 1000
                            ));
                        }
                        None => {
                            window.execute(params![key, now])?;
                        }
                    }
                }
                let mut due_at = now;
                let (state, detail) = match &d.state {
                    NewState::Pending if d.hold.is_some() => {
                        let window_ms = d.hold.as_ref().map_or(0, |(w, _)| *w);
                        due_at = open_group(tx, &d.destination, &d.recipient, now)
                            ?
                            .unwrap_or(now.saturating_add(window_ms));
                        ("held", None)
                    }
                    NewState::Pending => ("pending", None),
                    NewState::Suppressed(reason) => ("suppressed", Some(reason)),
                    NewState::Silenced(reason) => ("silenced", Some(reason)),
                    NewState::Dead(reason) => ("dead", Some(reason)),
                };
                insert
                    .execute(params![
                        job_id,
                        d.destination,
                        d.recipient,
                        d.payload,
                        state,
                        now,
                        due_at,
                        detail,
                        d.hold.as_ref().and_then(|(_, item)| item.as_deref()),
                        d.silence_key
                    ])
                    ?;
            }
            tx.execute(
                "UPDATE jobs SET state = 'routed' WHERE id = ?1",
                params![job_id],
            )?;
            Ok(())
        })?;
        Ok(deliveries)
    }

    /// Pending deliveries of `destination` that are due, oldest first, leaving out `busy` ids.
    pub fn due_deliveries(
        &self,
        destination: &str,
        limit: usize,
        busy: &[i64],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.job_id, o.destination, o.recipient, o.payload, o.attempts, o.created_at,
                        j.app_id, j.reload_id
                 FROM outbox o JOIN jobs j ON j.id = o.job_id
                 WHERE o.destination = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2
                 ORDER BY o.next_attempt_at, o.id LIMIT ?3",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(
                params![destination, now_ms(), (limit + busy.len()) as i64],
                |r| {
                    Ok(DueDelivery {
                        id: r.get(0)?,
                        job_id: r.get(1)?,
                        destination: r.get(2)?,
                        recipient: r.get(3)?,
                        payload: r.get(4)?,
                        attempts: r.get(5)?,
                        created_at: r.get(6)?,
                        app_id: r.get(7)?,
                        reload_id: r.get(8)?,
                    })
                },
            )
            .map_err(|e| self.sqlite(e))?;
        let mut due = Vec::with_capacity(limit);
        for row in rows {
            let row = row.map_err(|e| self.sqlite(e))?;
            if !busy.contains(&row.id) && due.len() < limit {
                due.push(row);
            }
        }
        Ok(due)
    }

    /// The earliest time a pending delivery of `destination` is due or a held group of it
    /// closes, if there is any.
    pub fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(next_attempt_at) FROM outbox
                 WHERE destination = ?1 AND state IN ('pending', 'held')",
                params![destination],
                |r| r.get(0),
            )
            .map_err(|e| self.sqlite(e))
    }

    /// Records the outcomes of attempts that finished, in one transaction (one fsync however
    /// many there are): all of them are on disk when this returns `Ok`, none when `Err`.
    pub fn record_attempts(&mut self, outcomes: &[(i64, Outcome)]) -> Result<(), StoreError> {
        let now = now_ms();
        self.in_transaction(|tx| {
            for (id, outcome) in outcomes {
                match outcome {
                    Outcome::Delivered { detail } => tx.execute(
                        "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, updated_at = ?2, detail = ?3 WHERE id = ?1",
                        params![id, now, detail],
                    ),
                    Outcome::Retry { next_attempt_at, error } => tx.execute(
                        "UPDATE outbox SET attempts = attempts + 1, updated_at = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
                        params![id, now, next_attempt_at, error],
                    ),
                    Outcome::Dead { error } => tx.execute(
                        "UPDATE outbox SET state = 'dead', attempts = attempts + 1, updated_at = ?2, last_error = ?3 WHERE id = ?1",
                        params![id, now, error],
                    ),
                }?;
            }
            Ok(())
        })
    }

    /// Deliveries waiting to be sent (held ones included), all destinations.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM outbox WHERE state IN ('pending', 'held')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sqlite(e))
    }

    /// Deletes history older than `retention_ms`: finished outbox rows, routed jobs without
    /// pending rows, dead letters and expired rate-limit windows. Returns the rows deleted.
    pub fn purge_history(&mut self, retention_ms: i64) -> Result<usize, StoreError> {
        let cutoff = now_ms().saturating_sub(retention_ms);
        let sql = [
            "DELETE FROM outbox WHERE state NOT IN ('pending', 'held') AND updated_at < ?1",
            "DELETE FROM jobs WHERE state != 'new' AND created_at < ?1
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = jobs.id)",
            "DELETE FROM dead_letters WHERE received_at < ?1",
            "DELETE FROM rate_limits WHERE last_sent_at < ?1",
        ];
        let mut deleted = 0;
        for statement in sql {
            deleted += self
                .conn
                .execute(statement, params![cutoff])
                .map_err(|e| self.sqlite(e))?;
        }
        Ok(deleted)
    }
}

impl Store {
    /// Until when the poll has looked at `tenant`'s reloads, if it ever has.
    pub fn poll_watermark(&self, tenant: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT polled_until FROM poll_watermarks WHERE tenant_id = ?1",
                params![tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    pub fn set_poll_watermark(&mut self, tenant: &str, until_ms: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO poll_watermarks (tenant_id, polled_until) VALUES (?1, ?2)",
                params![tenant, until_ms],
            )
            .map(|_| ())
            .map_err(|e| self.sqlite(e))
    }
}

/// A silence added with `reload-butler silence add`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSilence {
    pub id: i64,
    pub matcher: crate::config::Matcher,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    /// When it ends, the alerts it silenced are routed again.
    pub resend: bool,
}

impl Store {
    pub fn add_silence(
        &mut self,
        matcher: &crate::config::Matcher,
        starts_at: i64,
        ends_at: i64,
        comment: &str,
        resend: bool,
    ) -> Result<i64, StoreError> {
        let json = serde_json::to_string(matcher)?;
        self.conn
            .execute(
                "INSERT INTO silences (matcher, starts_at, ends_at, comment, created_at, resend)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![json, starts_at, ends_at, comment, now_ms(), resend],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Silences not yet over (all of them with `include_expired`).
    pub fn silences(&self, include_expired: bool) -> Result<Vec<StoredSilence>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, matcher, starts_at, ends_at, comment, resend FROM silences WHERE ends_at > ?1 ORDER BY id")
            .map_err(|e| self.sqlite(e))?;
        let since = if include_expired { i64::MIN } else { now_ms() };
        let rows = stmt
            .query_map(params![since], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json, starts_at, ends_at, comment, resend) =
                row.map_err(|e| self.sqlite(e))?;
            // A row this build cannot read covers nothing rather than stopping every alert.
            if let Ok(matcher) = serde_json::from_str(&json) {
                out.push(StoredSilence {
                    id,
                    matcher,
                    starts_at,
                    ends_at,
                    comment,
                    resend,
                });
            }
        }
        Ok(out)
    }

    /// Deletes a silence; false when there was none with that id.
    pub fn remove_silence(&mut self, id: i64) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM silences WHERE id = ?1", params![id])
            .map(|n| n > 0)
            .map_err(|e| self.sqlite(e))
    }
}

/// When the open storm-grouping window of (destination, recipient) closes, if one is open.
fn open_group(
    tx: &rusqlite::Transaction,
    destination: &str,
    recipient: &str,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached(
        "SELECT min(next_attempt_at) FROM outbox
         WHERE destination = ?1 AND recipient = ?2 AND state = 'held' AND next_attempt_at > ?3",
    )?
    .query_row(params![destination, recipient, now], |r| r.get(0))
}

impl Store {
    /// The silences (by key) that silenced alerts to resend when they end.
    pub fn resend_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT silence_key FROM outbox
                 WHERE silence_key IS NOT NULL AND state = 'silenced'",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))
    }

    /// A silence with `resend` ended: the jobs it silenced go back to be routed (their silenced
    /// rows are deleted, so routing records them anew). Returns how many jobs.
    pub fn resend_silenced(&mut self, key: &str) -> Result<usize, StoreError> {
        self.in_transaction(|tx| {
            let jobs = tx.execute(
                "UPDATE jobs SET state = 'new' WHERE id IN
                 (SELECT job_id FROM outbox WHERE silence_key = ?1 AND state = 'silenced')",
                params![key],
            )?;
            tx.execute(
                "DELETE FROM outbox WHERE state = 'silenced' AND job_id IN
                 (SELECT id FROM jobs WHERE state = 'new')",
                [],
            )?;
            Ok(jobs)
        })
    }
}
