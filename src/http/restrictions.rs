//! `/v1/hotels/{hotel_id}/room-types/{room_type_id}/restrictions`: the stay restrictions of
//! each date (see `domain::restrictions` for what each means).

use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Staff;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::inventory::InventoryQuery;
use super::AppState;
use crate::domain::{NightRange, RestrictionChange, RestrictionDay};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_restrictions, get_restrictions))
}

/// Sets the given restrictions on every date of `[from, to)`. A field left out keeps its
/// value on each date; a field sent as `null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RestrictionsBody {
    #[schema(value_type = String, format = Date)]
    from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    to: NaiveDate,
    /// Fewest nights of a stay arriving on the date, 1 to 1000.
    #[serde(default, deserialize_with = "sent")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 1000)]
    min_stay: Option<Option<i32>>,
    /// Most nights of a stay arriving on the date, 1 to 1000.
    #[serde(default, deserialize_with = "sent")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 1000)]
    max_stay: Option<Option<i32>>,
    /// No stay may start on the date.
    #[serde(default, deserialize_with = "sent")]
    #[schema(value_type = Option<bool>)]
    closed_to_arrival: Option<Option<bool>>,
    /// No stay may check out on the date.
    #[serde(default, deserialize_with = "sent")]
    #[schema(value_type = Option<bool>)]
    closed_to_departure: Option<Option<bool>>,
    /// No stay may include the night.
    #[serde(default, deserialize_with = "sent")]
    #[schema(value_type = Option<bool>)]
    stop_sell: Option<Option<bool>>,
}

/// A field that was sent, as `null` or a value: a field left out never reaches this, and
/// stays `None` by its `default`.
fn sent<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Writes every date of the range in one transaction, then refreshes Redis.
#[utoipa::path(put, path = "/v1/hotels/{hotel_id}/room-types/{room_type_id}/restrictions", tag = "inventory",
    params(("hotel_id" = i64, Path), ("room_type_id" = i64, Path)),
    request_body = RestrictionsBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every date in [from, to)", body = [RestrictionDay]),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn put_restrictions(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_type_id)): Path<(i64, i64)>,
    Json(body): Json<RestrictionsBody>,
) -> Result<axum::Json<Vec<RestrictionDay>>, ApiError> {
    let dates = NightRange::parse(body.from, body.to, "from", "to")?;
    let change = RestrictionChange {
        min_stay: body.min_stay,
        max_stay: body.max_stay,
        closed_to_arrival: body.closed_to_arrival,
        closed_to_departure: body.closed_to_departure,
        stop_sell: body.stop_sell,
    };
    let days = state
        .booker
        .put_restrictions(hotel_id, room_type_id, dates, change)
        .await?;
    Ok(axum::Json(days))
}

/// Every date of `[from, to)` with what is set on it.
#[utoipa::path(get, path = "/v1/hotels/{hotel_id}/room-types/{room_type_id}/restrictions", tag = "inventory",
    params(("hotel_id" = i64, Path), ("room_type_id" = i64, Path), InventoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every date in [from, to)", body = [RestrictionDay]),
        (status = 400, description = "Missing or unparseable from/to", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 422, description = "Inverted or too long range", body = Problem),
    ))]
async fn get_restrictions(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_type_id)): Path<(i64, i64)>,
    Query(query): Query<InventoryQuery>,
) -> Result<axum::Json<Vec<RestrictionDay>>, ApiError> {
    let dates = NightRange::parse(query.from, query.to, "from", "to")?;
    let days = state
        .booker
        .restrictions(hotel_id, room_type_id, dates)
        .await?;
    Ok(axum::Json(days))
}
