//! Serving an axum router over HTTP/1.1 on a TCP listener, with the limits that keep a flood of
//! slow or idle connections from starving the process: a cap on open connections (the ones over
//! it are closed at once, so they cost no file descriptor), a header timeout (idle keep-alive
//! connections included) and a bound on each whole request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How often a refused connection is logged at most.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle.
    pub header_timeout: Duration,
    /// How long one request may take, body and answer included; then 408.
    pub request_timeout: Duration,
}

/// Counts what the limits did, for the metrics of the listener's owner.
pub trait Tally: Send + Sync + 'static {
    /// A connection over `max_connections` was closed.
    fn refused(&self);
    /// A request ran past `request_timeout`.
    fn timed_out(&self);
}

/// Serves `app` on `listener` until `stop` is set, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tally: Arc<dyn Tally>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut refusals = RefusalLog::new("connections over the cap closed");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            tally.refused();
            refusals.note(limits.max_connections);
            continue;
        };
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            limits,
            tally.clone(),
            stop.clone(),
            slot,
        ));
    }
}

/// One connection: HTTP/1.1 until the client closes it, a limit ends it, or shutdown asks it to
/// finish the request in progress.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    tally: Arc<dyn Tally>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let service = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let call = service.call(request);
        let tally = tally.clone();
        async move {
            match tokio::time::timeout(limits.request_timeout, call).await {
                Ok(answer) => answer,
                Err(_) => {
                    tally.timed_out();
                    Ok((StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response())
                }
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}

/// A warning about connections closed over a cap, at most every [`REFUSAL_LOG_INTERVAL`], with
/// how many since the last one.
pub struct RefusalLog {
    message: &'static str,
    last: Option<Instant>,
    since: u64,
}

impl RefusalLog {
    pub fn new(message: &'static str) -> Self {
        Self {
            message,
            last: None,
            since: 0,
        }
    }

    pub fn note(&mut self, max_connections: usize) {
        self.since += 1;
        if self
            .last
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL)
        {
            tracing::warn!(max_connections, refused = self.since, "{}", self.message);
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// Resolves once `stop` is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
