//! `/v1/admin/*`: staff-only operations.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Staff;
use super::error::{ApiError, Problem};
use super::AppState;
use crate::jobs::ReconcileReport;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reconcile))
}

/// Runs one full reconciler pass (Redis repaired from Postgres) and reports it.
#[utoipa::path(post, path = "/v1/admin/reconcile", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The pass is done", body = ReconcileReport),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 503, description = "Postgres or Redis is unavailable", body = Problem),
    ))]
async fn reconcile(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<axum::Json<ReconcileReport>, ApiError> {
    state
        .jobs
        .reconciler
        .run_once()
        .await
        .map(axum::Json)
        .map_err(|error| {
            tracing::warn!(error = format!("{error:#}"), "reconcile pass failed");
            ApiError::Unavailable("Postgres or Redis")
        })
}
