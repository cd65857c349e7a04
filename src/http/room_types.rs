//! `/v1/hotels/{hotel_id}/room-types`: what guests book.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Staff;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::pagination::PageQuery;
use super::AppState;
use crate::domain::{plain_text, required_text, InvalidField};
use crate::store::page::Page;
use crate::store::room_types::{RoomType, RoomTypeFields};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room_type, list_room_types))
        .routes(routes!(get_room_type, replace_room_type, delete_room_type))
}

/// A room type to create, or the whole new state of one to replace.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoomTypeBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// Guests one room sleeps, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    max_occupancy: i64,
}

impl RoomTypeBody {
    fn parse(self) -> Result<RoomTypeFields, ApiError> {
        if !(1..=100).contains(&self.max_occupancy) {
            return Err(InvalidField::new("max_occupancy", "must be from 1 to 100").into());
        }
        let description = self
            .description
            .map(|text| plain_text("description", &text, 2000).map(str::to_owned))
            .transpose()?;
        Ok(RoomTypeFields {
            name: required_text("name", &self.name, 200)?,
            description,
            max_occupancy: self.max_occupancy as i32,
        })
    }
}

#[utoipa::path(post, path = "/v1/hotels/{hotel_id}/room-types", tag = "catalog",
    params(("hotel_id" = i64, Path)),
    request_body = RoomTypeBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = RoomType),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn create_room_type(
    State(state): State<AppState>,
    _staff: Staff,
    Path(hotel_id): Path<i64>,
    Json(body): Json<RoomTypeBody>,
) -> Result<(StatusCode, axum::Json<RoomType>), ApiError> {
    let room_type = state
        .booker
        .create_room_type(hotel_id, &body.parse()?)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(room_type)))
}

#[utoipa::path(get, path = "/v1/hotels/{hotel_id}/room-types", tag = "catalog",
    params(("hotel_id" = i64, Path), PageQuery),
    responses(
        (status = 200, description = "A page of room types", body = Page<RoomType>),
        (status = 404, description = "No such hotel", body = Problem),
        (status = 422, description = "Invalid limit or cursor", body = Problem),
    ))]
async fn list_room_types(
    State(state): State<AppState>,
    Path(hotel_id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Page<RoomType>>, ApiError> {
    let page = query.parse::<i64>()?;
    Ok(axum::Json(state.booker.room_types(hotel_id, &page).await?))
}

#[utoipa::path(get, path = "/v1/hotels/{hotel_id}/room-types/{room_type_id}", tag = "catalog",
    params(("hotel_id" = i64, Path), ("room_type_id" = i64, Path)),
    responses(
        (status = 200, description = "The room type", body = RoomType),
        (status = 404, description = "No such hotel or room type", body = Problem),
    ))]
async fn get_room_type(
    State(state): State<AppState>,
    Path((hotel_id, room_type_id)): Path<(i64, i64)>,
) -> Result<axum::Json<RoomType>, ApiError> {
    let room_type = state.booker.room_type(hotel_id, room_type_id).await?;
    Ok(axum::Json(room_type))
}

#[utoipa::path(put, path = "/v1/hotels/{hotel_id}/room-types/{room_type_id}", tag = "catalog",
    params(("hotel_id" = i64, Path), ("room_type_id" = i64, Path)),
    request_body = RoomTypeBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", body = RoomType),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn replace_room_type(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_type_id)): Path<(i64, i64)>,
    Json(body): Json<RoomTypeBody>,
) -> Result<axum::Json<RoomType>, ApiError> {
    let replaced = state
        .booker
        .replace_room_type(hotel_id, room_type_id, &body.parse()?)
        .await?;
    Ok(axum::Json(replaced))
}

/// Deletes a room type with its inventory, unless it still has rooms or guests with
/// pending or confirmed stays still to come (409).
#[utoipa::path(delete, path = "/v1/hotels/{hotel_id}/room-types/{room_type_id}", tag = "catalog",
    params(("hotel_id" = i64, Path), ("room_type_id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 409, description = "Rooms or live future reservations remain", body = Problem),
    ))]
async fn delete_room_type(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_type_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state
        .booker
        .delete_room_type(hotel_id, room_type_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
