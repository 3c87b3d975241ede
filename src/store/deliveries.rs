//! The outbox (which doubles as the alert history): one row per (job, destination,
//! recipient), created when a job is routed, with its rate-limit window and storm group; then
//! claimed when due and given its outcome.

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Store, StoreError};

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
            insert_rows(tx, job_id, &mut deliveries, now)?;
            tx.prepare_cached("UPDATE jobs SET state = 'routed' WHERE id = ?1")?
                .execute(params![job_id])?;
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
                "SELECT o.id, o.job_id, o.destination, o.recipient, p.payload, o.attempts, o.created_at,
                        j.app_id, j.reload_id
                 FROM outbox o JOIN jobs j ON j.id = o.job_id
                 LEFT JOIN outbox_payloads p ON p.id = o.id
                 WHERE o.destination = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2
                 ORDER BY o.next_attempt_at, o.id",
            )
            .map_err(|e| self.sqlite(e))?;
        // No `LIMIT ?`: SQLite prepares a statement whose LIMIT is a bound parameter again each
        // time it is bound (the planner reads the value). The index yields the rows in order, one
        // at a time, so stopping after `limit` of them reads no more than a LIMIT would.
        let mut rows = stmt
            .query(params![destination, now_ms()])
            .map_err(|e| self.sqlite(e))?;
        let mut due = Vec::with_capacity(limit);
        while due.len() < limit {
            let Some(row) = rows.next().map_err(|e| self.sqlite(e))? else {
                break;
            };
            // A row in flight is passed over before its payload is read: SQLite reads a column
            // only when asked, and an email's payload spans several pages.
            let id = row.get(0).map_err(|e| self.sqlite(e))?;
            if !busy.contains(&id) {
                due.push(due_delivery(id, row).map_err(|e| self.sqlite(e))?);
            }
        }
        Ok(due)
    }

    /// The earliest time a pending delivery of `destination` is due or a held group of it
    /// closes, if there is any.
    pub fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM outbox
                 WHERE destination = ?1 AND state IN ('pending', 'held')",
            )
            .and_then(|mut stmt| stmt.query_row(params![destination], |r| r.get(0)))
            .map_err(|e| self.sqlite(e))
    }

    /// Records the outcomes of attempts that finished, in one transaction (one fsync however
    /// many there are): all of them are on disk when this returns `Ok`, none when `Err`.
    pub fn record_attempts(&mut self, outcomes: &[(i64, Outcome)]) -> Result<(), StoreError> {
        let now = now_ms();
        self.in_transaction(|tx| {
            // Prepared once per connection (the statement cache), not once per outcome.
            for (id, outcome) in outcomes {
                match outcome {
                    Outcome::Delivered { detail } => tx.prepare_cached(
                        "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, updated_at = ?2, detail = ?3 WHERE id = ?1",
                    )?.execute(params![id, now, detail]),
                    Outcome::Retry { next_attempt_at, error } => tx.prepare_cached(
                        "UPDATE outbox SET attempts = attempts + 1, updated_at = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
                    )?.execute(params![id, now, next_attempt_at, error]),
                    Outcome::Dead { error } => tx.prepare_cached(
                        "UPDATE outbox SET state = 'dead', attempts = attempts + 1, updated_at = ?2, last_error = ?3 WHERE id = ?1",
                    )?.execute(params![id, now, error]),
                }?;
            }
            Ok(())
        })
    }

    /// Deliveries waiting to be sent (held ones included), all destinations.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE state IN ('pending', 'held')")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .map_err(|e| self.sqlite(e))
    }

    /// Deletes history older than `retention_ms`: finished outbox rows, routed jobs without
    /// pending rows, dead letters and expired rate-limit windows. Returns the rows deleted.
    pub fn purge_history(&mut self, retention_ms: i64) -> Result<usize, StoreError> {
        let cutoff = now_ms().saturating_sub(retention_ms);
        let sql = [
            "DELETE FROM jobs WHERE state != 'new' AND created_at < ?1
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = jobs.id)",
            "DELETE FROM dead_letters WHERE received_at < ?1",
            "DELETE FROM rate_limits WHERE last_sent_at < ?1",
        ];
        self.in_transaction(|tx| {
            let finished = "SELECT id FROM outbox
                WHERE state NOT IN ('pending', 'held') AND updated_at < ?1";
            let rows = delete_rows(tx, finished, params![cutoff])?;
            sql.iter().try_fold(rows, |deleted, statement| {
                Ok(deleted + tx.execute(statement, params![cutoff])?)
            })
        })
    }
}

/// Deletes the outbox rows that `ids` selects (`SELECT id FROM outbox …`) and their payloads,
/// which live beside them (schema.rs, 7). Returns how many rows.
pub(super) fn delete_rows<P: rusqlite::Params + Clone>(
    tx: &rusqlite::Connection,
    ids: &str,
    params: P,
) -> rusqlite::Result<usize> {
    tx.execute(
        &format!("DELETE FROM outbox_payloads WHERE id IN ({ids})"),
        params.clone(),
    )?;
    tx.execute(&format!("DELETE FROM outbox WHERE id IN ({ids})"), params)
}

/// The due delivery `id` of a row of [`Store::due_deliveries`]' query.
fn due_delivery(id: i64, r: &rusqlite::Row) -> rusqlite::Result<DueDelivery> {
    Ok(DueDelivery {
        id,
        job_id: r.get(1)?,
        destination: r.get(2)?,
        recipient: r.get(3)?,
        payload: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        attempts: r.get(5)?,
        created_at: r.get(6)?,
        app_id: r.get(7)?,
        reload_id: r.get(8)?,
    })
}

