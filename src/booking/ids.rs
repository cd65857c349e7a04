//! Reservation ids across shards. With one shard, the `reservations` primary key alone
//! keeps an id to one reservation. With several, a booking first claims its id in the
//! directory on the id's home shard (`store::claims`), and a read by id asks the directory
//! which hotel, and so which shard, holds it.
//!
//! The directory is only ever consulted for bookings that got past Redis (and for every
//! booking in the `db` mode): sold-out traffic never reaches it. The failure cases are
//! written down in SCALING.md.

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
    /// An id claimed for another hotel is that hotel's: 422 if its shard holds the
    /// reservation, 409 `request_in_progress` while a booking for it may still be in
    /// flight, and taken over once none can be (the in-flight TTL outlasts any booking).
    pub(super) async fn claim_id(&self, stay: &Stay) -> Result<HeldClaim, BookingError> {
        if !self.shards.is_split() {
            return Ok(HeldClaim::None);
        }
        let id = stay.reservation_id.as_uuid();
        let home = &self.shards.home_of(id).pool;
        let claim = self
            .bounded(async { Ok(claims::claim(&home.get().await?, id, stay.hotel_id).await?) })
            .await?;
        let (other_hotel, age) = match claim {
            Claim::Made(at) => return Ok(HeldClaim::Made(at)),
            Claim::Joined => return Ok(HeldClaim::None),
            Claim::Elsewhere { hotel_id, age } => (hotel_id, age),
        };
        if self
            .stored_at(other_hotel, stay.reservation_id)
            .await?
            .is_some()
        {
            return Err(BookingError::IdempotencyConflict);
        }
        if age < self.in_flight_ttl {
            return Err(BookingError::RequestInProgress);
        }
        let taken = self
            .bounded(async {
                let db = home.get().await?;
                Ok(
                    claims::take_over(&db, id, other_hotel, stay.hotel_id, self.in_flight_ttl)
                        .await?,
                )
            })
            .await?;
        // None: another request took it over first.
        taken
            .map(HeldClaim::Made)
            .ok_or(BookingError::RequestInProgress)
    }

    /// Takes back a claim this booking made, after a refusal that stored nothing (sold
    /// out, a restriction, the hold limit). A failure only leaves the claim to be taken
    /// over after the in-flight TTL.
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
            tracing::warn!(%error, "could not withdraw a reservation id's claim; it lapses after the in-flight TTL");
        }
    }

    /// The shard that holds `reservation_id`, if any can: with split shards, the one of
    /// the hotel the directory names.
    async fn shard_of_reservation(
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
