//! Stored silences (`silence add`, `POST /silences`) and resending what a silence held back
//! once it ends.

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Store, StoreError};

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

/// What an alert is matched against: a stored silence in force, without its comment.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceFilter {
    pub id: i64,
    pub matcher: crate::config::Matcher,
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

    /// Stores `silence` unless `max_active` silences are in force already (then `None`), in one
    /// transaction, so two requests at once cannot both pass the bound.
    pub fn add_silence_capped(
        &mut self,
        silence: &super::SilenceRow,
        max_active: u64,
    ) -> Result<Option<i64>, StoreError> {
        let json = serde_json::to_string(&silence.matcher)?;
        let now = now_ms();
        self.in_transaction(|tx| {
            let active: u64 = tx.query_row(
                "SELECT count(*) FROM silences WHERE ends_at > ?1",
                params![now],
                |r| r.get(0),
            )?;
            if active >= max_active {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO silences (matcher, starts_at, ends_at, comment, created_at, resend)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    json,
                    silence.starts_at,
                    silence.ends_at,
                    silence.comment,
                    now,
                    silence.resend
                ],
            )?;
            Ok(Some(tx.last_insert_rowid()))
        })
    }

    /// Silences not yet over.
    pub fn active_silence_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM silences WHERE ends_at > ?1",
                params![now_ms()],
                |r| r.get(0),
            )
            .map_err(|e| self.sqlite(e))
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

    /// The silences in force now, without their comments (which may be long): what an alert is
    /// matched against. A row this build cannot read covers nothing.
    pub fn silence_filters(&self) -> Result<Vec<SilenceFilter>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, matcher, resend FROM silences
                 WHERE starts_at <= ?1 AND ends_at > ?1 ORDER BY id",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(params![now_ms()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json, resend) = row.map_err(|e| self.sqlite(e))?;
            if let Ok(matcher) = serde_json::from_str(&json) {
                out.push(SilenceFilter {
                    id,
                    matcher,
                    resend,
                });
            }
        }
        Ok(out)
    }

    /// One silence's comment (empty when it is gone).
    pub fn silence_comment(&self, id: i64) -> Result<String, StoreError> {
        self.conn
            .query_row(
                "SELECT comment FROM silences WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.sqlite(e))
    }

    /// Deletes a silence; false when there was none with that id.
    pub fn remove_silence(&mut self, id: i64) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM silences WHERE id = ?1", params![id])
            .map(|n| n > 0)
            .map_err(|e| self.sqlite(e))
    }
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
            let silenced = "SELECT id FROM outbox WHERE state = 'silenced' AND job_id IN
                 (SELECT id FROM jobs WHERE state = 'new')";
            super::deliveries::delete_rows(tx, silenced, [])?;
            Ok(jobs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_leave_the_comments_out_and_ended_silences_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(&dir.path().join("s.db"), std::time::Duration::from_secs(60)).unwrap();
        let matcher = crate::config::Matcher {
            app: Some("a1".into()),
            ..crate::config::Matcher::default()
        };
        let now = now_ms();
        let long = "x".repeat(1000);
        let live = store
            .add_silence(&matcher, now, now + 60_000, &long, true)
            .unwrap();
        store
            .add_silence(&matcher, now - 120_000, now - 60_000, "over", false)
            .unwrap();
        let filters = store.silence_filters().unwrap();
        assert_eq!(
            filters,
            vec![SilenceFilter {
                id: live,
                matcher,
                resend: true
            }]
        );
        assert_eq!(store.silence_comment(live).unwrap(), long);
        assert_eq!(store.silence_comment(9999).unwrap(), "");
    }
}
