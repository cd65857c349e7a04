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
use super::pagination::{Page, PageQuery};
use super::AppState;
use crate::domain::{required_text, CurrencyCode, HotelTimezone, OverbookingRatio};
use crate::inventory::LoadMode;
use crate::store::hotels::{self, Hotel, HotelFields};
use crate::store::inventory;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_hotel, list_hotels))
        .routes(routes!(get_hotel, replace_hotel, delete_hotel))
}

/// A hotel to create, or the whole new state of one to replace.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HotelBody {
    name: String,
    address: String,
    city: String,
    country: String,
    /// IANA timezone name; default `UTC`.
    timezone: Option<String>,
    /// ISO 4217 code; default `USD`.
    currency: Option<String>,
    /// From 1.0 to 1.5; default 1.10.
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
    city: Option<String>,
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
    let fields = body.parse()?;
    let db = state.db.get().await?;
    let hotel = hotels::insert(&db, &fields, state.clock.now()).await?;
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
    let db = state.db.get().await?;
    let rows = hotels::list(&db, query.city.as_deref(), &page).await?;
    Ok(axum::Json(Page::from_rows(rows, &page, |hotel| hotel.id)))
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
    let db = state.db.get().await?;
    hotels::get(&db, hotel_id)
        .await?
        .map(axum::Json)
        .ok_or(ApiError::NotFound("hotel"))
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
    let fields = body.parse()?;
    let now = state.clock.now();
    let mut db = state.db.get().await?;
    let tx = db.transaction().await?;
    let before = hotels::get_for_update(&tx, hotel_id)
        .await?
        .ok_or(ApiError::NotFound("hotel"))?;
    let hotel = hotels::update(&tx, hotel_id, &fields, now).await?;
    let today = fields.timezone.today(now);
    let ratio_changed = before.overbooking_ratio != hotel.overbooking_ratio;
    if ratio_changed {
        inventory::apply_ratio(&tx, hotel_id, fields.overbooking_ratio, today).await?;
    }
    tx.commit().await?;
    state.booker.forget_hotel(hotel_id);
    if ratio_changed {
        refresh_capacities(&state, hotel_id, today).await;
    }
    Ok(axum::Json(hotel))
}

/// Puts the new capacities of a hotel's future nights into Redis. A failure is left to
/// the reconciler: until then Redis may turn guests away early or let the Postgres
/// re-check refuse them, never oversell.
async fn refresh_capacities(state: &AppState, hotel_id: i64, from: chrono::NaiveDate) {
    let Some(cache) = state.booker.cache() else {
        return;
    };
    let refreshed = async {
        let db = state.db.get().await?;
        let far_future = from + chrono::Days::new(3650);
        for (room_type_id, nights) in
            inventory::nights_of_hotel(&db, hotel_id, from, far_future).await?
        {
            cache
                .load(hotel_id, room_type_id, &nights, LoadMode::Refresh)
                .await?;
        }
        anyhow::Ok(())
    };
    if let Err(error) = refreshed.await {
        tracing::warn!(%error, "could not refresh Redis after a ratio change; the reconciler will");
    }
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
    let now = state.clock.now();
    let mut db = state.db.get().await?;
    let tx = db.transaction().await?;
    let hotel = hotels::get_for_update(&tx, hotel_id)
        .await?
        .ok_or(ApiError::NotFound("hotel"))?;
    let today = HotelTimezone::parse(&hotel.timezone)?.today(now);
    // Bookings in flight hold these rows; once we hold them, every booking has either
    // committed (and is seen below) or will find its nights gone.
    inventory::lock_nights_from(&tx, hotel_id, None, today).await?;
    if hotels::has_live_stays(&tx, hotel_id, None, today).await? {
        return Err(ApiError::Conflict(
            "the hotel has pending or confirmed reservations still to come".into(),
        ));
    }
    hotels::delete(&tx, hotel_id).await?;
    tx.commit().await?;
    state.booker.forget_hotel(hotel_id);
    Ok(StatusCode::NO_CONTENT)
}
