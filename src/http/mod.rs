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
mod reservations;
mod room_types;
mod rooms;
pub mod tracking;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{middleware, Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::booking::catalog::Catalog;
use crate::booking::health::Health;
use crate::booking::Booker;
use crate::clock::Clock;
use crate::config::Config;
use crate::jobs::Jobs;
use auth::Auth;
use error::ApiError;

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
    pub catalog: Arc<Catalog>,
    pub health: Arc<Health>,
    pub jobs: Arc<Jobs>,
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

/// The API's router and its OpenAPI document, before state is attached.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(hotels::router())
        .merge(room_types::router())
        .merge(rooms::router())
        .merge(inventory::router())
        .merge(availability::router())
        .merge(reservations::router())
        .merge(ops::router())
        .merge(admin::router())
        .split_for_parts()
}

/// The OpenAPI document of the routes the server has.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// The complete application: routes, state, limits and fallbacks, and around each route
/// (the fallbacks included) the request id, the request's span and its metrics.
pub fn app(state: AppState) -> Router {
    let (router, document) = routes();
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
                .layer(SetRequestIdLayer::new(
                    tracking::REQUEST_ID,
                    MakeRequestUuid,
                ))
                .layer(TraceLayer::new_for_http().make_span_with(tracking::request_span))
                .layer(PropagateRequestIdLayer::new(tracking::REQUEST_ID)),
        )
        .with_state(state)
}
