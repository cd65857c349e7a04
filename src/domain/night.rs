//! One night of one room type: the unit inventory is counted, sold and cached in.

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

/// One night of one room type, as Postgres stores it and Redis caches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Night {
    pub date: NaiveDate,
    pub total_inventory: i32,
    /// floor(total_inventory * overbooking_ratio): the rooms the night may hold.
    pub capacity: i32,
    pub total_reserved: i32,
    pub rate_cents: i64,
    pub restrictions: NightRestrictions,
}

/// The restrictions a night carries into Redis, for reserve.lua: its own, and whether a
/// stay may check out on the morning after it (the next date's closed to departure). A
/// stay's last night then tells the script whether its check-out is closed, without a key
/// for a date on which nothing may be sold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NightRestrictions {
    pub stop_sell: bool,
    pub closed_to_arrival: bool,
    pub min_stay: Option<i32>,
    pub max_stay: Option<i32>,
    pub departure_closed_after: bool,
}

/// One night of one room type, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InventoryDay {
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub total_inventory: i32,
    pub total_reserved: i32,
    /// floor(total_inventory * overbooking_ratio) - total_reserved, never negative.
    pub available: i32,
    pub rate_cents: i64,
}

impl From<Night> for InventoryDay {
    fn from(night: Night) -> Self {
        Self {
            date: night.date,
            total_inventory: night.total_inventory,
            total_reserved: night.total_reserved,
            available: (night.capacity - night.total_reserved).max(0),
            rate_cents: night.rate_cents,
        }
    }
}
