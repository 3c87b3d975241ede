//! The PostgreSQL state store (`state.url`): the same questions and writes as the SQLite store,
//! shared by any number of instances. `schema.rs` (versioned migrations, run once under an
//! advisory lock), `ingest.rs` (the ingest transaction, the poll, app names, streaks),
//! `jobs.rs` (jobs claimed with `FOR UPDATE SKIP LOCKED`, routing, rate-limit windows,
//! notices), `outbox.rs` (outbox rows claimed with a lease, outcomes, digests, upkeep),
//! `silences.rs`, `console.rs`.
//!
//! **Claims.** A job or an outbox row being worked on carries `lease_owner` (this instance's
//! id) and `lease_until`. Another instance leaves it alone until the lease expires (its holder
//! died), then takes it over. The outbox worker renews the leases of the rows it is sending on
//! every pass; an outcome is written only while this instance still holds the row, so a row
//! taken over is recorded by its new holder alone.
//!
//! **The database's clock.** Lease times are the server's (`rb_now_ms()`), not each instance's,
//! so instances whose clocks disagree still agree on whether a lease ran out.
//!
//! **One at a time.** The poll holds a named lease (`leases` table) that its holder renews;
//! when the holder stops, another instance takes it over once it expires.

mod console;
mod ingest;
mod jobs;
mod outbox;
mod schema;
mod silences;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::StoreError;

/// Connections this instance keeps open at most.
const POOL_SIZE: usize = 16;
/// The second release of memory after work, past the HTTP clients' idle-connection timeout
/// (as `shared.rs` does for SQLite).
const RELEASE_AGAIN_AFTER: Duration = crate::http::IDLE_CONNECTIONS_CLOSED;
/// A connection attempt (and a wait for a pooled one) gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of connections to the shared PostgreSQL database, and who this instance is.
pub struct PgStore {
    pool: Pool,
    /// This instance's id in claims and leases: host name, process id and a random part.
    instance: String,
    lease_ms: i64,
    dedupe_ttl_ms: i64,
    /// Keep `failing_apps` up to date (recovery notices, the console).
    track_failing: bool,
    /// The end of a streak records a recovery job.
    recovery_jobs: bool,
    /// Work done so far ([`PgStore::worked`]): how [`watch_health`] tells that the alerting
    /// went quiet, to give memory back.
    used: AtomicU64,
}

/// How [`PgStore::connect`] is to behave.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `state.ca_file`: the certificates to trust for TLS instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub dedupe_ttl: Duration,
    pub lease: Duration,
    pub track_failing: bool,
    pub recovery_jobs: bool,
}

