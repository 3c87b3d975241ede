//! Poll watermarks: until when the reconciliation poll has looked at each tenant's reloads.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

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
