//! The one error type of the API and its `application/problem+json` form (RFC 9457).
//!
//! Every failure a handler can meet becomes an [`ApiError`]; its variants are the `code`s of
//! API.md. The booking layer's errors arrive through one `From` impl (the booking layer is
//! where storage errors, constraint violations included, got their meaning). A 500 is
//! logged with its whole cause chain and answered with a fixed sentence, so SQL, connection
//! strings and stack traces never reach a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::booking::BookingError;
use crate::domain::InvalidField;

/// Seconds a client should wait before retrying a 409 `request_in_progress` or a 503.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Validation {
        status: StatusCode,
        field: Option<String>,
        detail: String,
    },
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// A refusal of the booking layer's own (sold out, hold limit, conflict, request in
    /// progress, idempotency conflict), in that layer's words.
    #[error(transparent)]
    Refused(BookingError),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0} is unavailable; retry shortly")]
    Unavailable(&'static str),
    #[error("the service is at its limit of requests in flight; retry shortly")]
    Overloaded,
    /// The caller is over its rate; the seconds to wait.
    #[error("too many requests from this caller; retry in {0} s")]
    RateLimited(u64),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case code, one of API.md's.
    pub code: &'static str,
    /// The request field at fault, for validation errors; the restriction broken, for
    /// `restriction_violated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// A 422 for a body or query value that parsed but is out of range.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Validation {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// A 400 for a query string that does not parse at all.
    pub fn bad_query(detail: impl Into<String>) -> Self {
        Self::Validation {
            status: StatusCode::BAD_REQUEST,
            field: None,
            detail: detail.into(),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation { status, .. } => *status,
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Refused(
                BookingError::IdempotencyConflict | BookingError::RestrictionViolated { .. },
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Refused(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::MalformedJson(_) => "malformed_json",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Refused(refusal) => match refusal {
                BookingError::SoldOut => "sold_out",
                BookingError::HoldLimit(_) => "hold_limit",
                BookingError::RequestInProgress => "request_in_progress",
                BookingError::IdempotencyConflict => "idempotency_conflict",
                BookingError::RestrictionViolated { .. } => "restriction_violated",
                _ => "conflict",
            },
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded => "overloaded",
            Self::RateLimited(_) => "rate_limited",
            Self::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "Validation failed",
            Self::MalformedJson(_) => "Malformed JSON",
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Refused(refusal) => match refusal {
                BookingError::SoldOut => "Sold out",
                BookingError::HoldLimit(_) => "Hold limit reached",
                BookingError::RequestInProgress => "Request in progress",
                BookingError::IdempotencyConflict => "Idempotency conflict",
                BookingError::RestrictionViolated { .. } => "Restriction violated",
                _ => "Conflict",
            },
            Self::PayloadTooLarge(_) => "Payload too large",
            Self::Unavailable(_) => "Service unavailable",
            Self::Overloaded => "Overloaded",
            Self::RateLimited(_) => "Rate limited",
            Self::Internal(_) => "Internal server error",
        }
    }
}

impl From<BookingError> for ApiError {
    fn from(error: BookingError) -> Self {
        match error {
            BookingError::Invalid(invalid) => invalid.into(),
            BookingError::Required(column) => {
                Self::invalid(column.clone(), format!("{column} is required"))
            }
            BookingError::Malformed => Self::Validation {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                field: None,
                detail: BookingError::Malformed.to_string(),
            },
            BookingError::NotFound(what) => Self::NotFound(what),
            BookingError::Unavailable(what) => Self::Unavailable(what),
            BookingError::Overloaded => Self::Overloaded,
            BookingError::Internal(cause) => Self::Internal(cause),
            refusal @ (BookingError::SoldOut
            | BookingError::HoldLimit(_)
            | BookingError::Conflict(_)
            | BookingError::RequestInProgress
            | BookingError::IdempotencyConflict
            | BookingError::RestrictionViolated { .. }) => Self::Refused(refusal),
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(invalid: InvalidField) -> Self {
        Self::invalid(invalid.field, invalid.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self {
            Self::Validation { field, .. } => field.clone(),
            Self::Refused(BookingError::RestrictionViolated { restriction, .. }) => {
                Some(restriction.name().to_owned())
            }
            _ => None,
        };
        let problem = Problem {
            kind: format!("https://innkeeper.dev/problems/{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            detail,
            code: self.code(),
            field,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(
            self,
            Self::Refused(BookingError::RequestInProgress)
                | Self::Unavailable(_)
                | Self::Overloaded
        ) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if let Self::RateLimited(seconds) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_status_of_the_contract() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::invalid("rooms", "x"), 422, "validation_failed"),
            (ApiError::bad_query("x"), 400, "validation_failed"),
            (ApiError::MalformedJson("x".into()), 400, "malformed_json"),
            (ApiError::Unauthorized("x"), 401, "unauthorized"),
            (ApiError::Forbidden("x"), 403, "forbidden"),
            (ApiError::NotFound("hotel"), 404, "not_found"),
            (ApiError::Refused(BookingError::SoldOut), 409, "sold_out"),
            (
                ApiError::Refused(BookingError::HoldLimit(3)),
                409,
                "hold_limit",
            ),
            (
                ApiError::Refused(BookingError::Conflict("x".into())),
                409,
                "conflict",
            ),
            (
                ApiError::Refused(BookingError::RequestInProgress),
                409,
                "request_in_progress",
            ),
            (
                ApiError::Refused(BookingError::IdempotencyConflict),
                422,
                "idempotency_conflict",
            ),
            (ApiError::PayloadTooLarge(1), 413, "payload_too_large"),
            (ApiError::Unavailable("x"), 503, "unavailable"),
            (ApiError::Overloaded, 503, "overloaded"),
            (ApiError::RateLimited(3), 429, "rate_limited"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{code}");
            assert_eq!(error.code(), code);
        }
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let error = ApiError::Internal(anyhow::anyhow!("password=hunter2 SELECT * FROM secrets"));
        let response = error.into_response();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "internal");
        assert_eq!(problem["status"], 500);
        let text = String::from_utf8_lossy(&body);
        for secret in ["hunter2", "SELECT", "secrets"] {
            assert!(!text.contains(secret), "the body leaks {secret}: {text}");
        }
    }

    #[test]
    fn booking_errors_keep_their_meaning() {
        let cases: Vec<(BookingError, u16, &str)> = vec![
            (
                InvalidField::new("rooms", "x").into(),
                422,
                "validation_failed",
            ),
            (
                BookingError::Required("rate_cents".into()),
                422,
                "validation_failed",
            ),
            (BookingError::NotFound("hotel"), 404, "not_found"),
            (BookingError::SoldOut, 409, "sold_out"),
            (BookingError::HoldLimit(3), 409, "hold_limit"),
            (BookingError::Conflict("x".into()), 409, "conflict"),
            (BookingError::RequestInProgress, 409, "request_in_progress"),
            (
                BookingError::IdempotencyConflict,
                422,
                "idempotency_conflict",
            ),
            (BookingError::Unavailable("Redis"), 503, "unavailable"),
            (BookingError::Overloaded, 503, "overloaded"),
            (
                BookingError::Internal(anyhow::anyhow!("x")),
                500,
                "internal",
            ),
        ];
        for (error, status, code) in cases {
            let error = ApiError::from(error);
            assert_eq!((error.status_code().as_u16(), error.code()), (status, code));
        }
    }

    #[test]
    fn retryable_errors_say_when() {
        for error in [
            ApiError::Refused(BookingError::RequestInProgress),
            ApiError::Unavailable("redis"),
            ApiError::Overloaded,
        ] {
            let response = error.into_response();
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
    }
}
