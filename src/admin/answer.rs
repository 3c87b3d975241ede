//! The admin endpoint's JSON answers.

use std::fmt::Display;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub(super) fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `{"error": message}` with `status`.
pub(super) fn error(status: StatusCode, message: impl Display) -> Response {
    let body = serde_json::json!({ "error": message.to_string() }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