/// Creates a job's outbox rows (see [`Store::route_job`]), settling each pending row's rate
/// limit: its state in `deliveries` is updated to what was recorded.
pub(super) fn insert_rows(
    tx: &rusqlite::Connection,
    job_id: i64,
    deliveries: &mut [NewDelivery],
    now: i64,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox
             (job_id, destination, recipient, payload, state, created_at, next_attempt_at,
              updated_at, detail, digest_item, silence_key)
             VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?5, ?7, ?8, ?9)",
    )?;
    let mut keep_payload = tx.prepare_cached(PUT_PAYLOAD)?;
    let mut window = tx
        .prepare_cached("INSERT OR REPLACE INTO rate_limits (key, last_sent_at) VALUES (?1, ?2)")?;
    let mut open = tx.prepare_cached(
        "SELECT last_sent_at FROM rate_limits WHERE key = ?1 AND last_sent_at > ?2",
    )?;
    for d in deliveries.iter_mut() {
        if let (NewState::Pending, Some((key, window_ms))) = (&d.state, &d.rate_limit) {
            let since: Option<i64> = open
                .query_row(params![key, now.saturating_sub(*window_ms)], |r| r.get(0))
                .optional()?;
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
                due_at = open_group(tx, &d.destination, &d.recipient, now)?
                    .unwrap_or(now.saturating_add(window_ms));
                ("held", None)
            }
            NewState::Pending => ("pending", None),
            NewState::Suppressed(reason) => ("suppressed", Some(reason)),
            NewState::Silenced(reason) => ("silenced", Some(reason)),
            NewState::Dead(reason) => ("dead", Some(reason)),
        };
        let inserted = insert.execute(params![
            job_id,
            d.destination,
            d.recipient,
            state,
            now,
            due_at,
            detail,
            d.hold.as_ref().and_then(|(_, item)| item.as_deref()),
            d.silence_key
        ])?;
        // An ignored insert (the row exists) keeps the payload it has.
        if inserted == 1 && !d.payload.is_empty() {
            keep_payload.execute(params![tx.last_insert_rowid(), d.payload])?;
        }
    }
    Ok(())
}

/// Sets outbox row ?1's payload to ?2 (the table beside the outbox: see schema.rs, 7).
pub(super) const PUT_PAYLOAD: &str =
    "INSERT OR REPLACE INTO outbox_payloads (id, payload) VALUES (?1, ?2)";

/// When the open storm-grouping window of (destination, recipient) closes, if one is open.
fn open_group(
    tx: &rusqlite::Connection,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A job with a pending chat delivery per recipient, in order; returns the store and the job.
    fn pending(dir: &std::path::Path, recipients: &[&str]) -> (Store, i64) {
        let (mut store, job) = crate::store::store_with_job(dir, false);
        let rows = deliveries(recipients, "payload for");
        store.route_job(job, rows).unwrap();
        (store, job)
    }

    fn deliveries(recipients: &[&str], text: &str) -> Vec<NewDelivery> {
        recipients
            .iter()
            .map(|to| NewDelivery {
                destination: "chat".into(),
                recipient: (*to).into(),
                payload: format!("{text} {to}"),
                state: NewState::Pending,
                rate_limit: None,
                hold: None,
                silence_key: None,
            })
            .collect()
    }

    fn due_ids(store: &Store) -> Vec<i64> {
        store
            .due_deliveries("chat", 10, &[])
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect()
    }

    #[test]
    fn due_rows_leave_out_the_busy_ones_and_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, job) = pending(dir.path(), &["a", "b", "c"]);
        let ids = due_ids(&store);
        assert_eq!(ids.len(), 3);
        // Routing the job again creates no row and leaves each row's payload as it was.
        store
            .route_job(job, deliveries(&["a", "b", "c"], "another"))
            .unwrap();
        assert_eq!(due_ids(&store), ids);
        let due = store.due_deliveries("chat", 2, &[]).unwrap();
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), ids[..2]);
        // With the first in flight, the next two are due, each with its own row's columns.
        let due = store.due_deliveries("chat", 2, &[ids[0]]).unwrap();
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), ids[1..]);
        for (d, to) in due.iter().zip(["b", "c"]) {
            assert_eq!(d.recipient, to);
            assert_eq!(d.payload, format!("payload for {to}"));
            assert_eq!((d.destination.as_str(), d.attempts), ("chat", 0));
            assert!(!d.app_id.is_empty() && !d.reload_id.is_empty());
        }
        assert!(store.due_deliveries("chat", 5, &ids).unwrap().is_empty());
        assert!(store.due_deliveries("other", 5, &[]).unwrap().is_empty());
    }

    #[test]
    fn purged_rows_take_their_payloads_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = pending(dir.path(), &["a", "b"]);
        let ids = due_ids(&store);
        let delivered = Outcome::Delivered {
            detail: "ok".into(),
        };
        store.record_attempts(&[(ids[0], delivered)]).unwrap();
        let payloads = |store: &Store| -> i64 {
            store
                .conn
                .query_row("SELECT count(*) FROM outbox_payloads", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(payloads(&store), 2);
        // A retention in the future: everything finished is old enough.
        assert_eq!(store.purge_history(-60_000).unwrap(), 1, "one row purged");
        assert_eq!(payloads(&store), 1, "the pending row keeps its payload");
        let due = store.due_deliveries("chat", 5, &[]).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].payload, "payload for b");
    }
}
