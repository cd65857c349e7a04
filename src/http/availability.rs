//! `GET /v1/hotels/{hotel_id}/availability`: what a guest can book for a stay (see
//! `booking::availability`).

use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Path, Query};
use super::AppState;
use crate::booking::availability::Availability;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(availability))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// First night, `YYYY-MM-DD`.
    #[param(value_type = String, format = Date)]
    check_in: NaiveDate,
    /// The morning of departure.
    #[param(value_type = String, format = Date)]
    check_out: NaiveDate,
    /// Rooms wanted on each night, 1 to the limit (10 by default); default 1.
    #[param(minimum = 1)]
    rooms: Option<i64>,
}

#[utoipa::path(get, path = "/v1/hotels/{hotel_id}/availability", tag = "reservations",
    params(("hotel_id" = i64, Path), AvailabilityQuery),
    responses(
        (status = 200, description = "Availability and price per room type", body = Availability),
        (status = 400, description = "Missing or unparseable dates", body = Problem),
        (status = 404, description = "No such hotel", body = Problem),
        (status = 422, description = "A stay outside the booking limits", body = Problem),
    ))]
async fn availability(
    State(state): State<AppState>,
    Path(hotel_id): Path<i64>,
    Query(query): Query<AvailabilityQuery>,
) -> Result<axum::Json<Availability>, ApiError> {
    let availability = state
        .booker
        .availability(
            hotel_id,
            query.check_in,
            query.check_out,
            query.rooms.unwrap_or(1),
        )
        .await?;
    Ok(axum::Json(availability))
}
