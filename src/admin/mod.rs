//! The admin endpoint: `/healthz` (the process answers), `/readyz` (state store open and MQTT
//! connected) and `/metrics` (Prometheus text).

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

use crate::metrics::Metrics;

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    /// Whether the daemon uses MQTT at all; without it, readiness is the store alone.
    mqtt_expected: bool,
}

/// Binds `listen` now (so a taken port fails start-up), then serves until `shutdown` is set.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    mqtt_expected: bool,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "admin endpoint listening");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState {
            metrics,
            mqtt_expected,
        });
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "admin endpoint failed");
        }
    }))
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let store = state.metrics.store_open.load(Ordering::Relaxed);
    let mqtt = !state.mqtt_expected || state.metrics.mqtt_connected.load(Ordering::Relaxed);
    let body = format!(
        "store: {}\nmqtt: {}\n",
        if store { "open" } else { "closed" },
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