impl PgStore {
    /// Connects (one connection is made now, so an unreachable server fails start-up) and
    /// migrates the schema.
    pub async fn connect(url: &str, options: &PgOptions) -> Result<PgStore, StoreError> {
        let store = PgStore::pool(url, options)?;
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// Connects and reads the schema version without changing anything (`check`, `doctor`):
    /// the server answers, the credentials are taken, and the schema is not newer than this
    /// build's.
    pub async fn probe(url: &str, ca_file: Option<&std::path::Path>) -> Result<(), StoreError> {
        let options = PgOptions {
            ca_file: ca_file.map(ToOwned::to_owned),
            dedupe_ttl: Duration::ZERO,
            lease: Duration::ZERO,
            track_failing: false,
            recovery_jobs: false,
        };
        let store = PgStore::pool(url, &options)?;
        let client = store.client().await?;
        schema::check_version(&client).await
    }

    fn pool(url: &str, options: &PgOptions) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Postgres(format!("state.url: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("reload-butler");
        }
        let tls =
            tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(options.ca_file.as_deref())?);
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Postgres(format!("connection pool: {e}")))?;
        Ok(PgStore {
            pool,
            instance: instance_id(),
            lease_ms: crate::domain::millis(options.lease),
            dedupe_ttl_ms: crate::domain::millis(options.dedupe_ttl),
            track_failing: options.track_failing,
            recovery_jobs: options.recovery_jobs,
            used: AtomicU64::new(0),
        })
    }

    /// This instance's id in claims and leases.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.checked_out().await
    }

    /// Counts work done (a commit of alerts, routes or outcomes): the idle looks of the router
    /// and the workers do not count, so they neither postpone nor repeat the memory release.
    pub(super) fn worked(&self) {
        self.used.fetch_add(1, Ordering::Relaxed);
    }

    async fn checked_out(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            let text = match &e {
                deadpool_postgres::PoolError::Backend(source) => describe(source),
                other => other.to_string(),
            };
            StoreError::Postgres(text)
        })
    }

    /// Answers when the server takes a query (`/readyz`, `doctor`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.checked_out().await?;
        client.simple_query("SELECT 1").await.map_err(pg)?;
        Ok(())
    }

    /// Takes or renews the named lease for `ttl` when it is free, expired or already ours;
    /// returns whether this instance holds it now.
    pub async fn hold_lease(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = crate::domain::millis(ttl);
        let client = self.client().await?;
        let held = client
            .query_opt(
                "INSERT INTO leases (name, owner, until) VALUES ($1, $2, rb_now_ms() + $3)
                 ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
                 WHERE leases.owner = EXCLUDED.owner OR leases.until < rb_now_ms()
                 RETURNING owner",
                &[&name, &self.instance, &ttl],
            )
            .await
            .map_err(pg)?;
        Ok(held.is_some())
    }

    /// Lets the named lease go, if this instance holds it (a clean shutdown).
    pub async fn release_lease(&self, name: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM leases WHERE name = $1 AND owner = $2",
                &[&name, &self.instance],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }
}

/// Keeps `store_open` (the metric behind `/readyz`) telling whether the server answers,
/// checking every `every` until `shutdown`. Like the SQLite store thread, it also gives freed
/// heap memory back to the system once the store has not been used for a check's interval (a
/// storm is over), and once more [`RELEASE_AGAIN_AFTER`] later.
pub async fn watch_health(
    store: Arc<PgStore>,
    metrics: Arc<crate::metrics::Metrics>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut was_up = true;
    let mut seen = store.used.load(Ordering::Relaxed);
    let mut release_at: Option<Instant> = None;
    let mut released_once = false;
    loop {
        let used = store.used.load(Ordering::Relaxed);
        if used != seen {
            seen = used;
            release_at = Some(Instant::now() + every);
            released_once = false;
        } else if release_at.is_some_and(|at| Instant::now() >= at) {
            crate::memory::give_back();
            release_at = (!released_once).then(|| Instant::now() + RELEASE_AGAIN_AFTER);
            released_once = true;
        }
        let up = store.ping().await;
        metrics.store_open.store(up.is_ok(), Ordering::Relaxed);
        match (&up, was_up) {
            (Err(error), true) => {
                tracing::error!(%error, "the PostgreSQL state store does not answer; not ready")
            }
            (Ok(()), false) => tracing::info!("the PostgreSQL state store answers again"),
            _ => {}
        }
        was_up = up.is_ok();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

/// rustls (ring, as everywhere in the process) trusting `ca_file`'s certificates, else the
/// system's roots: used when `sslmode` asks for TLS (`prefer`, the default, uses it when the
/// server offers it; `require` insists). The server's name is checked either way.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, StoreError> {
    crate::tls::ensure_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = crate::tls::read_certs(path, "state.ca_file")
                .map_err(|e| StoreError::Postgres(e.to_string()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Postgres(format!("state.ca_file: {e}")))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system store may hold a certificate rustls cannot use; skip it.
                let _ = roots.add(cert);
            }
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A PostgreSQL error as a store error, with the server's message when there is one.
pub(super) fn pg(error: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(describe(&error))
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}
