//! The gateway's HTTP side (axum): the webhook path, checked in order from cheapest to dearest,
//! and `/healthz`, `/readyz`, `/metrics` on the same listener.
//!
//! Webhook checks: path (404) → method (405) → content type (415: `application/json` or
//! `application/cloudevents+json`, parameters allowed) → declared length (413) → signature
//! header present and well-formed (401) → body read up to `max_body` (413) → signature (401)
//! → a JSON object naming its tenant (400) → allowed tenant (403) → publish and PUBACK (200,
//! or 503 with Retry-After). Whatever the event's type or values, a signed object that names an
//! allowed tenant is published: the daemon decides what alerts (design §9.1), and a Qlik
//! webhook answered 4xx again and again may be disabled. A CloudEvent in binary mode (`ce-*`
//! headers, the body is `data`) is verified over the body as received and published in its
//! structured form. Answers are short and fixed; the body is never echoed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::budget::BodyBudget;
use super::rejection::{log, reason, Rejection};
use super::verify::{self, Signature, Verifier};
use crate::metrics::{GatewayMetrics, GatewayOutcome};
use crate::mqtt::publisher::Publisher;
use crate::qlik::event;

/// How long a sender may take to deliver the body once its headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest tenant id put into a topic.
const MAX_TENANT_LEN: usize = 128;

/// What every handler shares.
pub struct Gateway {
    /// The webhook path, e.g. `/qlik/webhook`.
    pub path: String,
    pub verifier: Verifier,
    pub publisher: Publisher,
    pub metrics: Arc<GatewayMetrics>,
    pub max_body: u64,
    /// The body bytes all requests may hold at once beyond their free allowance.
    pub budget: BodyBudget,
    pub topic_prefix: String,
    /// Empty: every tenant.
    pub allowed_tenants: Vec<String>,
}

/// The routes. The webhook is the fallback, matched on the exact path by hand, so that a
/// configured path is never read as an axum pattern.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(webhook)
        .with_state(gateway)
}

/// Paths the gateway serves besides the webhook.
pub const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway.publisher.is_connected() {
        (StatusCode::OK, "mqtt: connected\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "mqtt: disconnected\n").into_response()
    }
}

async fn metrics_text(State(gateway): State<Arc<Gateway>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gateway.metrics.render(gateway.budget.in_flight()),
    )
        .into_response()
}

/// An event handed to the broker.
struct Accepted {
    tenant: String,
    event_id: String,
    event_type: String,
    topic: String,
    bytes: usize,
    secret: usize,
}

async fn webhook(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.to_string())
        .unwrap_or_default();
    let signature = verify::log_prefix(
        request
            .headers()
            .get("qlik-signature")
            .map(HeaderValue::as_bytes),
    );
    let result = handle(&gateway, request).await;
    let outcome = match &result {
        Ok(_) => GatewayOutcome::Accepted,
        Err(rejection) => rejection.outcome(),
    };
    gateway.metrics.requests.inc(outcome);
    match result {
        Ok(a) => {
            tracing::info!(
                tenant = %a.tenant, event_id = ?a.event_id, event_type = ?a.event_type,
                topic = %a.topic, bytes = a.bytes, secret = a.secret + 1, %signature, %peer,
                "webhook accepted and published"
            );
            (StatusCode::OK, "accepted\n").into_response()
        }
        Err(rejection) => {
            log(&rejection, &signature, &peer);
            rejection.into_response(gateway.max_body)
        }
    }
}

