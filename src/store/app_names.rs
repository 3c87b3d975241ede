//! Remembered app names: the last name an event carried for each app, so an alert from an event
//! that carries none (`reload.finished`) names its app even while the Qlik API is down
//! (design §9.1: `appName` is never empty).

use rusqlite::{params, Connection, OptionalExtension};

use super::{Store, StoreError};

/// Remembers `name` as the last name seen for the app, in the caller's transaction.
pub(super) fn remember(
    tx: &Connection,
    tenant: &str,
    app: &str,
    name: &str,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO app_names (tenant_id, app_id, name, seen_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, app_id) DO UPDATE SET name = excluded.name, seen_at = excluded.seen_at",
    )?
    .execute(params![tenant, app, name, now])
    .map(|_| ())
}

impl Store {
    /// The last name an event carried for the app, if one ever did.
    pub fn app_name(&self, tenant: &str, app: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT name FROM app_names WHERE tenant_id = ?1 AND app_id = ?2")
            .and_then(|mut stmt| stmt.query_row(params![tenant, app], |r| r.get(0)))
            .optional()
            .map_err(|e| self.sqlite(e))
    }
}
