//! Request extractors whose rejections are problem+json answers with API.md's codes.
//!
//! axum's own extractors answer in plain text and insist on a `Content-Type` header; these
//! read the body whatever its declared type (curl users often forget `-H`), name the field
//! at fault, and tell a syntax error (400 `malformed_json`) from a well-formed body with a
//! wrong value (422 `validation_failed`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::MAX_BODY_BYTES;

/// A JSON request body.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(MAX_BODY_BYTES)
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON document, naming the path of the value at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { String::new() } else { path };
                let detail = if field.is_empty() {
                    inner.to_string()
                } else {
                    format!("{field}: {inner}")
                };
                ApiError::Validation {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    field: (!field.is_empty()).then_some(field),
                    detail,
                }
            }
            _ => ApiError::MalformedJson(format!("the body is not valid JSON: {inner}")),
        }
    })
}

/// A query string. One that does not parse is a 400 `validation_failed`.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::bad_query(rejection.body_text()))
    }
}

/// Path parameters. An id that cannot exist (not a number, not a UUID) is a 404, the same
/// answer as an id that does not exist, so clients need handle only one case.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|_| ApiError::NotFound("the resource"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        name: String,
        rooms: i64,
    }

    #[test]
    fn a_valid_body_parses() {
        let body = parse_json::<Body>(br#"{"name": "x", "rooms": 2, "extra": true}"#).unwrap();
        assert_eq!((body.name.as_str(), body.rooms), ("x", 2));
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        for bad in [&b"{"[..], b"not json", b"{\"name\": }", b""] {
            let error = parse_json::<Body>(bad).unwrap_err();
            assert_eq!(error.code(), "malformed_json", "{bad:?}");
            assert_eq!(error.status_code(), 400);
        }
    }

    #[test]
    fn wrong_types_name_the_field() {
        let error = parse_json::<Body>(br#"{"name": "x", "rooms": "two"}"#).unwrap_err();
        assert_eq!(error.code(), "validation_failed");
        assert_eq!(error.status_code(), 422);
        match error {
            ApiError::Validation { field, .. } => assert_eq!(field.as_deref(), Some("rooms")),
            other => panic!("unexpected {other:?}"),
        }
        let error = parse_json::<Body>(br#"{"rooms": 2}"#).unwrap_err();
        assert_eq!(error.status_code(), 422);
        assert!(error.to_string().contains("name"), "{error}");
    }
}
