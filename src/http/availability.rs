//! `GET /v1/hotels/{hotel_id}/availability`: what a guest can book for a stay, answered
//! from Redis, falling back to Postgres for nights Redis does not hold.

use std::collections::HashMap;

use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Path, Query};
use super::AppState;
use crate::domain::{RoomCount, Stay, StayRules};
use crate::inventory::{CachedNight, LoadMode};
use crate::store::inventory::{self, Night};

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
    /// Rooms wanted on each night; default 1.
    rooms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    hotel_id: i64,
    #[schema(value_type = String, format = Date)]
    check_in: NaiveDate,
    #[schema(value_type = String, format = Date)]
    check_out: NaiveDate,
    rooms: i32,
    room_types: Vec<RoomTypeAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomTypeAvailability {
    room_type_id: i64,
    name: String,
    /// Rooms bookable on every night of the stay: the minimum over the nights; 0 when any
    /// night has no inventory.
    available: i32,
    /// The rate of each night, in order; empty when a night has no inventory.
    nightly_rates_cents: Vec<i64>,
    /// The price of the stay for `rooms` rooms.
    total_cents: i64,
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
    let hotel = state.booker.hotel(hotel_id).await?;
    let rules = StayRules {
        limits: state.config.limits,
        today: hotel.timezone.today(state.clock.now()),
    };
    let stay = Stay::parse(query.check_in, query.check_out, &rules)?;
    let rooms = RoomCount::parse(query.rooms.unwrap_or(1), &state.config.limits)?;
    let ids: Vec<i64> = hotel
        .room_types
        .iter()
        .map(|room_type| room_type.id)
        .collect();
    let nights: Vec<NaiveDate> = stay.range().iter().collect();

    let cached = match state.booker.cache() {
        Some(cache) => match cache.read(hotel_id, &ids, &nights).await {
            Ok(cached) => Some(cached),
            Err(error) => {
                tracing::warn!(%error, "Redis is unavailable; reading availability from Postgres");
                None
            }
        },
        None => None,
    };
    let mut stored: Option<HashMap<i64, Vec<Night>>> = None;
    let mut room_types = Vec::with_capacity(ids.len());
    for (index, room_type) in hotel.room_types.iter().enumerate() {
        let from_cache = cached.as_ref().and_then(|rows| {
            rows[index]
                .iter()
                .copied()
                .collect::<Option<Vec<CachedNight>>>()
        });
        let per_night = match from_cache {
            Some(per_night) => per_night,
            None => {
                if stored.is_none() {
                    let db = state.db.get().await?;
                    stored = Some(
                        inventory::nights_of_hotel(
                            &db,
                            hotel_id,
                            stay.check_in(),
                            stay.check_out(),
                        )
                        .await?,
                    );
                }
                let found = stored
                    .as_ref()
                    .and_then(|all| all.get(&room_type.id))
                    .cloned()
                    .unwrap_or_default();
                if let (Some(cache), Some(_)) = (state.booker.cache(), &cached) {
                    if let Err(error) = cache
                        .load(hotel_id, room_type.id, &found, LoadMode::Absent)
                        .await
                    {
                        tracing::warn!(%error, "could not warm Redis");
                    }
                }
                found
                    .iter()
                    .map(|night| CachedNight {
                        capacity: night.capacity,
                        reserved: night.total_reserved,
                        rate_cents: night.rate_cents,
                    })
                    .collect()
            }
        };
        room_types.push(summarise(
            room_type.id,
            room_type.name.clone(),
            &per_night,
            nights.len(),
            rooms.get(),
        ));
    }
    Ok(axum::Json(Availability {
        hotel_id,
        check_in: stay.check_in(),
        check_out: stay.check_out(),
        rooms: rooms.get(),
        room_types,
    }))
}

fn summarise(
    room_type_id: i64,
    name: String,
    per_night: &[CachedNight],
    nights: usize,
    rooms: i32,
) -> RoomTypeAvailability {
    if per_night.len() < nights {
        return RoomTypeAvailability {
            room_type_id,
            name,
            available: 0,
            nightly_rates_cents: Vec::new(),
            total_cents: 0,
        };
    }
    let available = per_night
        .iter()
        .map(|night| (night.capacity - night.reserved).max(0))
        .min()
        .unwrap_or(0);
    let nightly_rates_cents: Vec<i64> = per_night.iter().map(|night| night.rate_cents).collect();
    let total_cents = nightly_rates_cents.iter().sum::<i64>() * i64::from(rooms);
    RoomTypeAvailability {
        room_type_id,
        name,
        available,
        nightly_rates_cents,
        total_cents,
    }
}
