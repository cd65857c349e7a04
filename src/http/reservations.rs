//! `/v1/reservations`: booking, reading, confirming and canceling.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Staff};
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::pagination::PageQuery;
use super::AppState;
use crate::booking::Outcome;
use crate::domain::{Reservation, ReservationId, Stay};
use crate::store::page::CreatedKey;
use crate::store::page::Page;
use crate::store::reservations::Owner;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_reservation, list_reservations))
        .routes(routes!(get_reservation))
        .routes(routes!(confirm_reservation))
        .routes(routes!(cancel_reservation))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReservationListQuery {
    /// Staff only: the reservations of one hotel (all hotels when absent).
    hotel_id: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A booking: the stay, and whether staff book it past its restrictions. The stay's fields
/// are spelled out rather than flattened from [`Stay`]: a flattened struct hides the path
/// of a field that fails to parse, and a 422 must name its field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BookingBody {
    reservation_id: ReservationId,
    hotel_id: i64,
    room_type_id: i64,
    /// First night, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    check_in: NaiveDate,
    /// The morning of departure: the stay is the nights `[check_in, check_out)`.
    #[schema(value_type = String, format = Date)]
    check_out: NaiveDate,
    /// Rooms on each night: 1 to the limit (10 by default).
    #[schema(minimum = 1)]
    rooms: i64,
    /// Staff only: book the stay even if it breaks the hotel's restrictions.
    #[serde(default)]
    override_restrictions: bool,
}

impl BookingBody {
    fn stay(&self) -> Stay {
        Stay {
            reservation_id: self.reservation_id,
            hotel_id: self.hotel_id,
            room_type_id: self.room_type_id,
            check_in: self.check_in,
            check_out: self.check_out,
            rooms: self.rooms,
        }
    }
}

/// Books a stay. 201 with the new pending reservation; 200 with the stored one when the
/// same `reservation_id` and body were already booked.
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations",
    request_body(content = BookingBody, description = "A booking. `reservation_id` is made up by the client and is the idempotency key: retrying with the same id and body never books twice. `check_in` is today or later in the hotel's timezone; `rooms` is 1 to 10. `override_restrictions` (staff only) books past the hotel's restrictions."),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Booked: pending until confirmed or its hold expires", body = Reservation),
        (status = 200, description = "A replay: the stored reservation", body = Reservation),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "A guest asked to override restrictions", body = Problem),
        (status = 404, description = "No such hotel or room type", body = Problem),
        (status = 409, description = "sold_out, hold_limit (the guest already holds the most pending reservations allowed), or request_in_progress (with Retry-After)", body = Problem),
        (status = 422, description = "validation_failed, idempotency_conflict, or restriction_violated (`field` names the restriction, `detail` its night)", body = Problem),
        (status = 503, description = "A store is unavailable (with Retry-After)", body = Problem),
    ))]
async fn create_reservation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<BookingBody>,
) -> Result<(StatusCode, axum::Json<Reservation>), ApiError> {
    if body.override_restrictions && !caller.is_staff() {
        return Err(ApiError::Forbidden("only staff may override restrictions"));
    }
    let (outcome, reservation) = state
        .booker
        .book(body.stay(), &caller, body.override_restrictions)
        .await?;
    let status = if outcome == Outcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(reservation)))
}

/// A guest's own reservations, or, for staff, a hotel's (or all), newest first.
#[utoipa::path(get, path = "/v1/reservations", tag = "reservations",
    params(ReservationListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of reservations", body = Page<Reservation>),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "A guest asked for a hotel's reservations", body = Problem),
        (status = 422, description = "Invalid limit or cursor", body = Problem),
    ))]
async fn list_reservations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ReservationListQuery>,
) -> Result<axum::Json<Page<Reservation>>, ApiError> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse::<CreatedKey>()?;
    let owner = match (caller.is_staff(), query.hotel_id) {
        (true, Some(hotel_id)) => Owner::Hotel(hotel_id),
        (true, None) => Owner::Everyone,
        (false, None) => Owner::Guest(&caller.sub),
        (false, Some(_)) => {
            return Err(ApiError::Forbidden(
                "only staff may list a hotel's reservations",
            ))
        }
    };
    Ok(axum::Json(state.booker.reservations(owner, &page).await?))
}

#[utoipa::path(get, path = "/v1/reservations/{reservation_id}", tag = "reservations",
    params(("reservation_id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reservation", body = Reservation),
        (status = 401, description = "No valid token", body = Problem),
        (status = 404, description = "No such reservation, or not the caller's", body = Problem),
    ))]
async fn get_reservation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(reservation_id): Path<ReservationId>,
) -> Result<axum::Json<Reservation>, ApiError> {
    let reservation = state.booker.visible(reservation_id, &caller).await?;
    Ok(axum::Json(reservation))
}

/// The payment callback: a pending reservation becomes confirmed.
#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/confirm", tag = "reservations",
    params(("reservation_id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed (also when it already was)", body = Reservation),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such reservation", body = Problem),
        (status = 409, description = "Canceled, or its hold expired", body = Problem),
    ))]
async fn confirm_reservation(
    State(state): State<AppState>,
    _staff: Staff,
    Path(reservation_id): Path<ReservationId>,
) -> Result<axum::Json<Reservation>, ApiError> {
    Ok(axum::Json(state.booker.confirm(reservation_id).await?))
}

/// Cancels a pending or confirmed reservation and gives its nights back.
#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/cancel", tag = "reservations",
    params(("reservation_id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Canceled (also when it already was)", body = Reservation),
        (status = 401, description = "No valid token", body = Problem),
        (status = 404, description = "No such reservation, or not the caller's", body = Problem),
        (status = 409, description = "Its hold already expired", body = Problem),
    ))]
async fn cancel_reservation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(reservation_id): Path<ReservationId>,
) -> Result<axum::Json<Reservation>, ApiError> {
    let reservation = state.booker.cancel(reservation_id, &caller).await?;
    Ok(axum::Json(reservation))
}
