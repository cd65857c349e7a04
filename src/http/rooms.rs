//! `/v1/hotels/{hotel_id}/rooms`: the physical rooms of a hotel.

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
use crate::domain::{required_text, InvalidField};
use crate::store::page::Page;
use crate::store::rooms::{Room, RoomFields};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(get_room, replace_room, delete_room))
}

/// A room's number: the text on its door. Accepted as a JSON string or integer, kept as text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RoomNumber {
    Text(String),
    Integer(i64),
}

/// A room to create, or the whole new state of one to replace.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoomBody {
    room_type_id: i64,
    number: RoomNumber,
    #[schema(minimum = -100, maximum = 500)]
    floor: Option<i64>,
}

impl RoomBody {
    fn parse(self) -> Result<RoomFields, ApiError> {
        let number = match self.number {
            RoomNumber::Text(text) => required_text("number", &text, 50)?,
            RoomNumber::Integer(n) => n.to_string(),
        };
        let floor = match self.floor {
            None => None,
            Some(floor) if (-100..=500).contains(&floor) => Some(floor as i32),
            Some(_) => return Err(InvalidField::new("floor", "must be from -100 to 500").into()),
        };
        Ok(RoomFields {
            room_type_id: self.room_type_id,
            number,
            floor,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomListQuery {
    /// Only rooms of this room type.
    room_type_id: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(post, path = "/v1/hotels/{hotel_id}/rooms", tag = "catalog",
    params(("hotel_id" = i64, Path)),
    request_body = RoomBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Room),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 409, description = "The room number is taken", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn create_room(
    State(state): State<AppState>,
    _staff: Staff,
    Path(hotel_id): Path<i64>,
    Json(body): Json<RoomBody>,
) -> Result<(StatusCode, axum::Json<Room>), ApiError> {
    let room = state.booker.create_room(hotel_id, &body.parse()?).await?;
    Ok((StatusCode::CREATED, axum::Json(room)))
}

#[utoipa::path(get, path = "/v1/hotels/{hotel_id}/rooms", tag = "catalog",
    params(("hotel_id" = i64, Path), RoomListQuery),
    responses(
        (status = 200, description = "A page of rooms", body = Page<Room>),
        (status = 404, description = "No such hotel", body = Problem),
        (status = 422, description = "Invalid limit or cursor", body = Problem),
    ))]
async fn list_rooms(
    State(state): State<AppState>,
    Path(hotel_id): Path<i64>,
    Query(query): Query<RoomListQuery>,
) -> Result<axum::Json<Page<Room>>, ApiError> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse::<i64>()?;
    let rooms = state
        .booker
        .rooms(hotel_id, query.room_type_id, &page)
        .await?;
    Ok(axum::Json(rooms))
}

#[utoipa::path(get, path = "/v1/hotels/{hotel_id}/rooms/{room_id}", tag = "catalog",
    params(("hotel_id" = i64, Path), ("room_id" = i64, Path)),
    responses(
        (status = 200, description = "The room", body = Room),
        (status = 404, description = "No such hotel or room", body = Problem),
    ))]
async fn get_room(
    State(state): State<AppState>,
    Path((hotel_id, room_id)): Path<(i64, i64)>,
) -> Result<axum::Json<Room>, ApiError> {
    Ok(axum::Json(state.booker.room(hotel_id, room_id).await?))
}

#[utoipa::path(put, path = "/v1/hotels/{hotel_id}/rooms/{room_id}", tag = "catalog",
    params(("hotel_id" = i64, Path), ("room_id" = i64, Path)),
    request_body = RoomBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", body = Room),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel, room or room type", body = Problem),
        (status = 409, description = "The room number is taken", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn replace_room(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_id)): Path<(i64, i64)>,
    Json(body): Json<RoomBody>,
) -> Result<axum::Json<Room>, ApiError> {
    let room = state
        .booker
        .replace_room(hotel_id, room_id, &body.parse()?)
        .await?;
    Ok(axum::Json(room))
}

#[utoipa::path(delete, path = "/v1/hotels/{hotel_id}/rooms/{room_id}", tag = "catalog",
    params(("hotel_id" = i64, Path), ("room_id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such hotel or room", body = Problem),
    ))]
async fn delete_room(
    State(state): State<AppState>,
    _staff: Staff,
    Path((hotel_id, room_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state.booker.delete_room(hotel_id, room_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
