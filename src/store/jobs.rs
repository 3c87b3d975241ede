//! Jobs: committed failures (and recoveries) waiting to be routed to their destinations.

use rusqlite::params;

use super::{Store, StoreError};
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
    /// A failed reload to alert; `streak` is its place in the app's run of failures (1 for the
    /// first), or 0 when failing apps are not tracked.
    Failure { streak: u64 },
    /// A successful reload of an app that was failing: recovery notices may be due.
    Recovery { failing_since: i64, failures: u64 },
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
                     WHERE state = 'new' ORDER BY id",
                )
                .map_err(|e| self.sqlite(e))?;
            // `take`, not `LIMIT ?`, which makes SQLite prepare the statement again at every
            // call; the index yields the rows in order, one at a time.
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(|e| self.sqlite(e))?;
            rows.take(limit)
                .collect::<Result<_, _>>()
                .map_err(|e| self.sqlite(e))?
        };
        let mut jobs = Vec::with_capacity(rows.len());
        for (id, json, kind, failing_since, failures) in rows {
            let kind = match kind.as_str() {
                "recovery" => JobKind::Recovery {
                    failing_since: failing_since.unwrap_or_default(),
                    failures: failures.unwrap_or_default().max(0) as u64,
                },
                _ => JobKind::Failure {
                    streak: failures.unwrap_or_default().max(0) as u64,
                },
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
}