async fn handle(gateway: &Gateway, request: Request) -> Result<Accepted, Rejection> {
    if request.uri().path() != gateway.path {
        return Err(Rejection::NotFound);
    }
    if request.method() != Method::POST {
        return Err(Rejection::MethodNotAllowed);
    }
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        return Err(Rejection::UnsupportedMediaType);
    }
    if declared_length(&parts.headers).is_some_and(|length| length > gateway.max_body) {
        return Err(Rejection::TooLarge);
    }
    let header = parts
        .headers
        .get("qlik-signature")
        .map(HeaderValue::as_bytes);
    let signature = Signature::parse(header).map_err(Rejection::Unauthorized)?;
    let body = read_body(body, gateway.max_body, &gateway.budget).await?;
    let secret = gateway
        .verifier
        .verify(&body, &signature)
        .map_err(Rejection::Unauthorized)?;
    let body = match binary_mode(&parts.headers) {
        false => body,
        true => Bytes::from(
            event::structured_from_binary(
                parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
                parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                &body,
            )
            .map_err(|e| Rejection::BadRequest(reason(&e)))?,
        ),
    };
    let event = event::routing(&body).map_err(|e| Rejection::BadRequest(reason(&e)))?;
    let tenant = event.tenant_id;
    if !gateway.allowed_tenants.is_empty() && !gateway.allowed_tenants.contains(&tenant) {
        return Err(Rejection::Forbidden(tenant));
    }
    if !topic_safe(&tenant) {
        return Err(Rejection::BadRequest(
            "the tenant id cannot be used in an MQTT topic".into(),
        ));
    }
    let topic = format!("{}/{tenant}", gateway.topic_prefix);
    let bytes = body.len();
    tracing::debug!(%topic, bytes, "signature valid; publishing the body");
    let started = Instant::now();
    gateway
        .publisher
        .publish(topic.clone(), body.into())
        .await
        .map_err(Rejection::Unavailable)?;
    gateway.metrics.publish_seconds.observe(started.elapsed());
    Ok(Accepted {
        tenant,
        event_id: event.event_id.unwrap_or_default(),
        event_type: event.event_type.unwrap_or_default(),
        topic,
        bytes,
        secret,
    })
}

/// The media types of a JSON event: plain JSON (Qlik's webhooks) and the CloudEvents
/// structured mode. Parameters such as `; charset=utf-8` are allowed.
const JSON_TYPES: [&str; 2] = ["application/json", "application/cloudevents+json"];

fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|mime| {
        JSON_TYPES
            .iter()
            .any(|json| mime.eq_ignore_ascii_case(json))
    })
}

/// The `Content-Type` without its parameters.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .split(';')
        .next()
        .map(str::trim)
}

/// A CloudEvent in binary mode carries its `specversion` as a header; the structured media
/// type says the body is the whole event whatever the headers (the HTTP binding's rule).
fn binary_mode(headers: &HeaderMap) -> bool {
    let structured =
        media_type(headers).is_some_and(|mime| mime.eq_ignore_ascii_case(JSON_TYPES[1]));
    headers.contains_key("ce-specversion") && !structured
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the body, failing as soon as it passes `limit` (a chunked body included): at most the
/// limit plus one frame is ever held.
async fn read_body(body: Body, limit: u64, budget: &BodyBudget) -> Result<Bytes, Rejection> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut held = budget.open();
    let read = async {
        let mut body = Limited::new(body, limit);
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                if error.is::<LengthLimitError>() {
                    Rejection::TooLarge
                } else {
                    Rejection::BadRequest("the body could not be read".into())
                }
            })?;
            if let Ok(data) = frame.into_data() {
                // The budget pays for what is allocated, growth included, before it is.
                let want = bytes.len() + data.len();
                if want > bytes.capacity() {
                    let capacity = (bytes.capacity() * 2).clamp(want, limit.max(want));
                    held.grow_to(capacity).map_err(|_| Rejection::Busy)?;
                    bytes.reserve_exact(capacity - bytes.len());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(bytes))
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(Rejection::Timeout),
        Ok(result) => result,
    }
}

/// A tenant id that makes one topic level: no separator, wildcard, control character or space.
fn topic_safe(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_LEN
        && !tenant
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '+' | '#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let headers = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            map
        };
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("application/json; charset=utf-8")));
        assert!(is_json(&headers("Application/JSON")));
        assert!(is_json(&headers("application/cloudevents+json")));
        assert!(is_json(&headers(
            "application/cloudevents+json; charset=UTF-8"
        )));
        assert!(!is_json(&headers("application/cloudevents-batch+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("application/jsonp")));
        assert!(!is_json(&headers("application/x-www-form-urlencoded")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn binary_mode_is_ce_headers_without_the_structured_type() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(binary_mode(&headers(&[
            ("content-type", "application/json"),
            ("ce-specversion", "1.0")
        ])));
        assert!(!binary_mode(&headers(&[
            (
                "content-type",
                "application/cloudevents+json; charset=utf-8"
            ),
            ("ce-specversion", "1.0")
        ])));
        assert!(!binary_mode(&headers(&[(
            "content-type",
            "application/json"
        )])));
    }

    #[test]
    fn tenant_ids_that_fit_in_a_topic() {
        assert!(topic_safe("xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct"));
        for bad in ["", "a/b", "a+", "#", "a b", "a\nb", &"x".repeat(129)] {
            assert!(!topic_safe(bad), "{bad:?}");
        }
    }
}
