//! The REST API: one router per feature, merged here with the OpenAPI document they
//! describe, so `/openapi.json` lists exactly the routes the server has.

mod admin;
pub mod auth;
mod availability;
pub mod error;
pub mod extract;
mod hotels;
mod inventory;
mod ops;
mod pagination;
mod problems;
mod rate;
mod reservations;
mod restrictions;
mod room_types;
mod rooms;
mod server;
pub mod tracking;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::{middleware, Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::booking::health::Health;
use crate::booking::Booker;
use crate::clock::Clock;
use crate::config::Config;
use crate::jobs::Jobs;
use auth::Auth;
use error::ApiError;
pub use rate::{limits as rate_limits, RateLimits};
pub use server::serve;

/// Largest request body accepted; larger ones are answered 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach: the services it calls, never a store handle. Cloned per
/// request, so everything in it is cheap to clone: the services, which hold pools and
/// caches of their own, sit behind one reference count each.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub auth: Arc<Auth>,
    pub clock: Arc<dyn Clock>,
    pub metrics: PrometheusHandle,
    pub booker: Arc<Booker>,
    pub health: Arc<Health>,
    pub jobs: Arc<Jobs>,
    /// `None` when `INNKEEPER_RATE_LIMIT` is unset.
    pub rate_limits: Option<Arc<RateLimits>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "innkeeper",
        description = "Hotel reservations for peak-season booking surges.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "catalog", description = "Hotels, room types and rooms"),
        (name = "inventory", description = "Rooms and rates per night"),
        (name = "reservations", description = "Availability, booking and the reservation lifecycle"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "webhooks", description = "Booking events to other systems, and payments from the provider"),
        (name = "admin", description = "Staff-only operations"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme that staff and guest routes reference.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The API's routes and their OpenAPI document, before state is attached: the guarded
/// routes (every one a guest or staff calls), and the operations routes that a load
/// balancer and Prometheus must reach however loaded the service is.
fn routes(metrics_apart: bool) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (guarded, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(hotels::router())
        .merge(room_types::router())
        .merge(rooms::router())
        .merge(inventory::router())
        .merge(restrictions::router())
        .merge(availability::router())
        .merge(reservations::router())
        .merge(webhooks::router())
        .merge(admin::router())
        .split_for_parts();
    problems::complete(&mut document, true);
    let (operations, mut operations_document) = ops::router(!metrics_apart).split_for_parts();
    problems::complete(&mut operations_document, false);
    document.merge(operations_document);
    (guarded, operations, document)
}

/// The OpenAPI document of the routes the server has (with `/metrics` on the main
/// listener).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(false).2
}

/// The router of the separate metrics listener (`INNKEEPER_METRICS_BIND`): `/metrics`
/// alone, for a scraper on a private network.
pub fn metrics_app(state: AppState) -> Router {
    let (router, _) = ops::metrics_router().split_for_parts();
    router
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}

/// Admission control and the request deadline, around every guarded route.
///
/// Beyond `max_in_flight` requests at once, a request is answered 503 `overloaded` at
/// once instead of queueing behind the others: under a rush the queue, not the work, is
/// what made every answer slow. A request that takes longer than `request_timeout` is
/// answered 503 `unavailable`; a booking's commit or compensation carries on in its own
/// task, so a retry with the same id finds what it did.
fn guard(
    router: Router<AppState>,
    max_in_flight: Option<usize>,
    request_timeout: Duration,
) -> Router<AppState> {
    let deadline = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(refusal))
        .layer(TimeoutLayer::new(request_timeout));
    let router = router.layer(deadline);
    match max_in_flight {
        Some(max) => router.layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refusal))
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(max)),
        ),
        None => router,
    }
}

/// The answer to a request that admission control or the deadline turned away.
async fn refusal(error: BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Unavailable("the service, within the request deadline,")
    } else {
        ApiError::Internal(anyhow::anyhow!(error))
    }
}

/// The complete application: routes, state, limits and fallbacks, and around each route
/// (the fallbacks included) the request id, the request's span and its metrics.
pub fn app(state: AppState) -> Router {
    let (guarded, operations, document) = routes(state.config.metrics_bind.is_some());
    // The rate limit goes on last, so it runs first: a request over its caller's rate is
    // refused before it takes a place in flight.
    let router = guard(
        guarded,
        state.config.max_in_flight,
        state.config.request_timeout,
    )
    .layer(middleware::from_fn_with_state(
        state.clone(),
        rate::limit_rate,
    ))
    .merge(operations);
    let document = Arc::new(document.to_json().unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document did not serialise");
        String::from("{}")
    }));
    router
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(Extension(document))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(tracking::record_request))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::map_request(tracking::drop_unfit_request_id))
                .layer(SetRequestIdLayer::new(
                    tracking::REQUEST_ID,
                    MakeRequestUuid,
                ))
                // No log line per 5xx answer: an internal error is logged where it happens,
                // with its cause, and under overload a line for every 503 would spend the
                // CPU that shedding saves. Metrics count every answer by status.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(tracking::request_span)
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(tracking::REQUEST_ID)),
        )
        .with_state(state)
}
