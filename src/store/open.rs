//! Choosing the store at start-up: SQLite at `state.path` (the default) or the PostgreSQL
//! database at `state.url`. [`StateStore`] hands out the ingest store (its own SQLite
//! connection, or the pool) and the shared store of the alerting half and the admin endpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::pg::{PgOptions, PgStore};
use super::{Record, SharedStore, Store, StoreError, Written};
use crate::config::StateConfig;

/// The configured state store, opened (migrated; for PostgreSQL, connected).
#[derive(Clone)]
pub enum StateStore {
    Sqlite {
        path: PathBuf,
        dedupe_ttl: Duration,
        track_failing: bool,
        recovery_jobs: bool,
    },
    Postgres(Arc<PgStore>),
}

/// What the ingest thread commits through: its own SQLite connection (`synchronous=FULL`,
/// batched) or the PostgreSQL pool, driven from that thread on the daemon's runtime.
pub enum IngestStore {
    Sqlite(Store),
    Postgres {
        store: Arc<PgStore>,
        runtime: tokio::runtime::Handle,
    },
}

impl StateStore {
    /// Opens the store `state` names. `track_failing` and `recovery_jobs` are
    /// [`Store::track_failing_apps`] and [`Store::record_recoveries`].
    pub async fn open(
        state: &StateConfig,
        track_failing: bool,
        recovery_jobs: bool,
    ) -> Result<StateStore, StoreError> {
        match &state.url {
            Some(url) => {
                let options = PgOptions {
                    ca_file: state.ca_file.clone(),
                    dedupe_ttl: state.dedupe_ttl,
                    lease: state.lease,
                    track_failing,
                    recovery_jobs,
                };
                let store = PgStore::connect(url.expose(), &options).await?;
                Ok(StateStore::Postgres(Arc::new(store)))
            }
            None => {
                let (path, ttl) = (state.path.clone(), state.dedupe_ttl);
                // Creates and migrates the file now, so a problem stops start-up.
                tokio::task::spawn_blocking(move || Store::open(&path, ttl))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                Ok(StateStore::Sqlite {
                    path: state.path.clone(),
                    dedupe_ttl: state.dedupe_ttl,
                    track_failing,
                    recovery_jobs,
                })
            }
        }
    }

    /// Where the state is, for the start-up log line (never the URL: it may hold a password).
    pub fn describe(&self) -> String {
        match self {
            StateStore::Sqlite { path, .. } => format!("sqlite:{}", path.display()),
            StateStore::Postgres(_) => "postgresql (state.url)".to_owned(),
        }
    }

    /// The PostgreSQL store, when that is the backend.
    pub fn postgres(&self) -> Option<Arc<PgStore>> {
        match self {
            StateStore::Postgres(pg) => Some(pg.clone()),
            StateStore::Sqlite { .. } => None,
        }
    }

    /// A store for the ingest thread (a connection of its own with SQLite).
    pub async fn ingest(&self) -> Result<IngestStore, StoreError> {
        match self {
            StateStore::Sqlite { .. } => Ok(IngestStore::Sqlite(self.sqlite().await?)),
            StateStore::Postgres(store) => Ok(IngestStore::Postgres {
                store: store.clone(),
                runtime: tokio::runtime::Handle::current(),
            }),
        }
    }

    /// A shared store (with SQLite, a connection and store thread of its own).
    pub async fn shared(&self) -> Result<SharedStore, StoreError> {
        match self {
            StateStore::Sqlite { .. } => SharedStore::new(self.sqlite().await?),
            StateStore::Postgres(store) => Ok(SharedStore::postgres(store.clone())),
        }
    }

    async fn sqlite(&self) -> Result<Store, StoreError> {
        let StateStore::Sqlite {
            path,
            dedupe_ttl,
            track_failing,
            recovery_jobs,
        } = self.clone()
        else {
            return Err(StoreError::Task("not a SQLite store".into()));
        };
        let mut store = tokio::task::spawn_blocking(move || Store::open(&path, dedupe_ttl))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        store.track_failing_apps(track_failing);
        store.record_recoveries(recovery_jobs);
        Ok(store)
    }

    /// Start-up upkeep: forgets expired dedupe keys (returns how many) and returns the failing
    /// apps (with `keep_streaks`) or forgets them.
    pub async fn start_up(
        &self,
        keep_streaks: bool,
    ) -> Result<(usize, Vec<(String, String)>), StoreError> {
        match self {
            StateStore::Sqlite { .. } => {
                let mut store = self.sqlite().await?;
                tokio::task::spawn_blocking(move || {
                    let purged = store.purge_expired_keys()?;
                    let failing = if keep_streaks {
                        store.failing_apps()?
                    } else {
                        store.clear_failing_apps()?;
                        Vec::new()
                    };
                    Ok((purged, failing))
                })
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
            }
            StateStore::Postgres(store) => {
                let purged = store.purge_expired_keys().await?;
                let failing = if keep_streaks {
                    store.failing_apps().await?
                } else {
                    // Another instance's config may still keep streaks: leave them.
                    Vec::new()
                };
                Ok((purged, failing))
            }
        }
    }
}

impl IngestStore {
    /// See [`Store::write`]. With PostgreSQL this blocks the calling thread (the ingest
    /// thread, never a runtime worker) until the transaction is committed.
    pub fn write(&mut self, records: &[Record]) -> Result<Vec<Written>, StoreError> {
        match self {
            IngestStore::Sqlite(store) => store.write(records),
            IngestStore::Postgres { store, runtime } => runtime.block_on(store.write(records)),
        }
    }

    pub fn purge_expired_keys(&mut self) -> Result<usize, StoreError> {
        match self {
            IngestStore::Sqlite(store) => store.purge_expired_keys(),
            IngestStore::Postgres { store, runtime } => {
                runtime.block_on(store.purge_expired_keys())
            }
        }
    }
}

impl From<Store> for IngestStore {
    fn from(store: Store) -> Self {
        IngestStore::Sqlite(store)
    }
}
