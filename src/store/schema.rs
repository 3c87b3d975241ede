//! Versioned schema migrations, applied in order at open. `PRAGMA user_version` records the
//! version reached; a migration is never edited once released, only followed by a new one.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: ingest — jobs, dedupe keys, dead letters.
    "
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        created_at  INTEGER NOT NULL,          -- unix ms
        tenant_id   TEXT NOT NULL,
        app_id      TEXT NOT NULL,
        reload_id   TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        failure     TEXT NOT NULL,             -- reload_failed, engine_attempt_failed, ...
        topic       TEXT NOT NULL,             -- MQTT topic, or the source that found it
        event       TEXT NOT NULL,             -- the decoded ReloadEvent as JSON
        state       TEXT NOT NULL DEFAULT 'new'
    );
    CREATE INDEX jobs_state ON jobs (state, id);

    CREATE TABLE dedupe_keys (
        key         TEXT PRIMARY KEY,          -- event:<id> or reload:<tenant>:<reloadId>
        job_id      INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL           -- unix ms
    ) WITHOUT ROWID;
    CREATE INDEX dedupe_keys_expiry ON dedupe_keys (expires_at);

    CREATE TABLE dead_letters (
        id            INTEGER PRIMARY KEY,
        received_at   INTEGER NOT NULL,        -- unix ms
        topic         TEXT NOT NULL,
        payload       BLOB NOT NULL,           -- first bytes only, see payload_size
        payload_size  INTEGER NOT NULL,
        reason        TEXT NOT NULL,           -- bounded label: invalid_json, missing_field, ...
        detail        TEXT NOT NULL            -- the decoder's message
    );
    ",
    // 2: delivery — the outbox (one row per job × destination × recipient, which is also the
    // alert history) and rate-limit windows.
    "
    CREATE TABLE outbox (
        id               INTEGER PRIMARY KEY,
        job_id           INTEGER NOT NULL REFERENCES jobs (id),
        destination      TEXT NOT NULL,
        recipient        TEXT NOT NULL DEFAULT '',   -- email address; '' for Slack and Teams
        payload          TEXT NOT NULL,              -- the rendered message (notify::Payload JSON)
        state            TEXT NOT NULL,              -- pending, delivered, dead, suppressed
        attempts         INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,           -- unix ms
        next_attempt_at  INTEGER NOT NULL,           -- unix ms
        updated_at       INTEGER NOT NULL,           -- unix ms
        last_error       TEXT,                       -- the service's answer to the last failure
        detail           TEXT,                       -- receipt, or why it was suppressed
        UNIQUE (job_id, destination, recipient)
    );
    CREATE INDEX outbox_due ON outbox (destination, state, next_attempt_at);
    CREATE INDEX outbox_updated ON outbox (state, updated_at);

    CREATE TABLE rate_limits (
        key           TEXT PRIMARY KEY,             -- destination, app id [, recipient]
        last_sent_at  INTEGER NOT NULL              -- unix ms
    ) WITHOUT ROWID;
    ",
    // 3: reconciliation — how far each tenant's Reloads API has been looked at.
    "
    CREATE TABLE poll_watermarks (
        tenant_id     TEXT PRIMARY KEY,
        polled_until  INTEGER NOT NULL              -- unix ms: reloads ending after this are looked at
    ) WITHOUT ROWID;
    ",
    // 4: ad-hoc silences (`reload-butler silence add`).
    "
    CREATE TABLE silences (
        id          INTEGER PRIMARY KEY,
        matcher     TEXT NOT NULL,                   -- JSON: tenant, space, app, app_tag, error_code
        starts_at   INTEGER NOT NULL,                -- unix ms
        ends_at     INTEGER NOT NULL,                -- unix ms
        comment     TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    ",
    // 5: storm digests, recovery notices, resending after a silence.
    "
    ALTER TABLE outbox ADD COLUMN digest_item TEXT;  -- held alerts: what a digest lists (JSON)
    ALTER TABLE outbox ADD COLUMN silence_key TEXT;  -- silenced rows to resend when it ends
    ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'failure';  -- failure | recovery
    ALTER TABLE jobs ADD COLUMN failing_since INTEGER;  -- recovery: first failure (unix ms)
    ALTER TABLE jobs ADD COLUMN failures INTEGER;       -- recovery: failed reloads in between
    CREATE INDEX jobs_app ON jobs (tenant_id, app_id, created_at);
    CREATE INDEX outbox_silence ON outbox (silence_key) WHERE silence_key IS NOT NULL;
    ALTER TABLE silences ADD COLUMN resend INTEGER NOT NULL DEFAULT 0;  -- resend_after_silence

    -- Apps whose last known reload failed (kept while a destination has notify_recovery).
    CREATE TABLE failing_apps (
        tenant_id       TEXT NOT NULL,
        app_id          TEXT NOT NULL,
        since           INTEGER NOT NULL,           -- unix ms: first failure of the streak
        failures        INTEGER NOT NULL,           -- failed reloads in the streak
        PRIMARY KEY (tenant_id, app_id)
    ) WITHOUT ROWID;
    ",
    // The last name an event carried for each app (`appName` when the API cannot tell).
    "
    CREATE TABLE app_names (
        tenant_id       TEXT NOT NULL,
        app_id          TEXT NOT NULL,
        name            TEXT NOT NULL,
        seen_at         INTEGER NOT NULL,           -- unix ms
        PRIMARY KEY (tenant_id, app_id)
    ) WITHOUT ROWID;
    ",
    // 7: payloads beside their outbox rows. Recording an attempt rewrites the whole row in
    // SQLite; without the message in it that is a short row, not an email's several pages
    // (docs/performance.md, fourteenth round). Only non-empty payloads are kept here, and
    // `outbox.payload` stays empty (dropping it would run SQLite's table rewrite at every
    // first start). Deleting outbox rows deletes their payloads in the same transaction.
    "
    CREATE TABLE outbox_payloads (
        id        INTEGER PRIMARY KEY,              -- the outbox row's id
        payload   TEXT NOT NULL                     -- the rendered message (notify::Payload JSON)
    );
    INSERT INTO outbox_payloads (id, payload) SELECT id, payload FROM outbox WHERE payload <> '';
    UPDATE outbox SET payload = '' WHERE payload <> '';
    ",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`VERSION`]. A database newer than this build is refused, so an
/// old binary never writes into a schema it does not know.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<(), i64>> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > VERSION {
        return Ok(Err(current));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_move_beside_the_outbox() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        conn.execute_batch(
            "INSERT INTO jobs (id, created_at, tenant_id, app_id, reload_id, event_id, failure,
                               topic, event)
             VALUES (1, 0, 't', 'a', 'r', 'e', 'reload_failed', 'x', '{}');
             INSERT INTO outbox (id, job_id, destination, payload, state, created_at,
                                 next_attempt_at, updated_at)
             VALUES (1, 1, 'chat', '{\"kind\":\"slack\"}', 'pending', 0, 0, 0),
                    (2, 1, 'cards', '', 'dead', 0, 0, 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap().unwrap();
        let payloads = |conn: &Connection| -> Vec<(i64, String)> {
            let mut stmt = conn
                .prepare("SELECT id, payload FROM outbox_payloads ORDER BY id")
                .unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            rows.map(Result::unwrap).collect()
        };
        assert_eq!(payloads(&conn), [(1, r#"{"kind":"slack"}"#.to_owned())]);
        let left: i64 = conn
            .query_row("SELECT count(*) FROM outbox WHERE payload <> ''", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(left, 0, "the outbox keeps no payload itself");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
    }
}
