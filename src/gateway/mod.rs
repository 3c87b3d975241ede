//! `reload-butler gateway`: receives Qlik Cloud webhooks over HTTP(S), verifies them and
//! publishes each body unchanged to `<gateway.topic_prefix>/<tenantId>` at QoS 1, answering 200
//! only after the broker's PUBACK.
//!
//! This file is the wiring: start-up checks, the MQTT publisher, the listener (plain HTTP, or
//! HTTPS with rustls) serving the axum router of `server.rs` over hyper, and graceful shutdown:
//! on SIGINT/SIGTERM stop accepting, let requests in flight finish (bounded), then disconnect
//! from the broker.

mod budget;
mod rejection;
pub mod server;
pub mod tls;
pub mod verify;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, GatewayConfig, MqttConfig};
use crate::listener::RefusalLog;
use crate::metrics::GatewayMetrics;
use crate::mqtt::publisher::{Publisher, ACK_BOUND};
use crate::mqtt::MqttError;
use server::Gateway;
use verify::Verifier;

/// How long shutdown waits for requests in flight; more than a publish may take.
pub const DRAIN_BOUND: Duration = Duration::from_secs(10);
/// How long the MQTT disconnect may take at shutdown.
const DISCONNECT_BOUND: Duration = Duration::from_secs(5);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a connection reads ahead of the handler (headers must fit: hyper answers 431).
const READ_BUFFER: usize = 64 * 1024;
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body the publisher can carry in one MQTT packet, with room for the topic.
const MAX_BODY_LIMIT: u64 = 15 << 20;
/// Qlik Cloud accepts webhook secrets of 32 to 64 characters.
const QLIK_MIN_SECRET: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway.secrets is empty: set at least one webhook secret (the one entered in Qlik Cloud), e.g. secrets: [\"${{QLIK_WEBHOOK_SECRET}}\"]")]
    NoSecret,
    #[error("mqtt.url is null: the gateway publishes to an MQTT broker; set mqtt.url")]
    NoBroker,
    #[error("gateway.path `{0}` is one of the gateway's own paths (/healthz, /readyz, /metrics)")]
    ReservedPath(String),
    #[error("gateway.max_body must be at most {MAX_BODY_LIMIT} bytes (15MiB) to fit in one MQTT message")]
    BodyLimit,
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("mqtt: {0}")]
    Mqtt(#[from] MqttError),
    #[error("cannot listen on gateway.listen {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl GatewayError {
    /// Whether this is a configuration problem (exit 2) rather than a run-time failure (exit 1).
    pub fn is_config(&self) -> bool {
        !matches!(self, Self::Listen { .. } | Self::Signals(_))
    }
}

/// The gateway's start-up checks that hold for any configuration, gateway run or not: its
/// path, its body limit, and its TLS certificate and key when set (read and paired now).
/// `check` reports them; each message names its key. No network.
pub fn config_problems(config: &Config) -> Vec<crate::config::Problem> {
    let gateway = &config.gateway;
    let mut errors = Vec::new();
    if let Err(error) = limits(gateway) {
        errors.push(error);
    }
    if let Some((cert, key)) = &gateway.tls {
        if let Err(error) = tls::acceptor(cert, key) {
            errors.push(error.into());
        }
    }
    errors
        .into_iter()
        .map(|error| crate::config::Problem {
            path: String::new(),
            message: error.to_string(),
        })
        .collect()
}

fn limits(gateway: &GatewayConfig) -> Result<(), GatewayError> {
    if server::RESERVED_PATHS.contains(&gateway.path.as_str()) {
        return Err(GatewayError::ReservedPath(gateway.path.clone()));
    }
    if gateway.max_body > MAX_BODY_LIMIT {
        return Err(GatewayError::BodyLimit);
    }
    Ok(())
}

/// Checks what only the gateway needs from the configuration, before anything starts.
fn check(config: &Config) -> Result<(&GatewayConfig, &MqttConfig), GatewayError> {
    let gateway = &config.gateway;
    let mqtt = config.mqtt.as_ref().ok_or(GatewayError::NoBroker)?;
    if gateway.secrets.is_empty() {
        return Err(GatewayError::NoSecret);
    }
    limits(gateway)?;
    for (index, secret) in gateway.secrets.iter().enumerate() {
        if secret.expose().chars().count() < QLIK_MIN_SECRET {
            tracing::warn!(
                key = %format!("gateway.secrets[{index}]"),
                "shorter than the 32 characters Qlik Cloud requires of a webhook secret"
            );
        }
    }
    Ok((gateway, mqtt))
}

