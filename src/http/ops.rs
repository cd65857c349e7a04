//! Operations endpoints: liveness, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Extension;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::config::InventoryMode;

/// The operations routes; `/metrics` among them unless it has a listener of its own
/// (`INNKEEPER_METRICS_BIND`).
pub fn router(with_metrics: bool) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json));
    if with_metrics {
        router.routes(routes!(metrics))
    } else {
        router
    }
}

/// `/metrics` alone, for its own listener.
pub fn metrics_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// `up` or `down`.
    postgres: &'static str,
    /// `up`, `down`, or `unused` in the Postgres-only inventory mode.
    redis: &'static str,
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process runs", body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// 200 when Postgres and Redis answer; 503 otherwise, saying which does not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Readiness>) {
    let health = state.health.recent().await;
    let redis_status = match state.config.inventory_mode {
        InventoryMode::Db => "unused",
        InventoryMode::Redis if health.redis => "up",
        InventoryMode::Redis => "down",
    };
    let ready = health.postgres && redis_status != "down";
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        postgres: if health.postgres { "up" } else { "down" },
        redis: redis_status,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// Prometheus text format. Each scrape first samples the connection pools and probes
/// Postgres and Redis, so that their gauges say how things stand at the scrape.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.health.record().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document of this server", content_type = "application/json")))]
async fn openapi_json(Extension(document): Extension<Arc<String>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str().to_owned(),
    )
}
