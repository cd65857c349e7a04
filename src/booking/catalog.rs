//! Staff's catalog: hotels, room types, rooms and per-night inventory. Postgres holds it;
//! a write that changes what Redis caches (capacities, rates) refreshes Redis after its
//! commit, and a write that changes what the booking path knows of a hotel (its timezone,
//! its room types) makes this process forget the hotel.
//!
//! A Redis refresh that fails is logged and left to the reconciler: until then Redis may
//! turn guests away early or let the Postgres re-check refuse them, never oversell.

use std::time::Instant;

use chrono::{Days, NaiveDate};
use deadpool_postgres::GenericClient;

use super::{Booker, BookingError};
use crate::domain::{InvalidField, InventoryDay, NightRange, RestrictionChange, RestrictionDay};
use crate::inventory::LoadMode;
use crate::store::hotels::{self, Hotel, HotelFields};
use crate::store::page::{Order, Page, PageRequest};
use crate::store::room_types::{self, RoomType, RoomTypeFields};
use crate::store::rooms::{self, Room, RoomFields};
use crate::store::{inventory, restrictions};
use crate::telemetry;

/// How far ahead a ratio change refreshes Redis: past any booking horizon.
const RATIO_REFRESH_DAYS: u64 = 3650;

/// What an inventory write sets on every night of its range.
#[derive(Debug, Clone, Copy)]
pub struct InventoryChange {
    pub nights: NightRange,
    pub total_inventory: i32,
    /// Required for nights that have no rate yet.
    pub rate_cents: Option<i64>,
}

/// What warming a hotel's nights into Redis did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Warmed {
    pub hotel_id: i64,
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// Nights loaded into Redis: those it did not hold yet (0 in the `db` inventory mode).
    pub loaded: u64,
}

/// Nights per load_nights.lua call when warming, so one call never blocks Redis for long.
const NIGHTS_PER_WARM_CALL: usize = 400;

impl Booker {
    pub async fn create_hotel(&self, fields: &HotelFields) -> Result<Hotel, BookingError> {
        self.bounded(async {
            let hotel_id = hotels::next_id(&self.shards.catalog().get().await?).await?;
            let db = self.connection(hotel_id).await?;
            let hotel = hotels::insert(&db, hotel_id, fields, self.clock.now()).await?;
            // This id may have been asked for, and remembered as missing, just before.
            self.directory.forget(hotel.id);
            Ok(hotel)
        })
        .await
    }

    /// One page of hotels by id, optionally in one city (without regard to case): each
    /// shard's page, merged by id. A shard out of reach fails the list (503) rather than
    /// silently leaving its hotels out.
    pub async fn hotels(
        &self,
        city: Option<&str>,
        page: &PageRequest<i64>,
    ) -> Result<Page<Hotel>, BookingError> {
        let rows = self
            .on_every_shard(|db| async move { Ok(hotels::list(&db, city, page).await?) })
            .await?;
        Ok(Page::from_merged(
            rows,
            page,
            |hotel| hotel.id,
            Order::Ascending,
        ))
    }

