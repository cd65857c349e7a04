//! What a guest can book for a stay: answered from Redis, with Postgres behind it for the
//! nights Redis does not hold (which are then warmed into Redis).

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Booker, BookingError};
use crate::domain::{
    broken_on_nights, Night, NightRestrictions, Restriction, RoomCount, StayDates, StayRules,
};
use crate::inventory::{CachedNight, LoadMode};
use crate::store::inventory;

/// A stay's availability and price, per room type of the hotel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    pub hotel_id: i64,
    #[schema(value_type = String, format = Date)]
    pub check_in: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub check_out: NaiveDate,
    pub rooms: i32,
    pub room_types: Vec<RoomTypeAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomTypeAvailability {
    pub room_type_id: i64,
    pub name: String,
    /// Rooms bookable on every night of the stay: the minimum over the nights; 0 when any
    /// night has no inventory.
    pub available: i32,
    /// The rate of each night, in order; empty when a night has no inventory.
    pub nightly_rates_cents: Vec<i64>,
    /// The price of the stay for `rooms` rooms.
    pub total_cents: i64,
    /// The hotel's restrictions the stay breaks (then `available` is 0), first to last in
    /// the order a booking is judged by, so a booking page can say "minimum 3 nights"
    /// rather than "sold out".
    pub restrictions: Vec<Restriction>,
}

impl Booker {
    /// Availability of every room type of a hotel for `rooms` rooms on the nights
    /// `[check_in, check_out)`, which must be a stay bookable today.
    pub async fn availability(
        &self,
        hotel_id: i64,
        check_in: NaiveDate,
        check_out: NaiveDate,
        rooms: i64,
    ) -> Result<Availability, BookingError> {
        let hotel = self.directory.hotel(hotel_id).await?;
        let rules = StayRules {
            limits: self.limits,
            today: hotel.timezone.today(self.clock.now()),
        };
        let stay = StayDates::parse(check_in, check_out, &rules)?;
        let rooms = RoomCount::parse(rooms, &self.limits)?;
        let ids: Vec<i64> = hotel
            .room_types
            .iter()
            .map(|room_type| room_type.id)
            .collect();
        let nights: Vec<NaiveDate> = stay.range().iter().collect();

        let cached = match &self.cache {
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
                        stored = Some(
                            self.bounded(async {
                                let db = self.connection(hotel_id).await?;
                                Ok(inventory::nights_of_hotel(
                                    &db,
                                    hotel_id,
                                    stay.check_in(),
                                    stay.check_out(),
                                )
                                .await?)
                            })
                            .await?,
                        );
                    }
                    let found = stored
                        .as_ref()
                        .and_then(|all| all.get(&room_type.id))
                        .cloned()
                        .unwrap_or_default();
                    if let (Some(cache), Some(_)) = (&self.cache, &cached) {
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
                            restrictions: night.restrictions,
                        })
                        .collect()
                }
            };
            room_types.push(summarise(
                room_type.id,
                room_type.name.clone(),
                stay.check_in(),
                &per_night,
                nights.len(),
                rooms.get(),
            ));
        }
        Ok(Availability {
            hotel_id,
            check_in: stay.check_in(),
            check_out: stay.check_out(),
            rooms: rooms.get(),
            room_types,
        })
    }
}

fn summarise(
    room_type_id: i64,
    name: String,
    check_in: NaiveDate,
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
            restrictions: Vec::new(),
        };
    }
    let rules: Vec<NightRestrictions> = per_night.iter().map(|night| night.restrictions).collect();
    let restrictions: Vec<Restriction> = broken_on_nights(check_in, &rules)
        .into_iter()
        .map(|(restriction, _)| restriction)
        .collect();
    let available = per_night
        .iter()
        .map(|night| (night.capacity - night.reserved).max(0))
        .min()
        .filter(|_| restrictions.is_empty())
        .unwrap_or(0);
    let nightly_rates_cents: Vec<i64> = per_night.iter().map(|night| night.rate_cents).collect();
    let total_cents = nightly_rates_cents.iter().sum::<i64>() * i64::from(rooms);
    RoomTypeAvailability {
        room_type_id,
        name,
        available,
        nightly_rates_cents,
        total_cents,
        restrictions,
    }
}
