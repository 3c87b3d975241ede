//! [`SharedStore`]: the connection that the router, the outbox workers, the poll and history
//! upkeep share, owned by one dedicated thread (`store`).
//!
//! **Group commit.** Callers queue closures; the thread runs what is queued back to back (at most
//! [`GROUP_MAX`]), then makes the writes of that group durable with one `fdatasync` of the WAL
//! file, and only then answers the callers that wrote. The connection itself runs with
//! `synchronous=NORMAL` (a commit does not fsync), so a storm pays one fsync per group instead of
//! one per transaction, while no caller is ever told a write succeeded before it is on disk: what
//! callers see is the durability of `synchronous=FULL`. A closure that changed no row (SQLite's
//! `total_changes` did not move) is answered at once.
//!
//! **One transaction per group.** The first write of a group opens an `IMMEDIATE` transaction
//! that the calls after it join, each in a savepoint of its own ([`atomically`]: a call that
//! fails rolls back only what it wrote), and the thread commits it once when the group ends:
//! pages that many calls change (the jobs table, the outbox and its indexes) reach the WAL once
//! per group instead of once per call. Should SQLite roll the group's transaction back (a full
//! disk, an I/O error), the calls that wrote into it are told their writes failed.
//!
//! **Memory after work.** [`RELEASE_AFTER`] after the last write, the thread empties this
//! connection's page cache and asks glibc to give freed heap memory back to the system
//! (`malloc_trim`); and once more [`RELEASE_AGAIN_AFTER`] later, when the HTTP clients have
//! closed the connections the work left idle. Every alert is written through this thread, so "no
//! writes for a while" means "the alerting half went quiet"; the check is a timed wait, nothing
//! per call.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use super::pg::PgStore;
use super::{Store, StoreError};

/// At most this many calls run before the group's fsync, so a busy queue never holds a
/// writer's answer for long.
const GROUP_MAX: usize = 64;
/// Time without writes after which memory is given back.
const RELEASE_AFTER: Duration = Duration::from_secs(2);
/// The second release, after the first: once the HTTP clients have closed the connections the
/// work left idle, so their buffers are given back too.
const RELEASE_AGAIN_AFTER: Duration = crate::http::IDLE_CONNECTIONS_CLOSED;

/// Answers one caller, given whether the group's writes reached the disk.
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// One queued call: runs on the store thread, returns how to answer its caller.
type Job = Box<dyn FnOnce(&mut Store) -> Reply + Send>;

/// The store the alerting half shares: one SQLite connection whose calls run on the store
/// thread, or the PostgreSQL pool (`state.url`). Callers see only the typed methods of
/// `api.rs`.
#[derive(Clone)]
pub struct SharedStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Sender<Job>),
    Postgres(Arc<PgStore>),
}

impl SharedStore {
    /// Starts the store thread, which owns `store` until every clone of the handle is dropped.
    pub fn new(mut store: Store) -> Result<SharedStore, StoreError> {
        let wal = group_commit(&store)?;
        store.grouped = wal.is_some();
        let (jobs, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || serve(store, queue, wal))
            .map_err(StoreError::Thread)?;
        Ok(SharedStore {
            backend: Backend::Sqlite(jobs),
        })
    }

    /// The PostgreSQL store, shared as it is (a pool).
    pub fn postgres(store: Arc<PgStore>) -> SharedStore {
        SharedStore {
            backend: Backend::Postgres(store),
        }
    }

    /// The PostgreSQL store behind this handle, if that is the backend.
    pub(super) fn pg(&self) -> Option<&PgStore> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store: &mut Store| {
            let result = f(store);
            Box::new(move |synced: Result<(), StoreError>| {
                let _ = answer.send(synced.and(result));
            })
        });
        let Backend::Sqlite(jobs) = &self.backend else {
            return Err(StoreError::Task(
                "a SQLite call on the PostgreSQL store".into(),
            ));
        };
        // The thread is gone only after a closure panicked (as a poisoned mutex was before).
        jobs.send(job).map_err(|_| StoreError::Poisoned)?;
        answered.await.map_err(|_| StoreError::Poisoned)?
    }
}