    pub async fn hotel(&self, hotel_id: i64) -> Result<Hotel, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_hotel(&db, hotel_id).await
        })
        .await
    }

    /// Replaces a hotel. A new overbooking ratio applies to every night from the hotel's
    /// today on; if any of those nights already holds more reservations than the new
    /// ratio allows, nothing changes (409).
    pub async fn replace_hotel(
        &self,
        hotel_id: i64,
        fields: &HotelFields,
    ) -> Result<Hotel, BookingError> {
        let now = self.clock.now();
        let today = fields.timezone.today(now);
        let (hotel, ratio_changed) = self
            .bounded(async {
                let mut db = self.connection(hotel_id).await?;
                let tx = db.transaction().await?;
                let before = hotels::get_for_update(&tx, hotel_id)
                    .await?
                    .ok_or(BookingError::NotFound("hotel"))?;
                let hotel = hotels::update(&tx, hotel_id, fields, now).await?;
                let ratio_changed = before.overbooking_ratio != hotel.overbooking_ratio;
                if ratio_changed {
                    inventory::apply_ratio(&tx, hotel_id, fields.overbooking_ratio, today).await?;
                }
                tx.commit().await?;
                Ok((hotel, ratio_changed))
            })
            .await?;
        self.directory.forget(hotel_id);
        if ratio_changed {
            self.refresh_capacities(hotel_id, today).await;
        }
        Ok(hotel)
    }

    /// Puts the new capacities of a hotel's future nights into Redis.
    async fn refresh_capacities(&self, hotel_id: i64, from: NaiveDate) {
        let Some(cache) = &self.cache else {
            return;
        };
        let refreshed = async {
            let db = self.connection(hotel_id).await?;
            let far_future = from + Days::new(RATIO_REFRESH_DAYS);
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

    /// Deletes a hotel with its room types, rooms and inventory, unless guests with
    /// pending or confirmed stays are still to come (409).
    pub async fn delete_hotel(&self, hotel_id: i64) -> Result<(), BookingError> {
        self.bounded(async {
            let now = self.clock.now();
            let mut db = self.connection(hotel_id).await?;
            let tx = db.transaction().await?;
            let hotel = hotels::get_for_update(&tx, hotel_id)
                .await?
                .ok_or(BookingError::NotFound("hotel"))?;
            let today = hotel.timezone.today(now);
            // Bookings in flight hold these rows; once we hold them, every booking has either
            // committed (and is seen below) or will find its nights gone.
            inventory::lock_nights_from(&tx, hotel_id, None, today).await?;
            if hotels::has_live_stays(&tx, hotel_id, None, today).await? {
                return Err(BookingError::Conflict(
                    "the hotel has pending or confirmed reservations still to come".into(),
                ));
            }
            hotels::delete(&tx, hotel_id).await?;
            tx.commit().await?;
            self.directory.forget(hotel_id);
            Ok(())
        })
        .await
    }

    pub async fn create_room_type(
        &self,
        hotel_id: i64,
        fields: &RoomTypeFields,
    ) -> Result<RoomType, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_hotel(&db, hotel_id).await?;
            let room_type = room_types::insert(&db, hotel_id, fields, self.clock.now()).await?;
            self.directory.forget(hotel_id);
            Ok(room_type)
        })
        .await
    }

    pub async fn room_types(
        &self,
        hotel_id: i64,
        page: &PageRequest<i64>,
    ) -> Result<Page<RoomType>, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_hotel(&db, hotel_id).await?;
            let rows = room_types::list(&db, hotel_id, page).await?;
            Ok(Page::from_rows(rows, page, |room_type| room_type.id))
        })
        .await
    }

    pub async fn room_type(
        &self,
        hotel_id: i64,
        room_type_id: i64,
    ) -> Result<RoomType, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_room_type(&db, hotel_id, room_type_id).await
        })
        .await
    }

    pub async fn replace_room_type(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        fields: &RoomTypeFields,
    ) -> Result<RoomType, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            let replaced =
                room_types::update(&db, hotel_id, room_type_id, fields, self.clock.now())
                    .await?
                    .ok_or(BookingError::NotFound("room type"))?;
            // Its name shows in availability.
            self.directory.forget(hotel_id);
            Ok(replaced)
        })
        .await
    }

    /// Deletes a room type with its inventory, unless it still has rooms or guests with
    /// pending or confirmed stays still to come (409).
    pub async fn delete_room_type(
        &self,
        hotel_id: i64,
        room_type_id: i64,
    ) -> Result<(), BookingError> {
        self.bounded(async {
            let now = self.clock.now();
            let mut db = self.connection(hotel_id).await?;
            let tx = db.transaction().await?;
            let hotel = require_hotel(&tx, hotel_id).await?;
            if !room_types::lock(&tx, hotel_id, room_type_id).await? {
                return Err(BookingError::NotFound("room type"));
            }
            let today = hotel.timezone.today(now);
            // As for a hotel: hold the nights first, so no booking commits between check and
            // delete.
            inventory::lock_nights_from(&tx, hotel_id, Some(room_type_id), today).await?;
            if hotels::has_live_stays(&tx, hotel_id, Some(room_type_id), today).await? {
                return Err(BookingError::Conflict(
                    "the room type has pending or confirmed reservations still to come".into(),
                ));
            }
            room_types::delete(&tx, hotel_id, room_type_id).await?;
            tx.commit().await?;
            self.directory.forget(hotel_id);
            Ok(())
        })
        .await
    }

    pub async fn create_room(
        &self,
        hotel_id: i64,
        fields: &RoomFields,
    ) -> Result<Room, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_room_type(&db, hotel_id, fields.room_type_id).await?;
            Ok(rooms::insert(&db, hotel_id, fields, self.clock.now()).await?)
        })
        .await
    }

    pub async fn rooms(
        &self,
        hotel_id: i64,
        room_type_id: Option<i64>,
        page: &PageRequest<i64>,
    ) -> Result<Page<Room>, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_hotel(&db, hotel_id).await?;
            let rows = rooms::list(&db, hotel_id, room_type_id, page).await?;
            Ok(Page::from_rows(rows, page, |room| room.id))
        })
        .await
    }

    pub async fn room(&self, hotel_id: i64, room_id: i64) -> Result<Room, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            rooms::get(&db, hotel_id, room_id)
                .await?
                .ok_or(BookingError::NotFound("room"))
        })
        .await
    }

    pub async fn replace_room(
        &self,
        hotel_id: i64,
        room_id: i64,
        fields: &RoomFields,
    ) -> Result<Room, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            if rooms::get(&db, hotel_id, room_id).await?.is_none() {
                return Err(BookingError::NotFound("room"));
            }
            require_room_type(&db, hotel_id, fields.room_type_id).await?;
            rooms::update(&db, hotel_id, room_id, fields, self.clock.now())
                .await?
                .ok_or(BookingError::NotFound("room"))
        })
        .await
    }

    pub async fn delete_room(&self, hotel_id: i64, room_id: i64) -> Result<(), BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            if rooms::delete(&db, hotel_id, room_id).await? {
                Ok(())
            } else {
                Err(BookingError::NotFound("room"))
            }
        })
        .await
    }

    /// Writes every night of the range in one transaction: if any night would fall below
    /// the rooms already reserved on it (409) or lacks a rate (422), no night changes.
    /// Then Redis gets the new capacities and rates.
    pub async fn put_inventory(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        change: InventoryChange,
    ) -> Result<Vec<InventoryDay>, BookingError> {
        let written = self
            .bounded(async {
                let mut db = self.connection(hotel_id).await?;
                let started = Instant::now();
                let tx = db.transaction().await?;
                // The share lock keeps the ratio from changing until the capacities below are
                // written.
                let hotel = hotels::get_for_share(&tx, hotel_id)
                    .await?
                    .ok_or(BookingError::NotFound("hotel"))?;
                require_room_type(&tx, hotel_id, room_type_id).await?;
                self.check_sellable(change.nights, hotel.timezone.today(self.clock.now()))?;
                let written = inventory::put_nights(
                    &tx,
                    hotel_id,
                    room_type_id,
                    change.nights,
                    change.total_inventory,
                    change.rate_cents,
                    hotel.overbooking_ratio,
                )
                .await?;
                tx.commit().await?;
                telemetry::observe_transaction("put_inventory", started);
                Ok(written)
            })
            .await?;
        if let Some(cache) = &self.cache {
            // Redis keeps its own count of reserved rooms (it may include bookings still
            // in flight), so only capacity and rate are overwritten there.
            if let Err(error) = cache
                .load(hotel_id, room_type_id, &written, LoadMode::Refresh)
                .await
            {
                tracing::warn!(%error, "could not refresh Redis after an inventory change; the reconciler will");
            }
        }
        Ok(written.into_iter().map(InventoryDay::from).collect())
    }

    /// Loads every room type's nights of the range into Redis ahead of a sale, so its first
    /// guests do not all miss at once. Redis otherwise holds only the nights someone asked
    /// for, and lets them go when nobody asks for a while (`INNKEEPER_NIGHT_IDLE_TTL`), so
    /// warm a hotel within that time of the sale. Nights Redis holds already are kept:
    /// they may carry deductions still in flight.
    pub async fn warm(&self, hotel_id: i64, nights: NightRange) -> Result<Warmed, BookingError> {
        let hotel = self.directory.hotel(hotel_id).await?;
        self.check_sellable(nights, hotel.timezone.today(self.clock.now()))?;
        let mut loaded = 0;
        if let Some(cache) = &self.cache {
            let stored = self
                .bounded(async {
                    let db = self.connection(hotel_id).await?;
                    Ok(
                        inventory::nights_of_hotel(&db, hotel_id, nights.from(), nights.to())
                            .await?,
                    )
                })
                .await?;
            for (room_type_id, nights) in stored {
                for chunk in nights.chunks(NIGHTS_PER_WARM_CALL) {
                    loaded += cache
                        .load(hotel_id, room_type_id, chunk, LoadMode::Absent)
                        .await
                        .map_err(|error| {
                            tracing::warn!(%error, "could not warm Redis");
                            BookingError::Unavailable("Redis")
                        })?;
                }
            }
        }
        Ok(Warmed {
            hotel_id,
            from: nights.from(),
            to: nights.to(),
            loaded,
        })
    }

    /// Applies a change of restrictions to every date of the range in one transaction
    /// (see `store::restrictions::put` for the locks that keep bookings consistent with
    /// it), then refreshes the nights in Redis that carry them: those of the range and the
    /// night before it, which carries its first date's closed to departure.
    pub async fn put_restrictions(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        dates: NightRange,
        change: RestrictionChange,
    ) -> Result<Vec<RestrictionDay>, BookingError> {
        change.check()?;
        let (days, nights) = self
            .bounded(async {
                let mut db = self.connection(hotel_id).await?;
                let started = Instant::now();
                let tx = db.transaction().await?;
                require_room_type(&tx, hotel_id, room_type_id).await?;
                let days = restrictions::put(&tx, hotel_id, room_type_id, dates, &change).await?;
                let nights = inventory::get_nights(
                    &tx,
                    hotel_id,
                    room_type_id,
                    dates.from() - Days::new(1),
                    dates.to(),
                )
                .await?;
                tx.commit().await?;
                telemetry::observe_transaction("put_restrictions", started);
                Ok((days, nights))
            })
            .await?;
        if let Some(cache) = &self.cache {
            if let Err(error) = cache
                .load(hotel_id, room_type_id, &nights, LoadMode::Rules)
                .await
            {
                tracing::warn!(%error, "could not refresh Redis after a restrictions change; the reconciler will");
            }
        }
        Ok(days)
    }

    /// Every date of the range with the restrictions set on it.
    pub async fn restrictions(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        dates: NightRange,
    ) -> Result<Vec<RestrictionDay>, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_room_type(&db, hotel_id, room_type_id).await?;
            Ok(restrictions::get(&db, hotel_id, room_type_id, dates).await?)
        })
        .await
    }

    /// Inventory is written only for nights a guest could book: from yesterday (still
    /// tonight somewhere west of the hotel's clock) to the last night of the longest stay
    /// starting at the booking horizon. Anything else could never be sold, and would only
    /// fill Postgres and Redis.
    fn check_sellable(&self, nights: NightRange, today: NaiveDate) -> Result<(), BookingError> {
        let first = today - Days::new(1);
        let last = today
            + Days::new(u64::from(self.limits.horizon_days))
            + Days::new(u64::from(self.limits.max_nights));
        if nights.from() < first {
            return Err(InvalidField::new(
                "from",
                format!("must be {first} or later: earlier nights can no longer be sold"),
            )
            .into());
        }
        if nights.to() > last {
            return Err(InvalidField::new(
                "to",
                format!("must be {last} or earlier: later nights are past the booking horizon"),
            )
            .into());
        }
        Ok(())
    }

    /// The stored nights of a room type in the range; nights with no inventory are left
    /// out.
    pub async fn inventory(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: NightRange,
    ) -> Result<Vec<InventoryDay>, BookingError> {
        self.bounded(async {
            let db = self.connection(hotel_id).await?;
            require_room_type(&db, hotel_id, room_type_id).await?;
            let stored =
                inventory::get_nights(&db, hotel_id, room_type_id, nights.from(), nights.to())
                    .await?;
            Ok(stored.into_iter().map(InventoryDay::from).collect())
        })
        .await
    }
}

/// 404 unless the hotel exists, so a list of an unknown hotel is not an empty page.
async fn require_hotel(db: &impl GenericClient, hotel_id: i64) -> Result<Hotel, BookingError> {
    hotels::get(db, hotel_id)
        .await?
        .ok_or(BookingError::NotFound("hotel"))
}

/// 404 unless the room type exists in this hotel.
async fn require_room_type(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
) -> Result<RoomType, BookingError> {
    room_types::get(db, hotel_id, room_type_id)
        .await?
        .ok_or(BookingError::NotFound("room type"))
}