/// The gateway. Returns after a shutdown signal was handled.
pub async fn run(config: Config) -> Result<(), GatewayError> {
    let signal = shutdown_signal()?;
    run_until(config, signal).await
}

/// The gateway until `stop` completes (the demo runs it in-process this way).
pub async fn run_until(
    config: Config,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), GatewayError> {
    let (settings, mqtt) = check(&config)?;
    let tls = match &settings.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let metrics = Arc::new(GatewayMetrics::default());
    let (mqtt_stop, mqtt_stop_rx) = watch::channel(false);
    let (publisher, mqtt_task) = Publisher::start(mqtt, metrics.clone(), mqtt_stop_rx)?;
    let address = settings.listen;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| GatewayError::Listen { address, source })?;
    let app = server::router(Arc::new(Gateway {
        path: settings.path.clone(),
        verifier: Verifier::new(&settings.secrets),
        publisher,
        metrics: metrics.clone(),
        max_body: settings.max_body,
        budget: budget::BodyBudget::new(settings.body_budget),
        topic_prefix: settings.topic_prefix.clone(),
        allowed_tenants: settings.allowed_tenants.clone(),
    }));
    tracing::info!(
        address = %listener.local_addr().unwrap_or(address),
        https = tls.is_some(),
        path = %settings.path,
        secrets = settings.secrets.len(),
        topic_prefix = %settings.topic_prefix,
        ack_bound = ?ACK_BOUND,
        "gateway listening"
    );

    let (http_stop, http_stop_rx) = watch::channel(false);
    // Each connection task holds a sender; `recv` returns `None` once every one has ended.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let mut refusals = RefusalLog::new("connections over gateway.max_connections closed");
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        drop(stream);
                        metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        refusals.note(settings.max_connections);
                        continue;
                    };
                    tokio::spawn(connection(stream, peer, app.clone(), tls.clone(), http_stop_rx.clone(), (open.clone(), slot)));
                }
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut signal => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    let _ = http_stop.send(true);
    drop(open);
    if tokio::time::timeout(DRAIN_BOUND, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(bound = ?DRAIN_BOUND, "requests still in flight after the bound; their senders get no answer and may retry");
    }
    let _ = mqtt_stop.send(true);
    let _ = tokio::time::timeout(DISCONNECT_BOUND, mqtt_task).await;
    tracing::info!("stopped");
    Ok(())
}

/// One accepted connection: the TLS handshake if configured, then HTTP/1.1 until the client
/// closes it or shutdown asks it to finish.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    _open: (mpsc::Sender<()>, OwnedSemaphorePermit),
) {
    let Some(acceptor) = tls else {
        return serve(stream, peer, app, stop).await;
    };
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = stopped(&mut stop) => return,
    };
    serve(stream, peer, app, stop).await;
}

async fn serve<T>(stream: T, peer: SocketAddr, app: Router, mut stop: watch::Receiver<bool>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        Box::pin(service.call(request))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        // hyper reads ahead up to ~400 KB a connection by default: a flood of large bodies
        // would hold that much each, outside the body budget.
        .max_buf_size(READ_BUFFER);
    let mut conn = builder.serve_connection(TokioIo::new(stream), service);
    let result = tokio::select! {
        result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => result,
        () = stopped(&mut stop) => {
            // Finish the request in progress, if any, then close.
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
    // The connection's read buffer and service go now, not after the linger.
    let stream = conn.into_parts().io.into_inner();
    linger(stream).await;
}

/// How long a closed connection keeps reading what its client still sends.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// How much it reads (and discards) at most meanwhile: more than the largest `max_body`.
const LINGER_BYTES: usize = 32 << 20;

/// Closes like nginx's lingering close: our side first (the client sees the end of the answer),
/// then what the client still sends is read and discarded, a bounded amount for a bounded time,
/// before the socket is dropped. Closing with unread data makes the kernel send a reset, which
/// can destroy an answer the client has not read yet: a client that sends a whole over-limit
/// body would see a reset instead of its 413.
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut stream: T) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// Resolves once `stop` is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves at the first signal.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, GatewayError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(GatewayError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(GatewayError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
        }
    })
}
