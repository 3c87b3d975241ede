//! The SQLite state store, a file per table group: `mod.rs` (opening, the ingest transaction:
//! dedupe keys, jobs and dead letters), `dead_letters.rs`, `jobs.rs`, `deliveries.rs` (the outbox and history),
//! `notices.rs` (held digests, failing-app streaks), `silences.rs`, `watermarks.rs` (the poll),
//! `console.rs` (what the admin console reads, and resending a dead delivery).
//!
//! WAL journal with `synchronous=FULL`: a commit is on disk before the MQTT message is acked, so
//! an acked alert survives a crash or power loss. The ingest path batches many messages into one
//! transaction, so a storm pays one fsync per batch, not per message. The connection the
//! alerting half shares ([`SharedStore`]) commits in groups with one fsync per group before it
//! answers anyone (see `shared.rs`).

mod api;
mod app_names;
mod console;
mod dead_letters;
mod deliveries;
pub mod health;
mod jobs;
mod notices;
mod open;
pub mod pg;
mod schema;
mod service_notices;
mod shared;
mod silences;
mod watermarks;

pub use api::{DueWork, SilenceRow};
pub use console::{AlertFilter, AlertRow, DeliveryRow, FailingApp, Resend, ALERTS_MAX};
pub use deliveries::{DueDelivery, NewDelivery, NewState, Outcome};
pub use jobs::{JobKind, JobRow};
pub use notices::{HeldGroup, HeldRow, Release};
pub use open::{IngestStore, StateStore};
pub use service_notices::NewNotice;
pub use shared::SharedStore;
pub use silences::{SilenceFilter, StoredSilence};

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::domain::Failure;
use crate::qlik::event::ReloadEvent;

pub use dead_letters::{DEAD_LETTER_MAX_BYTES, DEAD_LETTER_MAX_ROWS, DEAD_LETTER_PAYLOAD_BUDGET};

/// Prepared statements kept per connection (there are ~35 `prepare_cached` statements in all).
const STATEMENT_CACHE: usize = 64;
/// SQLite's page cache per connection, KiB.
const PAGE_CACHE_KIB: i64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: cannot create its directory: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state store {path} has schema version {found}, newer than this build's {supported}; use a newer reload-butler")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("a state store task panicked earlier; the connection is unusable")]
    Poisoned,
    #[error("a state store task failed: {0}")]
    Task(String),
    #[error("cannot start the state store thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("state store {path}: a group of writes did not reach the disk: {message}")]
    GroupCommit { path: PathBuf, message: String },
    #[error("state store {path}: cannot flush the write-ahead log to disk: {source}")]
    WalSync {
        path: PathBuf,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("state store (PostgreSQL): {0}")]
    Postgres(String),
    #[error("cannot encode event for the state store: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One thing the ingest pipeline wants written.
#[derive(Debug)]
pub enum Record<'a> {
    /// An alert-worthy event, to become a job unless a dedupe key says it was seen.
    Job {
        event: &'a ReloadEvent,
        failure: Failure,
        topic: &'a str,
    },
    /// A successful reload: ends its app's failing streak, if it had one, with a recovery job.
    Recovery {
        event: &'a ReloadEvent,
        topic: &'a str,
    },
    /// An event that raises no alert but names its app: the name is remembered.
    AppName {
        tenant: &'a str,
        app: &'a str,
        name: &'a str,
    },
    /// A payload that could not be used, kept for inspection.
    DeadLetter {
        topic: &'a str,
        payload: &'a [u8],
        reason: &'static str,
        detail: String,
    },
}

/// What a poll found, as the records of one ingest batch (topic `poll`).
pub(crate) fn polled(events: &[(ReloadEvent, Failure)]) -> Vec<Record<'_>> {
    events
        .iter()
        .map(|(event, failure)| Record::Job {
            event,
            failure: *failure,
            topic: "poll",
        })
        .collect()
}

/// What became of one [`Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Job(i64),
    Duplicate {
        job_id: i64,
    },
    DeadLetter,
    /// A recovery job for an app that was failing.
    Recovery(i64),
    /// A successful reload of an app that was not failing: nothing written.
    NotFailing,
    /// A successful reload ended the app's failing streak; no recovery job (no destination
    /// sends recovery notices: the streak was kept for the console).
    StreakEnded,
    /// An app's name remembered, nothing else.
    AppName,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    dedupe_ttl: Duration,
    /// Keep `failing_apps` up to date (recovery notices, the console).
    track_failing: bool,
    /// The end of a streak records a recovery job (some destination sends recovery notices).
    recovery_jobs: bool,
    /// Dead letters written since the table was last trimmed to its bounds.
    dead_letters_since_trim: usize,
    /// Writes join the store thread's group transaction (`shared::atomically`).
    grouped: bool,
}

