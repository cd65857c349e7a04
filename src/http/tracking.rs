//! What every request leaves behind: a request id, a span that carries it into each log
//! line of the request, and the HTTP metrics, labelled by the matched route template.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use crate::telemetry;

/// The header a request id arrives and leaves in.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
const MAX_REQUEST_ID_BYTES: usize = 64;

/// Drops a client's request id that is empty, longer than [`MAX_REQUEST_ID_BYTES`] or not
/// printable ASCII, so that one is made up instead: the id goes verbatim into every log
/// line of the request, where a megabyte or a terminal escape has no place.
pub async fn drop_unfit_request_id(mut request: Request) -> Request {
    let unfit = request.headers().get(&REQUEST_ID).is_some_and(|id| {
        let bytes = id.as_bytes();
        bytes.is_empty()
            || bytes.len() > MAX_REQUEST_ID_BYTES
            || !bytes.iter().all(u8::is_ascii_graphic)
    });
    if unfit {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The route label of a request that matched no route: its raw path could hold anything,
/// so it never becomes a label.
const UNMATCHED: &str = "unmatched";

/// The span of one request. It runs after the request id is set (taken from the client or
/// made up), so every log line inside it, whatever module writes it, names the request.
pub fn request_span(request: &Request<Body>) -> Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    tracing::info_span!(
        "request",
        request_id,
        method = request.method().as_str(),
        route,
        path = request.uri().path(),
    )
}

/// Counts and times each request by method, route template and status.
pub async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = telemetry::method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    telemetry::record_http_request(method, route, response.status(), started.elapsed());
    response
}
