//! A reservation and the one stay value it carries from the HTTP edge to `book_stay()` in
//! Postgres and `reserve.lua` in Redis.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Payment;

/// The id of a reservation. The client makes it up, and it is the booking's idempotency
/// key: the same id and body, sent again, never books twice.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = Uuid)]
pub struct ReservationId(Uuid);

impl ReservationId {
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for ReservationId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Rooms of one room type of one hotel on each night of `[check_in, check_out)`, for one
/// reservation id: what a guest asks for, what Postgres commits and what Redis deducts.
///
/// A value, not a validated booking: a stored reservation keeps its stay long after its
/// dates have passed. New bookings check it against the day's rules with
/// [`StayDates`](super::StayDates) and [`RoomCount`](super::RoomCount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stay {
    pub reservation_id: ReservationId,
    pub hotel_id: i64,
    pub room_type_id: i64,
    /// First night, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub check_in: NaiveDate,
    /// The morning of departure: the stay is the nights `[check_in, check_out)`.
    #[schema(value_type = String, format = Date)]
    pub check_out: NaiveDate,
    /// Rooms on each night: 1 to the limit (10 by default) when booking.
    #[schema(minimum = 1)]
    pub rooms: i64,
}

impl Stay {
    /// Every night of the stay, first to last.
    pub fn nights(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.check_in
            .iter_days()
            .take_while(move |night| *night < self.check_out)
    }
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    /// Booked; holds its rooms until confirmed or until `hold_expires_at`.
    Pending,
    /// Paid for: holds its rooms for good.
    Confirmed,
    /// Canceled by the guest or staff; its rooms were given back.
    Canceled,
    /// Its hold ran out before a confirmation; its rooms were given back.
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    /// Whether the reservation still holds its rooms.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed)
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReservationStatus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "pending" => Ok(Self::Pending),
            "confirmed" => Ok(Self::Confirmed),
            "canceled" => Ok(Self::Canceled),
            "expired" => Ok(Self::Expired),
            other => Err(format!("`{other}` is not a reservation status")),
        }
    }
}

/// How a live stay ends, giving its nights back. Only these two can: a confirmation keeps
/// the nights, so it is not an ending, and the type makes passing it impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Canceled,
    Expired,
}

impl Ending {
    pub fn status(self) -> ReservationStatus {
        match self {
            Self::Canceled => ReservationStatus::Canceled,
            Self::Expired => ReservationStatus::Expired,
        }
    }
}

/// A booking about to be committed: the stay, who books it, and its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    pub stay: Stay,
    pub guest_id: String,
    /// The most pending reservations the guest may then hold, this one included; `None`
    /// for staff, who are exempt, or when the limit is off.
    pub hold_limit: Option<u32>,
    /// Staff book past the stay's restrictions.
    pub override_restrictions: bool,
    /// When it was booked, to the microsecond Postgres keeps.
    pub created_at: DateTime<Utc>,
    pub hold_expires_at: DateTime<Utc>,
}

/// A reservation as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Reservation {
    #[serde(flatten)]
    pub stay: Stay,
    pub guest_id: String,
    pub status: ReservationStatus,
    pub total_cents: i64,
    pub currency: String,
    /// Until when a pending reservation holds its rooms.
    pub hold_expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub payment: Payment,
}

impl Reservation {
    /// A reservation just created by `booking`, priced by Postgres.
    pub fn created(booking: &NewReservation, total_cents: i64, currency: String) -> Self {
        Self {
            stay: booking.stay.clone(),
            guest_id: booking.guest_id.clone(),
            status: ReservationStatus::Pending,
            total_cents,
            currency,
            hold_expires_at: booking.hold_expires_at,
            created_at: booking.created_at,
            updated_at: booking.created_at,
            payment: Payment::unpaid(),
        }
    }

    pub fn id(&self) -> ReservationId {
        self.stay.reservation_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_print() {
        for status in [
            ReservationStatus::Pending,
            ReservationStatus::Confirmed,
            ReservationStatus::Canceled,
            ReservationStatus::Expired,
        ] {
            assert_eq!(status.as_str().parse::<ReservationStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert!("held".parse::<ReservationStatus>().is_err());
    }

    #[test]
    fn only_an_ending_gives_nights_back() {
        for ending in [Ending::Canceled, Ending::Expired] {
            assert!(!ending.status().is_live());
        }
    }

    #[test]
    fn a_reservation_shows_its_stay_fields_at_the_top() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let stay = Stay {
            reservation_id: ReservationId::new(Uuid::nil()),
            hotel_id: 1,
            room_type_id: 2,
            check_in: NaiveDate::from_ymd_opt(2027, 7, 1).unwrap(),
            check_out: NaiveDate::from_ymd_opt(2027, 7, 3).unwrap(),
            rooms: 1,
        };
        assert_eq!(stay.nights().count(), 2);
        let reservation = Reservation::created(
            &NewReservation {
                stay,
                guest_id: "ada".into(),
                hold_limit: Some(3),
                override_restrictions: false,
                created_at: at,
                hold_expires_at: at,
            },
            24_000,
            "EUR".into(),
        );
        let json = serde_json::to_value(&reservation).unwrap();
        assert_eq!(
            json["reservation_id"],
            "00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(json["check_in"], "2027-07-01");
        assert_eq!(json["status"], "pending");
        assert_eq!(json["rooms"], 1);
    }
}