/// Switches the connection to `synchronous=NORMAL` and returns the WAL file to fsync per group;
/// `None` (stay with `synchronous=FULL`, no group fsync) when the database is not a WAL file.
fn group_commit(store: &Store) -> Result<Option<PathBuf>, StoreError> {
    let mode: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .map_err(|e| store.sqlite(e))?;
    // The file name as SQLite resolved it (symbolic links followed): its WAL sits beside it.
    let Some(database) = store.conn.path().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Ok(None);
    }
    let wal = PathBuf::from(format!("{database}-wal"));
    store
        .conn
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| store.sqlite(e))?;
    Ok(Some(wal))
}

fn serve(mut store: Store, queue: Receiver<Job>, wal: Option<PathBuf>) {
    // Set by a write, cleared by the release: the idle polls of the router and the workers
    // (reads, every few seconds) neither postpone the release nor trigger it again.
    let mut release_at: Option<Instant> = None;
    let mut release_again = false;
    loop {
        let received = match release_at {
            Some(at) => queue.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let first = match received {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                release_memory(&store);
                release_at = release_again.then(|| Instant::now() + RELEASE_AGAIN_AFTER);
                release_again = false;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut waiting: Vec<Reply> = Vec::new();
        let mut wrote = false;
        let mut panicked = false;
        let mut ran = 0;
        let mut next = Some(first);
        while let Some(job) = next {
            ran += 1;
            let before = store.conn.total_changes();
            let in_group = !store.conn.is_autocommit();
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut store)));
            let changed = store.conn.total_changes() != before;
            // SQLite rolled the group's transaction back: what was written into it is gone.
            let lost = in_group && store.conn.is_autocommit();
            if lost {
                for reply in waiting.drain(..) {
                    reply(Err(rolled_back(&store)));
                }
            }
            wrote |= changed;
            match run {
                Ok(reply) if lost => reply(Err(rolled_back(&store))),
                Ok(reply) if wal.is_some() && changed => waiting.push(reply),
                Ok(reply) => reply(Ok(())),
                // The caller's answer was dropped with the closure: it sees `Poisoned`.
                Err(_) => {
                    panicked = true;
                    break;
                }
            }
            next = (ran < GROUP_MAX).then(|| queue.try_recv().ok()).flatten();
        }
        if wrote {
            release_at = Some(Instant::now() + RELEASE_AFTER);
            release_again = true;
        }
        let committed = commit_group(&store).map_err(|e| e.to_string());
        if let (Some(wal), false) = (&wal, waiting.is_empty()) {
            let synced = committed.map(|()| sync(wal).map_err(Arc::new));
            for reply in waiting {
                reply(match &synced {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(source)) => Err(StoreError::WalSync {
                        path: wal.clone(),
                        source: source.clone(),
                    }),
                    Err(message) => Err(StoreError::GroupCommit {
                        path: store.path.clone(),
                        message: message.clone(),
                    }),
                });
            }
        }
        if panicked {
            tracing::error!("a state store call panicked; the shared connection is closed");
            break;
        }
    }
}

/// One write transaction on `conn`, `fail` turning SQLite's errors into the caller's. Outside a
/// group (the ingest connection, `doctor`, a store used directly) its own `IMMEDIATE`
/// transaction, committed here. In one (`grouped`: the store thread's connection) a savepoint
/// of the group's transaction, which the first write of a group opens and [`commit_group`]
/// commits.
pub(super) fn atomically<T, E>(
    conn: &mut Connection,
    grouped: bool,
    fail: impl Fn(rusqlite::Error) -> E,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    if conn.is_autocommit() && !grouped {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&fail)?;
        let value = f(&tx)?;
        tx.commit().map_err(&fail)?;
        return Ok(value);
    }
    if conn.is_autocommit() {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(&fail)?;
    }
    // Dropped on an early return: rolls back what `f` wrote, and only that.
    let savepoint = conn.savepoint().map_err(&fail)?;
    let value = f(&savepoint)?;
    savepoint.commit().map_err(&fail)?;
    Ok(value)
}

