//! The admin endpoint: `/healthz` (the process answers), `/readyz` (state store open and taking
//! writes, MQTT connected), `/metrics` (Prometheus text), always open; the ad-hoc silences
//! (`silences.rs`) and the web console (`console/`: `GET /`, `/console/…` and its JSON
//! endpoints), behind the access policy of `access.rs`.

mod access;
mod answer;
mod console;
mod silences;

pub use console::Facts;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Secret;
use crate::listener::{Limits, Tally};
use crate::metrics::{inc, Metrics};
use crate::store::SharedStore;

/// Probes and scrapes are small and quick: a few dozen connections cover every scraper and
/// operator, and the cap keeps a flood from using up the daemon's file descriptors.
const LIMITS: Limits = Limits {
    max_connections: 64,
    header_timeout: std::time::Duration::from_secs(10),
    request_timeout: std::time::Duration::from_secs(30),
};

impl Tally for Metrics {
    fn refused(&self) {
        inc(&self.admin_connections_refused);
    }

    fn timed_out(&self) {
        inc(&self.admin_requests_timed_out);
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    /// Whether the daemon uses MQTT at all; without it, readiness is the store alone.
    mqtt_expected: bool,
}

/// What the admin endpoint serves from.
pub struct Admin {
    pub listen: SocketAddr,
    /// `admin.token`: required by the silence endpoints when set.
    pub token: Option<Secret>,
    pub metrics: Arc<Metrics>,
    /// Whether the daemon uses MQTT at all; without it, readiness is the store alone.
    pub mqtt_expected: bool,
    /// A state store connection of the endpoint's own, for the silences and the console.
    pub store: SharedStore,
    /// What the console shows of the configuration.
    pub facts: Facts,
    /// Wakes the outbox workers (after the console puts a dead delivery back).
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

/// Binds `listen` now (so a taken port fails start-up), then serves until `shutdown` is set.
pub async fn serve(
    admin: Admin,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(admin.listen).await?;
    let access = Arc::new(access::Access::new(admin.listen, admin.token.as_ref()));
    tracing::info!(
        address = %listener.local_addr()?,
        silences = access.describe(),
        "admin endpoint listening"
    );
    let tally: Arc<dyn Tally> = admin.metrics.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState {
            metrics: admin.metrics.clone(),
            mqtt_expected: admin.mqtt_expected,
        })
        .merge(console::router(
            admin.store.clone(),
            access.clone(),
            admin.metrics.clone(),
            admin.facts,
            admin.outbox_wake,
        ))
        .merge(silences::router(admin.store, access));
    Ok(tokio::spawn(crate::listener::serve(
        listener, app, LIMITS, tally, shutdown,
    )))
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let open = state.metrics.store_open.load(Ordering::Relaxed);
    let writable = state.metrics.store_writable();
    let store = open && writable;
    let mqtt = !state.mqtt_expected || state.metrics.mqtt_connected.load(Ordering::Relaxed);
    let body = format!(
        "store: {}\nmqtt: {}\n",
        match (open, writable) {
            (false, _) => "closed",
            (true, true) => "open",
            (true, false) => "not writable (writes fail; see store_errors_total and the log)",
        },
        match (state.mqtt_expected, mqtt) {
            (false, _) => "not used",
            (true, true) => "connected",
            (true, false) => "disconnected",
        }
    );
    let status = if store && mqtt {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
