//! The JSON endpoints behind the console, for scripts: the same data as the pages, behind the
//! silence endpoints' guard (`Authorization: Bearer <admin.token>`, or loopback without one).
//!
//! - `GET /failing`: apps failing now.
//! - `GET /alerts?tenant=&app=&destination=&outcome=&limit=`: recent alerts and their deliveries.
//! - `GET /alerts/{id}`: one alert, each delivery with its payload as rendered.
//! - `GET /dead`: dead deliveries, each with its alert and whether it can be resent.
//! - `GET /status`: broker, store, tenants' APIs, destinations.
//! - `POST /deliveries/{id}/resend` (`Content-Type: application/json`, any JSON body): 202
//!   queued, 404, 409 not dead (any more) or nothing to send.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::{health, Console, FilterQuery, LIST_ALERTS, OVERVIEW_DEAD};
use crate::admin::access::Access;
use crate::admin::answer::{error, json};
use crate::store::{AlertRow, Resend, StoreError};

pub(super) fn router(access: Arc<Access>) -> Router<Console> {
    Router::new()
        .route("/failing", get(failing))
        .route("/alerts", get(alerts))
        .route("/alerts/{id}", get(alert))
        .route("/dead", get(dead))
        .route("/status", get(status))
        .route("/deliveries/{id}/resend", post(resend))
        .route_layer(middleware::from_fn_with_state(
            access,
            crate::admin::silences::guard,
        ))
}

fn failed(e: StoreError) -> Response {
    tracing::error!(error = %e, "console API request failed in the state store");
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

async fn failing(State(c): State<Console>) -> Response {
    match c.store.failing_now().await {
        Ok(found) => json(StatusCode::OK, &found),
        Err(e) => failed(e),
    }
}

async fn alerts(
    State(c): State<Console>,
    query: Result<Query<FilterQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let (filter, limit) = (query.filter(), query.limit.unwrap_or(LIST_ALERTS));
    match c.store.alerts(filter, limit).await {
        Ok(found) => json(StatusCode::OK, &found),
        Err(e) => failed(e),
    }
}

async fn alert(State(c): State<Console>, id: Result<Path<i64>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else {
        return error(StatusCode::BAD_REQUEST, "the alert id must be an integer");
    };
    match c.store.alert(id).await {
        Ok(Some(found)) => json(StatusCode::OK, &found),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no alert {id}")),
        Err(e) => failed(e),
    }
}

#[derive(serde::Serialize)]
struct Dead {
    #[serde(flatten)]
    alert: AlertRow,
    resendable: bool,
}

async fn dead(State(c): State<Console>) -> Response {
    match c.store.dead_deliveries(OVERVIEW_DEAD).await {
        Ok(found) => json(
            StatusCode::OK,
            &found
                .into_iter()
                .map(|(alert, resendable)| Dead { alert, resendable })
                .collect::<Vec<_>>(),
        ),
        Err(e) => failed(e),
    }
}

async fn status(State(c): State<Console>) -> Response {
    match c.store.last_delivered().await {
        Ok(delivered) => json(
            StatusCode::OK,
            &health::snapshot(&c.metrics, &c.facts, &delivered),
        ),
        Err(e) => failed(e),
    }
}

async fn resend(
    State(c): State<Console>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    if !crate::admin::silences::is_json(&headers) {
        // A cross-site form cannot send this type without a CORS preflight.
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send `Content-Type: application/json` (any JSON body, e.g. {})",
        );
    }
    let Ok(Path(id)) = id else {
        return error(
            StatusCode::BAD_REQUEST,
            "the delivery id must be an integer",
        );
    };
    match c.store.resend_dead(id).await {
        Ok(Resend::Queued {
            job_id,
            destination,
        }) => {
            tracing::info!(delivery = id, job_id, %destination, "dead delivery put back in the outbox through the admin endpoint");
            c.outbox_wake.notify_waiters();
            json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"id": id, "job_id": job_id, "state": "pending"}),
            )
        }
        Ok(Resend::NotDead { state }) => error(
            StatusCode::CONFLICT,
            format!("delivery {id} is not dead (it is {state}): nothing was sent again"),
        ),
        Ok(Resend::NothingToSend) => error(
            StatusCode::CONFLICT,
            format!("delivery {id} died before a message was rendered: nothing to send"),
        ),
        Ok(Resend::Unknown) => error(StatusCode::NOT_FOUND, format!("no delivery {id}")),
        Err(e) => failed(e),
    }
}
