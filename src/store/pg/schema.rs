//! Versioned migrations of the PostgreSQL schema, applied in order in one transaction that
//! holds an advisory lock: instances starting together wait for the first, which migrates; the
//! others find the schema current. A migration is never edited once released, only followed.

use super::{pg, StoreError};

/// The advisory lock key of migrations (any constant; "rb-schema" in ASCII).
const MIGRATION_LOCK: i64 = 0x7262_2d73_6368_656d;

const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store has reached (its migrations 1–6), plus the claims.
    "
    CREATE TABLE jobs (
        id             BIGSERIAL PRIMARY KEY,
        created_at     BIGINT NOT NULL,            -- unix ms
        tenant_id      TEXT NOT NULL,
        app_id         TEXT NOT NULL,
        reload_id      TEXT NOT NULL,
        event_id       TEXT NOT NULL,
        failure        TEXT NOT NULL,
        topic          TEXT NOT NULL,
        event          TEXT NOT NULL,              -- the decoded ReloadEvent as JSON
        state          TEXT NOT NULL DEFAULT 'new',
        kind           TEXT NOT NULL DEFAULT 'failure',
        failing_since  BIGINT,
        failures       BIGINT,
        lease_owner    TEXT,                       -- the instance routing it
        lease_until    BIGINT                      -- unix ms by rb_now_ms()
    );
    CREATE INDEX jobs_state ON jobs (state, id);
    CREATE INDEX jobs_app ON jobs (tenant_id, app_id, created_at);

    CREATE TABLE dedupe_keys (
        key         TEXT PRIMARY KEY,
        job_id      BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL
    );
    CREATE INDEX dedupe_keys_expiry ON dedupe_keys (expires_at);

    CREATE TABLE dead_letters (
        id            BIGSERIAL PRIMARY KEY,
        received_at   BIGINT NOT NULL,
        topic         TEXT NOT NULL,
        payload       BYTEA NOT NULL,
        payload_size  BIGINT NOT NULL,
        reason        TEXT NOT NULL,
        detail        TEXT NOT NULL
    );

    CREATE TABLE outbox (
        id               BIGSERIAL PRIMARY KEY,
        job_id           BIGINT NOT NULL REFERENCES jobs (id),
        destination      TEXT NOT NULL,
        recipient        TEXT NOT NULL DEFAULT '',
        payload          TEXT NOT NULL,
        state            TEXT NOT NULL,
        attempts         BIGINT NOT NULL DEFAULT 0,
        created_at       BIGINT NOT NULL,
        next_attempt_at  BIGINT NOT NULL,
        updated_at       BIGINT NOT NULL,
        last_error       TEXT,
        detail           TEXT,
        digest_item      TEXT,
        silence_key      TEXT,
        lease_owner      TEXT,                     -- the instance sending it
        lease_until      BIGINT,
        UNIQUE (job_id, destination, recipient)
    );
    CREATE INDEX outbox_due ON outbox (destination, state, next_attempt_at);
    CREATE INDEX outbox_updated ON outbox (state, updated_at);
    CREATE INDEX outbox_silence ON outbox (silence_key) WHERE silence_key IS NOT NULL;

    CREATE TABLE rate_limits (
        key           TEXT PRIMARY KEY,
        last_sent_at  BIGINT NOT NULL
    );

    CREATE TABLE poll_watermarks (
        tenant_id     TEXT PRIMARY KEY,
        polled_until  BIGINT NOT NULL
    );

    CREATE TABLE silences (
        id          BIGSERIAL PRIMARY KEY,
        matcher     TEXT NOT NULL,
        starts_at   BIGINT NOT NULL,
        ends_at     BIGINT NOT NULL,
        comment     TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        resend      BOOLEAN NOT NULL DEFAULT FALSE
    );

    CREATE TABLE failing_apps (
        tenant_id  TEXT NOT NULL,
        app_id     TEXT NOT NULL,
        since      BIGINT NOT NULL,
        failures   BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, app_id)
    );

    CREATE TABLE app_names (
        tenant_id  TEXT NOT NULL,
        app_id     TEXT NOT NULL,
        name       TEXT NOT NULL,
        seen_at    BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, app_id)
    );

    -- The server's clock in unix ms: what every lease is measured against.
    CREATE FUNCTION rb_now_ms() RETURNS BIGINT LANGUAGE SQL VOLATILE
        AS 'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT';

    -- Work that one instance at a time does (the poll): who holds it, until when.
    CREATE TABLE leases (
        name   TEXT PRIMARY KEY,
        owner  TEXT NOT NULL,
        until  BIGINT NOT NULL
    );
    ",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The version a `schema_version` row holds. Another program's table of that name (an
/// `integer` or `text` column, a NULL) is refused with the reason, not read as ours.
fn version_of(row: &tokio_postgres::Row) -> Result<i64, StoreError> {
    row.try_get(0).map_err(|error| {
        StoreError::Postgres(format!(
            "table schema_version is not reload-butler's ({error}); point state.url at a database of its own"
        ))
    })
}

/// Brings the database up to [`VERSION`] under the migration lock; refuses a newer one.
pub(super) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await
        .map_err(pg)?;
    let current: i64 = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await
        .map_err(pg)?
        .map_or(Ok(0), |row| version_of(&row))?;
    if current > VERSION {
        return Err(StoreError::TooNew {
            path: "state.url".into(),
            found: current,
            supported: VERSION,
        });
    }
    for sql in MIGRATIONS.iter().skip(current.max(0) as usize) {
        tx.batch_execute(sql).await.map_err(pg)?;
    }
    if current < VERSION {
        tx.execute("DELETE FROM schema_version", &[])
            .await
            .map_err(pg)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&VERSION],
        )
        .await
        .map_err(pg)?;
        tracing::info!(
            from = current,
            to = VERSION,
            "PostgreSQL state store migrated"
        );
    }
    tx.commit().await.map_err(pg)
}

/// Refuses a schema newer than this build's; a database not yet migrated is fine.
pub(super) async fn check_version(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    let found = client
        .query_opt(
            "SELECT version FROM schema_version WHERE to_regclass('schema_version') IS NOT NULL",
            &[],
        )
        .await;
    // No table yet: `run` will create it.
    let Ok(Some(row)) = found else {
        return Ok(());
    };
    let current = version_of(&row)?;
    if current > VERSION {
        return Err(StoreError::TooNew {
            path: "state.url".into(),
            found: current,
            supported: VERSION,
        });
    }
    Ok(())
}
