//! Why the gateway did not accept a request: one status, one metric label and one log line
//! each. Answers are short fixed texts; they never repeat the body or say which part of a
//! signature check failed.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::verify::SignatureError;
use crate::metrics::{GatewayOutcome, Label};
use crate::mqtt::publisher::PublishError;
use crate::qlik::event::DecodeError;

/// Seconds a sender is asked to wait before retrying after a 503.
const RETRY_AFTER_SECONDS: u32 = 10;

/// Why a request was not accepted; each maps to one status and one metric label.
#[derive(Debug)]
pub(super) enum Rejection {
    NotFound,
    MethodNotAllowed,
    UnsupportedMediaType,
    TooLarge,
    Unauthorized(SignatureError),
    Timeout,
    BadRequest(String),
    Forbidden(String),
    Unavailable(PublishError),
    /// The body budget is spent (a flood of large bodies): 503, retry later.
    Busy,
}

impl Rejection {
    pub(super) fn outcome(&self) -> GatewayOutcome {
        match self {
            Self::NotFound => GatewayOutcome::NotFound,
            Self::MethodNotAllowed => GatewayOutcome::MethodNotAllowed,
            Self::UnsupportedMediaType => GatewayOutcome::UnsupportedMediaType,
            Self::TooLarge => GatewayOutcome::TooLarge,
            Self::Unauthorized(_) => GatewayOutcome::Unauthorized,
            Self::Timeout => GatewayOutcome::Timeout,
            Self::BadRequest(_) => GatewayOutcome::BadRequest,
            Self::Forbidden(_) => GatewayOutcome::Forbidden,
            Self::Unavailable(_) => GatewayOutcome::Unavailable,
            Self::Busy => GatewayOutcome::Busy,
        }
    }

    pub(super) fn into_response(self, max_body: u64) -> Response {
        let text = |status: StatusCode, body: String| (status, body).into_response();
        match self {
            Self::NotFound => text(StatusCode::NOT_FOUND, "not found\n".into()),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "POST")],
                "method not allowed: use POST\n",
            )
                .into_response(),
            Self::UnsupportedMediaType => text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type: expected application/json or application/cloudevents+json\n".into(),
            ),
            Self::TooLarge => text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("payload too large: the limit is {max_body} bytes\n"),
            ),
            Self::Unauthorized(_) => text(StatusCode::UNAUTHORIZED, "unauthorized\n".into()),
            Self::Timeout => text(
                StatusCode::REQUEST_TIMEOUT,
                "request timeout: the body did not arrive in time\n".into(),
            ),
            Self::BadRequest(reason) => {
                text(StatusCode::BAD_REQUEST, format!("bad request: {reason}\n"))
            }
            Self::Forbidden(_) => text(StatusCode::FORBIDDEN, "forbidden: tenant not allowed\n".into()),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
                "service unavailable: the event could not be handed to the MQTT broker; retry later\n",
            )
                .into_response(),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
                "service unavailable: too many large bodies in flight; retry later\n",
            )
                .into_response(),
        }
    }
}

pub(super) fn log(rejection: &Rejection, signature: &str, peer: &str) {
    let outcome = rejection.outcome().as_str();
    match rejection {
        Rejection::NotFound => tracing::debug!(outcome, %peer, "request for an unknown path"),
        Rejection::Unauthorized(error) => tracing::warn!(
            outcome, reason = error.reason(), %signature, %peer,
            "webhook rejected: signature not valid"
        ),
        Rejection::BadRequest(reason) => {
            tracing::warn!(outcome, reason = ?reason, %peer, "webhook rejected: not a JSON object naming its tenant")
        }
        Rejection::Forbidden(tenant) => {
            tracing::warn!(outcome, tenant = ?tenant, %peer, "webhook rejected: tenant not in gateway.allowed_tenants")
        }
        Rejection::Unavailable(error) => {
            tracing::warn!(outcome, %error, %peer, "webhook not accepted: answered 503, the sender may retry")
        }
        _ => tracing::warn!(outcome, %peer, "webhook rejected"),
    }
}

/// A short reason naming the field, never the value: the body is not echoed.
pub(super) fn reason(error: &DecodeError) -> String {
    match error {
        DecodeError::InvalidJson(_) => "the body is not valid JSON".into(),
        DecodeError::NotAnObject => "the body is not a JSON object".into(),
        DecodeError::MissingField(field) => format!("missing required field {field}"),
        DecodeError::WrongType { field, expected } => format!("field {field} should be {expected}"),
        DecodeError::UnknownValue { field, .. } => format!("field {field} has an unknown value"),
        DecodeError::UnknownEventType(_) => "unknown event type".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_field_not_the_value() {
        assert_eq!(
            reason(&DecodeError::MissingField("tenantid")),
            "missing required field tenantid"
        );
        let unknown = DecodeError::UnknownValue {
            field: "data.status",
            value: "<secret-ish>".into(),
        };
        assert!(!reason(&unknown).contains("secret-ish"));
        assert!(!reason(&DecodeError::UnknownEventType("com.evil".into())).contains("evil"));
    }
}