/// Commits the group's transaction, if a write opened one; rolls it back when the commit fails.
fn commit_group(store: &Store) -> Result<(), rusqlite::Error> {
    if store.conn.is_autocommit() {
        return Ok(());
    }
    let committed = store.conn.execute_batch("COMMIT");
    if committed.is_err() && !store.conn.is_autocommit() {
        let _ = store.conn.execute_batch("ROLLBACK");
    }
    committed
}

fn rolled_back(store: &Store) -> StoreError {
    StoreError::GroupCommit {
        path: store.path.clone(),
        message: "SQLite rolled back the transaction of this group of writes".to_owned(),
    }
}

/// Flushes the WAL file (every commit of the group is in it) to disk.
fn sync(wal: &Path) -> std::io::Result<()> {
    std::fs::File::open(wal)?.sync_data()
}

/// Gives memory back after work: SQLite's page cache of this connection (refilled from the
/// OS's file cache on the next reads), then the heap memory that is free again, which glibc would
/// otherwise keep in its arenas, so RSS would stay at the storm's peak.
fn release_memory(store: &Store) {
    if let Err(error) = store.conn.execute_batch("PRAGMA shrink_memory") {
        tracing::debug!(%error, "cannot shrink the state store's page cache");
    }
    crate::memory::give_back();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> SharedStore {
        let store = Store::open(&dir.path().join("state.db"), Duration::from_secs(60))
            .expect("open the store");
        SharedStore::new(store).expect("start the store thread")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_each_answered_and_all_committed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(&dir);
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..200i64 {
            let store = store.clone();
            calls.spawn(async move {
                store
                    .call(move |s| s.set_poll_watermark(&format!("tenant-{n}"), n))
                    .await
            });
        }
        while let Some(done) = calls.join_next().await {
            done.expect("task").expect("write");
        }
        // A second connection sees every write.
        let other =
            Store::open(&dir.path().join("state.db"), Duration::from_secs(60)).expect("open again");
        for n in 0..200i64 {
            assert_eq!(
                other.poll_watermark(&format!("tenant-{n}")).expect("read"),
                Some(n)
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_fails_in_a_group_loses_only_its_own_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(&dir);
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..200i64 {
            let store = store.clone();
            calls.spawn(async move {
                let written = store
                    .call(move |s| {
                        s.in_transaction(|tx| {
                            tx.execute(
                                "INSERT INTO poll_watermarks (tenant_id, polled_until) VALUES (?1, ?2)",
                                rusqlite::params![format!("tenant-{n}"), n],
                            )?;
                            match n % 3 {
                                0 => Err(rusqlite::Error::InvalidQuery),
                                _ => Ok(()),
                            }
                        })
                    })
                    .await;
                (n, written)
            });
        }
        while let Some(done) = calls.join_next().await {
            let (n, written) = done.expect("task");
            assert_eq!(written.is_ok(), n % 3 != 0, "call {n}: {written:?}");
        }
        let other =
            Store::open(&dir.path().join("state.db"), Duration::from_secs(60)).expect("open again");
        for n in 0..200i64 {
            let kept = other.poll_watermark(&format!("tenant-{n}")).expect("read");
            assert_eq!(kept, (n % 3 != 0).then_some(n), "call {n}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn writes_through_a_symbolic_link_to_the_database_succeed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let target = real.join("state.db");
        Store::open(&target, Duration::from_secs(60)).expect("create");
        let link = dir.path().join("state.db");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let store = SharedStore::new(Store::open(&link, Duration::from_secs(60)).expect("open"))
            .expect("start the store thread");
        store
            .call(|s| s.set_poll_watermark("tenant", 7))
            .await
            .expect("a write through the link is synced");
    }

    #[tokio::test]
    async fn a_panicking_call_closes_the_connection_for_later_calls() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(&dir);
        let panicked = store
            .call(|_| -> Result<(), StoreError> { panic!("a bug in a store call") })
            .await;
        assert!(matches!(panicked, Err(StoreError::Poisoned)));
        let later = store.call(|s| s.pending_count()).await;
        assert!(matches!(later, Err(StoreError::Poisoned)));
    }
}