impl Store {
    /// The error for a failed SQLite call, with the database path.
    pub(crate) fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` atomically: all of it is written when `f` returns `Ok`, none of it when it
    /// fails. On its own, that is one `IMMEDIATE` transaction (it takes the write lock first,
    /// waiting out the busy timeout: a deferred one that read first would fail at once with
    /// "database is locked" when another connection had written meanwhile); on the store thread,
    /// a savepoint of the group's transaction (`shared::atomically`).
    pub(crate) fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        shared::atomically(&mut self.conn, self.grouped, |e| e, f).map_err(|source| {
            StoreError::Sqlite {
                path: self.path.clone(),
                source,
            }
        })
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, dedupe_ttl: Duration) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.to_owned(),
                source,
            })?;
        }
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
        // Room for every statement a connection runs (`prepare_cached`): the default 16 is
        // fewer than the router's and the workers' together, which then prepared again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        // Page cache per connection, in KiB (SQLite's default is 2,000): in a storm the default
        // filled on every connection and was the largest part of the peak heap (heaptrack).
        // Pages not held here are read from the system's file cache.
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)
            .map_err(sqlite)?;
        // Savepoint and statement journals, sorts and `IN (…)` lists in memory: a store group's
        // savepoints spilled over 64 KiB into files in /var/tmp (1,444 writes in a storm of 300),
        // and a container with a read-only root has no writable temporary directory at all.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sqlite)?;
        if let Err(found) = schema::migrate(&mut conn).map_err(sqlite)? {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found,
                supported: schema::VERSION,
            });
        }
        Ok(Store {
            conn,
            path: path.to_owned(),
            dedupe_ttl,
            track_failing: false,
            recovery_jobs: true,
            dead_letters_since_trim: 0,
            grouped: false,
        })
    }

    /// Failure jobs also record their app as failing, for recovery notices and the console.
    pub fn track_failing_apps(&mut self, on: bool) {
        self.track_failing = on;
    }

    /// Whether the end of a failing streak records a recovery job (default) or only ends it.
    pub fn record_recoveries(&mut self, on: bool) {
        self.recovery_jobs = on;
    }

    /// Writes a batch in one transaction: all of it is on disk when this returns `Ok`, none of it
    /// when it returns `Err`.
    pub fn write(&mut self, records: &[Record]) -> Result<Vec<Written>, StoreError> {
        let now = now_ms();
        let expires = now.saturating_add(crate::domain::millis(self.dedupe_ttl));
        let track_failing = self.track_failing;
        let recovery_jobs = self.recovery_jobs;
        let Store {
            conn,
            path,
            dead_letters_since_trim,
            grouped,
            ..
        } = self;
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        // An early return rolls it all back: see `in_transaction`.
        let written = shared::atomically(conn, *grouped, sqlite, |tx| {
            let mut written = Vec::with_capacity(records.len());
            for record in records {
                let outcome = match record {
                    Record::Job {
                        event,
                        failure,
                        topic,
                    } => {
                        let json = serde_json::to_string(event)?;
                        if let Some(name) = event.app_name.as_deref() {
                            app_names::remember(tx, &event.tenant_id, &event.app_id, name, now)
                                .map_err(sqlite)?;
                        }
                        let written = write_job(tx, event, *failure, topic, &json, now, expires);
                        if let (Ok(Written::Job(job_id)), true) = (&written, track_failing) {
                            notices::note_failure(tx, event, *job_id, now).map_err(sqlite)?;
                        }
                        written
                    }
                    Record::Recovery { event, topic } => {
                        let json = serde_json::to_string(event)?;
                        notices::write_recovery(tx, event, topic, &json, now, recovery_jobs)
                    }
                    Record::AppName { tenant, app, name } => {
                        app_names::remember(tx, tenant, app, name, now).map(|()| Written::AppName)
                    }
                    Record::DeadLetter {
                        topic,
                        payload,
                        reason,
                        detail,
                    } => {
                        *dead_letters_since_trim += 1;
                        dead_letters::write(tx, topic, payload, reason, detail, now)
                    }
                };
                written.push(outcome.map_err(sqlite)?);
            }
            Ok(written)
        })?;
        if self.dead_letters_since_trim >= dead_letters::TRIM_EVERY {
            self.dead_letters_since_trim = 0;
            self.trim_dead_letters();
        }
        Ok(written)
    }

    /// Takes the write lock and lets it go, writing nothing: the file can be written (`doctor`).
    pub fn probe_write(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite { path, source };
        match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx.rollback().map_err(sqlite),
            Err(source) => Err(sqlite(source)),
        }
    }

    /// Forgets dedupe keys past their expiry; returns how many.
    pub fn purge_expired_keys(&mut self) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM dedupe_keys WHERE expires_at < ?1",
                params![now_ms()],
            )
            .map_err(|e| self.sqlite(e))
    }
}

fn write_job(
    tx: &Connection,
    event: &ReloadEvent,
    failure: Failure,
    topic: &str,
    json: &str,
    now: i64,
    expires: i64,
) -> rusqlite::Result<Written> {
    let keys = dedupe_keys(event);
    let mut seen = tx.prepare_cached(
        "SELECT job_id FROM dedupe_keys WHERE key IN (?1, ?2) AND expires_at >= ?3 LIMIT 1",
    )?;
    if let Some(job_id) = seen
        .query_row(params![keys[0], keys[1], now], |r| r.get(0))
        .optional()?
    {
        return Ok(Written::Duplicate { job_id });
    }
    tx.prepare_cached(
        "INSERT INTO jobs (created_at, tenant_id, app_id, reload_id, event_id, failure, topic, event)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        now,
        event.tenant_id,
        event.app_id,
        event.reload_id,
        event.event_id,
        failure.as_str(),
        topic,
        json
    ])?;
    let job_id = tx.last_insert_rowid();
    let mut insert_key = tx.prepare_cached(
        "INSERT OR REPLACE INTO dedupe_keys (key, job_id, expires_at) VALUES (?1, ?2, ?3)",
    )?;
    for key in &keys {
        insert_key.execute(params![key, job_id, expires])?;
    }
    Ok(Written::Job(job_id))
}

/// The same event (by event id) or the same reload (by reload id: an engine attempt and the
/// final outcome of one reload) alerts once.
pub fn dedupe_keys(event: &ReloadEvent) -> [String; 2] {
    [
        format!("event:{}", event.event_id),
        format!("reload:{}:{}", event.tenant_id, event.reload_id),
    ]
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// For tests: a store in `dir` (tracking failing apps when `track_failing`) with one job, a
/// failed reload; returns it and the job's id.
#[cfg(test)]
pub(crate) fn store_with_job(dir: &Path, track_failing: bool) -> (Store, i64) {
    let mut store = Store::open(&dir.join("s.db"), Duration::from_secs(60)).unwrap();
    store.track_failing_apps(track_failing);
    let payload = include_bytes!("../../tests/fixtures/events/app-reload-finished-error.json");
    let event = crate::qlik::event::decode(payload).unwrap();
    let failure = event.failure().unwrap();
    let written = store
        .write(&[Record::Job {
            event: &event,
            failure,
            topic: "t",
        }])
        .unwrap();
    let Written::Job(job) = written[0] else {
        panic!("{written:?}")
    };
    (store, job)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A savepoint journals each page it changes (the store thread runs every call of a group
    /// in one); past 64 KiB SQLite moves that journal to a file in the temporary directory
    /// unless `temp_store` keeps it in memory.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_savepoint_over_64_kib_opens_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store =
            Store::open(&dir.path().join("state.db"), Duration::from_secs(60)).expect("open");
        let body = "a".repeat(1_000);
        let tx = store.conn.transaction().expect("begin");
        tx.execute_batch("CREATE TABLE scratch (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .expect("create");
        for id in 0..400i64 {
            tx.execute("INSERT INTO scratch VALUES (?1, ?2)", params![id, body])
                .expect("insert");
        }
        tx.commit().expect("commit");
        let mut tx = store.conn.transaction().expect("begin");
        let savepoint = tx.savepoint().expect("savepoint");
        let changed = savepoint
            .execute("UPDATE scratch SET body = upper(body)", [])
            .expect("update");
        let spilled = sqlite_temporary_files_open();
        savepoint.commit().expect("release");
        tx.commit().expect("commit");
        assert_eq!(changed, 400);
        assert!(spilled.is_empty(), "SQLite journalled to {spilled:?}");
    }

    /// SQLite's temporary files (`etilqs_…`, unlinked once opened) among this process's files.
    #[cfg(target_os = "linux")]
    fn sqlite_temporary_files_open() -> Vec<String> {
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .map(|target| target.to_string_lossy().into_owned())
            .filter(|target| target.contains("etilqs_"))
            .collect()
    }

    /// Two connections (as the ingest and the shared store are) each run transactions that read,
    /// then write. With deferred transactions a writer whose snapshot went stale got "database is
    /// locked" at once, whatever the busy timeout; immediate ones wait for the lock instead.
    #[test]
    fn concurrent_read_then_write_transactions_of_two_connections_all_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.db");
        Store::open(&path, Duration::from_secs(60)).expect("create");
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut store = Store::open(&path, Duration::from_secs(60)).expect("open");
                    for n in 0..200i64 {
                        store
                            .in_transaction(|tx| {
                                let seen: i64 = tx.query_row(
                                    "SELECT count(*) FROM poll_watermarks",
                                    [],
                                    |r| r.get(0),
                                )?;
                                tx.execute(
                                    "INSERT INTO poll_watermarks (tenant_id, polled_until) VALUES (?1, ?2)",
                                    params![format!("w{w}-{n}"), seen],
                                )
                            })
                            .expect("every transaction commits");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer thread");
        }
        let store = Store::open(&path, Duration::from_secs(60)).expect("open");
        let count: i64 = store
            .conn
            .query_row("SELECT count(*) FROM poll_watermarks", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 400);
    }
}
