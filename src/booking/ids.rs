//! Reservation ids across shards. With one shard, the `reservations` primary key alone
//! keeps an id to one reservation. With several, a booking first claims its id in the
//! directory on the id's home shard (`store::claims`), and a read by id asks the directory
//! which hotel, and so which shard, holds it.
//!
//! A booking claims its id only once Redis has admitted it (every booking, in the `db`
//! mode): sold-out traffic never reaches the directory. The failure cases are written
//! down in SCALING.md.

use chrono::{DateTime, Utc};

use super::{Booker, BookingError};
use crate::domain::{Reservation, ReservationId, Stay};
use crate::store::claims::{self, Claim};
use crate::store::{reservations, Shard};

/// The claim a booking holds, which it takes back if it is refused with nothing stored.
pub(super) enum HeldClaim {
    /// One shard, or a claim another request made for the same hotel.
    None,
    /// Made by this booking, at this time.
    Made(DateTime<Utc>),
}

impl Booker {
    /// Claims the stay's reservation id for its hotel, when the shards are split.
    ///
    /// An id claimed for another hotel stays that hotel's: 409 `request_in_progress`
    /// while a booking for it may still be in flight (younger than the in-flight TTL),
    /// and 422 `idempotency_conflict` once it is stored there or can no longer be. A claim
    /// is never handed to another hotel: a booking under it frozen on its way to a shard
    /// that is stopped could still commit whenever that shard wakes up, and only the claim
    /// keeps its id from being booked a second time elsewhere meanwhile.
    pub(super) async fn claim_id(&self, stay: &Stay) -> Result<HeldClaim, BookingError> {
        if !self.shards.is_split() {
            return Ok(HeldClaim::None);
        }
        let id = stay.reservation_id.as_uuid();
        let home = &self.shards.home_of(id).pool;
        let claim = self
            .bounded(async { Ok(claims::claim(&home.get().await?, id, stay.hotel_id).await?) })
            .await?;
        match claim {
            Claim::Made(at) => Ok(HeldClaim::Made(at)),
            Claim::Joined => Ok(HeldClaim::None),
            Claim::Elsewhere { hotel_id, age } if age < self.in_flight_ttl => {
                if self
                    .stored_at(hotel_id, stay.reservation_id)
                    .await?
                    .is_some()
                {
                    Err(BookingError::IdempotencyConflict)
                } else {
                    Err(BookingError::RequestInProgress)
                }
            }
            Claim::Elsewhere { .. } => Err(BookingError::IdempotencyConflict),
        }
    }

    /// Takes back a claim this booking made, after a refusal that stored nothing (sold
    /// out, a restriction, the hold limit). A failure leaves the id with this hotel: the
    /// same request books, another hotel's gets 422.
    pub(super) async fn withdraw_claim(&self, stay: &Stay, held: HeldClaim) {
        let HeldClaim::Made(claimed_at) = held else {
            return;
        };
        let id = stay.reservation_id.as_uuid();
        let home = &self.shards.home_of(id).pool;
        let withdrawn = self
            .bounded(async {
                let db = home.get().await?;
                Ok(claims::withdraw(&db, id, stay.hotel_id, claimed_at).await?)
            })
            .await;
        if let Err(error) = withdrawn {
            tracing::warn!(%error, "could not withdraw a reservation id's claim; the id stays with its hotel");
        }
    }

    /// The shard that holds `reservation_id`, if any can: with split shards, the one of
    /// the hotel the directory names.
    pub(super) async fn shard_of_reservation(
        &self,
        reservation_id: ReservationId,
    ) -> Result<Option<&Shard>, BookingError> {
        if !self.shards.is_split() {
            return Ok(self.shards.all().first());
        }
        let id = reservation_id.as_uuid();
        let home = &self.shards.home_of(id).pool;
        let hotel = self
            .bounded(async { Ok(claims::hotel_of(&home.get().await?, id).await?) })
            .await?;
        Ok(hotel.map(|hotel_id| self.shards.of_hotel(hotel_id)))
    }

    /// The stored reservation `reservation_id`, wherever it is.
    pub(super) async fn stored(
        &self,
        reservation_id: ReservationId,
    ) -> Result<Option<Reservation>, BookingError> {
        let Some(shard) = self.shard_of_reservation(reservation_id).await? else {
            return Ok(None);
        };
        self.bounded(async {
            Ok(reservations::get(&shard.pool.get().await?, reservation_id).await?)
        })
        .await
    }

    /// The reservation `reservation_id` if `hotel_id`'s shard holds it.
    pub(super) async fn stored_at(
        &self,
        hotel_id: i64,
        reservation_id: ReservationId,
    ) -> Result<Option<Reservation>, BookingError> {
        self.bounded(async {
            Ok(reservations::get(&self.connection(hotel_id).await?, reservation_id).await?)
        })
        .await
    }

    /// The shard that holds a reservation found by its id: 404 when none does.
    pub(super) async fn shard_holding(
        &self,
        reservation_id: ReservationId,
    ) -> Result<&Shard, BookingError> {
        self.shard_of_reservation(reservation_id)
            .await?
            .ok_or(BookingError::NotFound("reservation"))
    }
}
