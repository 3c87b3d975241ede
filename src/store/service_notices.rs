//! Notices about reload-butler's own set-up (a tenant's API key expiring, a credential Qlik
//! refuses): a job of kind `notice`, routed as it is written, with its outbox rows. The same
//! notice (by key) is recorded at most once per interval, whatever restarts happen between.

use rusqlite::{params, OptionalExtension};

use super::deliveries::insert_rows;
use super::{now_ms, NewDelivery, Store, StoreError};

/// A notice to record.
#[derive(Debug, Clone)]
pub struct NewNotice {
    pub tenant: String,
    /// A bounded label: what the notice is about (`credential_expiring`, ...).
    pub label: &'static str,
    /// Notices with the same key are recorded at most once per `every_ms`.
    pub key: String,
    pub every_ms: i64,
}

impl Store {
    /// Records the notice and its outbox rows in one transaction, unless one with the same key
    /// was recorded within its interval. Returns whether it was recorded.
    pub fn raise_notice(
        &mut self,
        notice: &NewNotice,
        mut deliveries: Vec<NewDelivery>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        self.in_transaction(|tx| {
            let key = format!("notice:{}", notice.key);
            let recent: Option<i64> = tx
                .query_row(
                    "SELECT last_sent_at FROM rate_limits WHERE key = ?1 AND last_sent_at > ?2",
                    params![key, now.saturating_sub(notice.every_ms)],
                    |r| r.get(0),
                )
                .optional()?;
            if recent.is_some() {
                return Ok(false);
            }
            tx.execute(
                "INSERT OR REPLACE INTO rate_limits (key, last_sent_at) VALUES (?1, ?2)",
                params![key, now],
            )?;
            tx.execute(
                "INSERT INTO jobs (created_at, tenant_id, app_id, reload_id, event_id, failure, topic, event, kind, state)
                 VALUES (?1, ?2, '', '', ?3, ?4, 'credential-watch', '{}', 'notice', 'routed')",
                params![now, notice.tenant, format!("{key}:{now}"), notice.label],
            )?;
            insert_rows(tx, tx.last_insert_rowid(), &mut deliveries, now)?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewState;

    #[test]
    fn a_notice_is_recorded_once_per_interval_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(&dir.path().join("s.db"), std::time::Duration::from_secs(60)).unwrap();
        let notice = NewNotice {
            tenant: "t1".into(),
            label: "credential_expiring",
            key: "credential:expiring:t1".into(),
            every_ms: 86_400_000,
        };
        let row = NewDelivery {
            destination: "ops".into(),
            recipient: String::new(),
            payload: "{}".into(),
            state: NewState::Pending,
            rate_limit: None,
            hold: None,
            silence_key: None,
        };
        assert!(store.raise_notice(&notice, vec![row.clone()]).unwrap());
        assert!(!store.raise_notice(&notice, vec![row.clone()]).unwrap());
        let other = NewNotice {
            key: "credential:refused:t1".into(),
            label: "credential_refused",
            ..notice.clone()
        };
        assert!(store.raise_notice(&other, vec![row]).unwrap());
        let due = store.due_deliveries("ops", 10, &[]).unwrap();
        assert_eq!(due.len(), 2);
        let unrouted = store.unrouted_jobs(10).unwrap();
        assert!(
            unrouted.is_empty(),
            "notices are routed as they are written"
        );
    }
}
