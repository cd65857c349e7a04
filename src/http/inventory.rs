//! `/v1/hotels/{hotel_id}/room-types/{room_type_id}/inventory`: rooms and rates per night.

use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Staff;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::AppState;
use crate::booking::catalog::{InventoryChange, Warmed};
use crate::domain::{InvalidField, InventoryDay, NightRange};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_inventory, get_inventory))
        .routes(routes!(warm_inventory))
}

/// The nights `[from, to)` to load into Redis.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WarmBody {
    #[schema(value_type = String, format = Date)]
    from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    to: NaiveDate,
}

/// Loads every room type's nights of `[from, to)` into Redis ahead of a sale. Redis
/// otherwise holds only the nights guests ask for, and lets them go when nobody has asked
/// for `INNKEEPER_NIGHT_IDLE_TTL`.
#[utoipa::path(post, path = "/v1/hotels/{hotel_id}/inventory/warm", tag = "inventory",
    params(("hotel_id" = i64, Path)),
    request_body = WarmBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The nights loaded", body = Warmed),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
        (status = 503, description = "Redis or Postgres out of reach", body = Problem),
    ))]
async fn warm_inventory(
    State(state): State<AppState>,
    _staff: Staff,
    Path(hotel_id): Path<i64>,
    Json(body): Json<WarmBody>,
) -> Result<axum::Json<Warmed>, ApiError> {
    let nights = NightRange::parse(body.from, body.to, "from", "to")?;
    Ok(axum::Json(state.booker.warm(hotel_id, nights).await?))
}

/// Sets the rooms (and optionally the rate) of every night in `[from, to)`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InventoryBody {
    #[schema(value_type = String, format = Date)]
    from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    to: NaiveDate,
    /// Rooms of this type in the hotel on each night, 0 to 100000.
    #[schema(minimum = 0, maximum = 100_000)]
    total_inventory: i64,
    /// Nightly rate in the hotel's currency; required for nights that have none yet.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    rate_cents: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InventoryQuery {
    /// First night, `YYYY-MM-DD`.
    #[param(value_type = String, format = Date)]
    pub(super) from: NaiveDate,
    /// The night after the last one, `YYYY-MM-DD`.
    #[param(value_type = String, format = Date)]
    pub(super) to: NaiveDate,
}

/// Writes every night of the range in one transaction: if any night would fall below the
/// rooms already reserved on it (409) or lacks a rate (422), no night changes.
#[utoipa::path(put, path = "/v1/hotels/{hotel_id}/room-types/{room_type_id}/inventory", tag = "inventory",
    params(("hotel_id" = i64, Path), ("room_type_id" = i64, Path)),
    request_body = InventoryBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every night in [from, to)", body = [InventoryDay]),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 409, description = "Capacity below rooms already reserved", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn put_inventory(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_type_id)): Path<(i64, i64)>,
    Json(body): Json<InventoryBody>,
) -> Result<axum::Json<Vec<InventoryDay>>, ApiError> {
    let nights = NightRange::parse(body.from, body.to, "from", "to")?;
    if !(0..=100_000).contains(&body.total_inventory) {
        return Err(InvalidField::new("total_inventory", "must be from 0 to 100000").into());
    }
    if let Some(rate) = body.rate_cents {
        if !(0..=1_000_000_000).contains(&rate) {
            return Err(InvalidField::new("rate_cents", "must be from 0 to 1000000000").into());
        }
    }
    let days = state
        .booker
        .put_inventory(
            hotel_id,
            room_type_id,
            InventoryChange {
                nights,
                total_inventory: body.total_inventory as i32,
                rate_cents: body.rate_cents,
            },
        )
        .await?;
    Ok(axum::Json(days))
}

/// The stored nights in `[from, to)`; nights with no inventory set are left out.
#[utoipa::path(get, path = "/v1/hotels/{hotel_id}/room-types/{room_type_id}/inventory", tag = "inventory",
    params(("hotel_id" = i64, Path), ("room_type_id" = i64, Path), InventoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The nights", body = [InventoryDay]),
        (status = 400, description = "Missing or unparseable from/to", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 422, description = "Inverted or too long range", body = Problem),
    ))]
async fn get_inventory(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_type_id)): Path<(i64, i64)>,
    Query(query): Query<InventoryQuery>,
) -> Result<axum::Json<Vec<InventoryDay>>, ApiError> {
    let nights = NightRange::parse(query.from, query.to, "from", "to")?;
    let days = state
        .booker
        .inventory(hotel_id, room_type_id, nights)
        .await?;
    Ok(axum::Json(days))
}
