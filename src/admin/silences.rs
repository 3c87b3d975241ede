//! `GET /silences`, `POST /silences`, `DELETE /silences/{id}`: ad-hoc silences over HTTP, the
//! same as `reload-butler silence list|add|remove` (one validation: [`crate::silence::add`]).
//!
//! Every answer is JSON; refusals are `{"error": "..."}` with 400 (bad input), 401/403 (see
//! [`super::access`]), 404 (no such silence), 415 (not `application/json`: this also keeps a
//! browser from posting here cross-site without a CORS preflight) or 500 (state store).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};

use super::access::Access;
use super::answer::{error, json};
use crate::silence::{self, AddError, NewSilence};
use crate::store::{SharedStore, StoredSilence};

/// Largest request body: a silence is a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;

/// The silence routes, each behind the access check.
pub(super) fn router(store: SharedStore, access: Arc<Access>) -> Router {
    Router::new()
        .route("/silences", get(list).post(add))
        .route("/silences/{id}", delete(remove))
        .route_layer(middleware::from_fn_with_state(access, guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(store)
}

pub(super) async fn guard(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    match access.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string())
                .unwrap_or_default();
            tracing::warn!(
                reason = denied.reason(),
                method = %request.method(),
                path = request.uri().path(),
                peer,
                "admin request refused"
            );
            denied.into_response()
        }
    }
}

/// A stored silence as the endpoint shows it; filters that are not set are left out.
#[derive(Debug, serde::Serialize)]
struct SilenceView {
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    space: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    starts_at: String,
    ends_at: String,
    comment: String,
    resend: bool,
}

impl From<StoredSilence> for SilenceView {
    fn from(s: StoredSilence) -> Self {
        let time = |ms: i64| {
            DateTime::<Utc>::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        Self {
            id: s.id,
            app: s.matcher.app,
            tenant: s.matcher.tenant,
            space: s.matcher.space,
            tag: s.matcher.app_tag,
            error_code: s.matcher.error_code,
            starts_at: time(s.starts_at),
            ends_at: time(s.ends_at),
            comment: s.comment,
            resend: s.resend,
        }
    }
}

async fn list(State(store): State<SharedStore>, RawQuery(query): RawQuery) -> Response {
    let all = match query.as_deref().unwrap_or("") {
        "" | "all=false" => false,
        "all=true" => true,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown query `{other}`: the only one is `all=true`"),
            )
        }
    };
    match store.silences(all).await {
        Ok(silences) => json(
            StatusCode::OK,
            &silences
                .into_iter()
                .map(SilenceView::from)
                .collect::<Vec<_>>(),
        ),
        Err(e) => store_failed(e),
    }
}

async fn add(
    State(store): State<SharedStore>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the silence as JSON, with `Content-Type: application/json`",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            // The body was not read to its end, so this connection cannot carry another request:
            // say so, or a client reusing it gets a reset.
            let mut response = error(rejection.status(), rejection.body_text());
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    let request: NewSilence = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    match silence::add(&store, request, Utc::now()).await {
        Ok(added) => {
            tracing::info!(
                id = added.id,
                filters = %silence::describe(&added.matcher),
                until = ?DateTime::<Utc>::from_timestamp_millis(added.ends_at),
                comment = ?added.comment,
                "silence added through the admin endpoint"
            );
            let mut response = json(StatusCode::CREATED, &SilenceView::from(added.clone()));
            if let Ok(location) = HeaderValue::from_str(&format!("/silences/{}", added.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(AddError::Invalid(why)) => error(StatusCode::BAD_REQUEST, why),
        Err(too_many @ AddError::TooMany) => error(StatusCode::CONFLICT, too_many),
        Err(AddError::Store(e)) => store_failed(e),
    }
}

async fn remove(
    State(store): State<SharedStore>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = id.ok().and_then(|Path(id)| id.parse::<i64>().ok()) else {
        return error(StatusCode::BAD_REQUEST, "the silence id must be an integer");
    };
    match store.remove_silence(id).await {
        Ok(true) => {
            tracing::info!(id, "silence removed through the admin endpoint");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        Err(e) => store_failed(e),
    }
}

/// `application/json`, with or without parameters such as `charset`.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn store_failed(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "admin silence request failed in the state store");
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}
