//! `/v1/hotels`: the hotel catalog.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Staff;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::pagination::PageQuery;
use super::AppState;
use crate::domain::{plain_text, required_text, CurrencyCode, HotelTimezone, OverbookingRatio};
use crate::store::hotels::{Hotel, HotelFields};
use crate::store::page::Page;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_hotel, list_hotels))
        .routes(routes!(get_hotel, replace_hotel, delete_hotel))
}

/// A hotel to create, or the whole new state of one to replace.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HotelBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[schema(min_length = 1, max_length = 500)]
    address: String,
    #[schema(min_length = 1, max_length = 200)]
    city: String,
    #[schema(min_length = 1, max_length = 100)]
    country: String,
    /// IANA timezone name; default `UTC`.
    timezone: Option<String>,
    /// ISO 4217 code; default `USD`.
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
    /// From 1.0 to 1.5, at most four decimal places; default 1.10.
    #[schema(minimum = 1.0, maximum = 1.5)]
    overbooking_ratio: Option<f64>,
}

impl HotelBody {
    fn parse(self) -> Result<HotelFields, ApiError> {
        Ok(HotelFields {
            name: required_text("name", &self.name, 200)?,
            address: required_text("address", &self.address, 500)?,
            city: required_text("city", &self.city, 200)?,
            country: required_text("country", &self.country, 100)?,
            timezone: self
                .timezone
                .as_deref()
                .map(HotelTimezone::parse)
                .transpose()?
                .unwrap_or_default(),
            currency: self
                .currency
                .as_deref()
                .map(CurrencyCode::parse)
                .transpose()?
                .unwrap_or_default(),
            overbooking_ratio: self
                .overbooking_ratio
                .map(OverbookingRatio::parse)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HotelListQuery {
    /// Only hotels in this city (case-insensitive).
    #[param(max_length = 200)]
    city: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(post, path = "/v1/hotels", tag = "catalog",
    request_body = HotelBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Hotel),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 413, description = "Body over 1 MiB", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn create_hotel(
    State(state): State<AppState>,
    _staff: Staff,
    Json(body): Json<HotelBody>,
) -> Result<(StatusCode, axum::Json<Hotel>), ApiError> {
    let hotel = state.booker.create_hotel(&body.parse()?).await?;
    Ok((StatusCode::CREATED, axum::Json(hotel)))
}

#[utoipa::path(get, path = "/v1/hotels", tag = "catalog",
    params(HotelListQuery),
    responses(
        (status = 200, description = "A page of hotels", body = Page<Hotel>),
        (status = 400, description = "Unparseable query", body = Problem),
        (status = 422, description = "Invalid limit or cursor", body = Problem),
    ))]
async fn list_hotels(
    State(state): State<AppState>,
    Query(query): Query<HotelListQuery>,
) -> Result<axum::Json<Page<Hotel>>, ApiError> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse::<i64>()?;
    let city = query
        .city
        .as_deref()
        .map(|city| plain_text("city", city, 200))
        .transpose()?;
    let hotels = state.booker.hotels(city, &page).await?;
    Ok(axum::Json(hotels))
}

#[utoipa::path(get, path = "/v1/hotels/{hotel_id}", tag = "catalog",
    params(("hotel_id" = i64, Path)),
    responses(
        (status = 200, description = "The hotel", body = Hotel),
        (status = 404, description = "No such hotel", body = Problem),
    ))]
async fn get_hotel(
    State(state): State<AppState>,
    Path(hotel_id): Path<i64>,
) -> Result<axum::Json<Hotel>, ApiError> {
    Ok(axum::Json(state.booker.hotel(hotel_id).await?))
}

/// Replaces a hotel. A new overbooking ratio applies to every night from the hotel's today
/// on; if any of those nights already holds more reservations than the new ratio allows,
/// nothing changes and the answer is 409.
#[utoipa::path(put, path = "/v1/hotels/{hotel_id}", tag = "catalog",
    params(("hotel_id" = i64, Path)),
    request_body = HotelBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", body = Hotel),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel", body = Problem),
        (status = 409, description = "The new ratio is below reservations already made", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn replace_hotel(
    State(state): State<AppState>,
    _staff: Staff,
    Path(hotel_id): Path<i64>,
    Json(body): Json<HotelBody>,
) -> Result<axum::Json<Hotel>, ApiError> {
    let hotel = state.booker.replace_hotel(hotel_id, &body.parse()?).await?;
    Ok(axum::Json(hotel))
}

/// Deletes a hotel with its room types, rooms and inventory, unless guests with pending or
/// confirmed stays are still to come.
#[utoipa::path(delete, path = "/v1/hotels/{hotel_id}", tag = "catalog",
    params(("hotel_id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel", body = Problem),
        (status = 409, description = "Pending or confirmed future reservations remain", body = Problem),
    ))]
async fn delete_hotel(
    State(state): State<AppState>,
    _staff: Staff,
    Path(hotel_id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.booker.delete_hotel(hotel_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
