//! The Redis key layout.
//!
//! `{prefix}night:{<hotel_id>}:<room_type_id>:<YYYY-MM-DD>` is a hash {cap, res, rate} for one
//! night of one room type; `{prefix}deducted:{<hotel_id>}:<reservation_id>` marks a
//! reservation id that has deducted inventory (its deduction marker); `{prefix}inflight:{<hotel_id>}` lists the hotel's
//! deductions whose commit is still in flight. The hotel id sits inside a Redis Cluster hash tag, so every
//! key a script touches for one stay lives in one slot.

use crate::domain::ReservationId;
use chrono::{Days, NaiveDate, NaiveTime};

#[derive(Debug, Clone)]
pub struct KeyLayout {
    prefix: std::sync::Arc<str>,
}

impl KeyLayout {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into().into(),
        }
    }

    /// A date's `Display` is `YYYY-MM-DD`, written directly: a `format("%Y-%m-%d")` parses
    /// its pattern on every call, and every booking builds a key per night.
    pub fn night(&self, hotel_id: i64, room_type_id: i64, night: NaiveDate) -> String {
        format!("{}night:{{{hotel_id}}}:{room_type_id}:{night}", self.prefix)
    }

    /// The deduction marker of a reservation id: set by reserve.lua, 'c' once committed.
    pub fn deduction(&self, hotel_id: i64, reservation_id: ReservationId) -> String {
        format!("{}deducted:{{{hotel_id}}}:{reservation_id}", self.prefix)
    }

    /// The hotel's in-flight hash: reservation id -> the deduction it made, until its
    /// commit or compensation (see lua/reserve.lua and lua/reconcile.lua).
    pub fn in_flight(&self, hotel_id: i64) -> String {
        format!("{}inflight:{{{hotel_id}}}", self.prefix)
    }
}

/// The latest a night's key leaves Redis (it leaves sooner when idle, see
/// lua/load_nights.lua): a day after the night has passed everywhere on Earth.
/// The night of D ends on the morning of D+1 in the hotel's timezone; noon UTC on D+2 is
/// at least a day after that in every timezone (UTC-12 to UTC+14).
///
/// Dates reach here already bounded (see `domain::LAST_DATE`); should one ever not be, the
/// key expires at the latest instant chrono knows rather than the process panicking.
pub fn night_expires_at(night: NaiveDate) -> i64 {
    night
        .checked_add_days(Days::new(2))
        .unwrap_or(NaiveDate::MAX)
        .and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default())
        .and_utc()
        .timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn keys_of_one_hotel_share_a_hash_tag() {
        let keys = KeyLayout::new("ik:");
        let night = NaiveDate::from_ymd_opt(2027, 7, 1).unwrap();
        assert_eq!(keys.night(42, 7, night), "ik:night:{42}:7:2027-07-01");
        let id = ReservationId::new(uuid::Uuid::nil());
        assert_eq!(
            keys.deduction(42, id),
            "ik:deducted:{42}:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(keys.in_flight(42), "ik:inflight:{42}");
    }

    #[test]
    fn the_last_date_chrono_knows_does_not_panic() {
        assert!(night_expires_at(NaiveDate::MAX) > night_expires_at(NaiveDate::MIN));
    }

    #[test]
    fn a_night_expires_a_day_after_it_ends_in_every_timezone() {
        let night = NaiveDate::from_ymd_opt(2027, 7, 1).unwrap();
        let expires = Utc.timestamp_opt(night_expires_at(night), 0).unwrap();
        // The night ends at the latest on the morning of the 2nd in UTC-12, which is the
        // afternoon of the 2nd in UTC: a day later is the 3rd.
        let latest_morning_after =
            Utc.with_ymd_and_hms(2027, 7, 2, 0, 0, 0).unwrap() + Duration::hours(12);
        assert!(expires >= latest_morning_after + Duration::days(1));
        assert_eq!(expires, Utc.with_ymd_and_hms(2027, 7, 3, 12, 0, 0).unwrap());
    }
}
