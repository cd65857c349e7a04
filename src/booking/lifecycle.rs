//! A reservation after it is booked: read, confirmed, canceled or expired. Postgres
//! decides each change in one statement; an ending then gives the nights back in Redis.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use uuid::Uuid;

use super::flow::count_compensation;
use super::{Booker, BookingError};
use crate::domain::{Ending, Principal, Reservation, ReservationId, ReservationStatus, Stay};
use crate::store::page::CreatedKey;
use crate::store::page::{Order, Page, PageRequest};
use crate::store::reservations::{self, list_key, Owner};
use crate::store::Shard;

impl Booker {
    /// A reservation the caller may see: its guest, or any member of staff. Others are
    /// told it does not exist, so ids cannot be probed.
    pub async fn visible(
        &self,
        reservation_id: ReservationId,
        caller: &Principal,
    ) -> Result<Reservation, BookingError> {
        self.stored(reservation_id)
            .await?
            .filter(|reservation| caller.may_see(&reservation.guest_id))
            .ok_or(BookingError::NotFound("reservation"))
    }

    /// One page of the reservations of `owner`, newest first.
    pub async fn reservations(
        &self,
        owner: Owner<'_>,
        page: &PageRequest<CreatedKey>,
    ) -> Result<Page<Reservation>, BookingError> {
        if let Owner::Hotel(hotel_id) = owner {
            return self
                .bounded(async {
                    let db = self.connection(hotel_id).await?;
                    let rows = reservations::list(&db, owner, page).await?;
                    Ok(Page::from_rows(rows, page, list_key))
                })
                .await;
        }
        // A guest's stays, or everyone's, may be at hotels on any shard.
        let rows = self
            .on_every_shard(|db| {
                let owner = owner.clone();
                async move { Ok(reservations::list(&db, owner, page).await?) }
            })
            .await?;
        Ok(Page::from_merged(rows, page, list_key, Order::Descending))
    }

    /// Cancels a pending or confirmed reservation and gives its nights back, in Postgres
    /// and then Redis. Canceling again answers the canceled reservation.
    pub async fn cancel(
        &self,
        reservation_id: ReservationId,
        caller: &Principal,
    ) -> Result<Reservation, BookingError> {
        let current = self.visible(reservation_id, caller).await?;
        if let Some(ended) = self.end(&current, Ending::Canceled).await? {
            return Ok(ended);
        }
        let now = self
            .bounded(self.stored(reservation_id))
            .await?
            .unwrap_or(current);
        match now.status {
            ReservationStatus::Canceled => Ok(now),
            status => Err(BookingError::Conflict(format!(
                "a reservation that is {status} cannot be canceled"
            ))),
        }
    }

    /// Confirms a pending reservation (the payment callback). Confirming again answers the
    /// confirmed reservation; a canceled or expired one is a conflict. A hold found past
    /// its expiry is expired on the spot, and its nights given back.
    pub async fn confirm(
        &self,
        reservation_id: ReservationId,
    ) -> Result<Reservation, BookingError> {
        let now = self.clock.now();
        let shard = self.shard_holding(reservation_id).await?;
        let current = self
            .bounded(async {
                let db = shard.pool.get().await?;
                if let Some(confirmed) = reservations::confirm(&db, reservation_id, now).await? {
                    return Ok(Ok(confirmed));
                }
                Ok(Err(reservations::get(&db, reservation_id)
                    .await?
                    .ok_or(BookingError::NotFound("reservation"))?))
            })
            .await?;
        let current = match current {
            Ok(confirmed) => return Ok(confirmed),
            Err(current) => current,
        };
        match current.status {
            ReservationStatus::Confirmed => Ok(current),
            ReservationStatus::Pending => {
                self.end(&current, Ending::Expired).await?;
                Err(BookingError::Conflict(
                    "the reservation's hold has expired".into(),
                ))
            }
            status => Err(BookingError::Conflict(format!(
                "a reservation that is {status} cannot be confirmed"
            ))),
        }
    }

    /// Expires up to `batch` holds that ran out at or before `now` and gives their nights
    /// back; returns how many it expired. Each expires exactly once, even with several
    /// processes sweeping (see `expire_holds()` in migrations/V6__expire_chosen_holds.sql).
    ///
    /// Like a cancel, each give-back is registered in Redis before Postgres ends the stay
    /// (see [`end`](Self::end)); holds another sweeper or a confirm took meanwhile have
    /// theirs withdrawn.
    pub async fn expire_due(
        &self,
        shard: &Shard,
        now: DateTime<Utc>,
        batch: u16,
    ) -> Result<usize, BookingError> {
        let due = self
            .bounded(async {
                let db = shard.pool.get().await?;
                Ok(reservations::due_holds(&db, now, i64::from(batch)).await?)
            })
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        join_all(due.iter().map(|hold| self.begin_give_back(&hold.stay))).await;
        let ids: Vec<Uuid> = due.iter().map(|hold| hold.id().as_uuid()).collect();
        let expired = self
            .bounded(async {
                let db = shard.pool.get().await?;
                Ok(reservations::expire_holds(&db, now, &ids).await?)
            })
            .await?;
        let taken: HashSet<ReservationId> = expired.iter().map(Reservation::id).collect();
        let elsewhere = due.iter().filter(|hold| !taken.contains(&hold.id()));
        join_all(elsewhere.map(|hold| self.abandon_give_back(&hold.stay))).await;
        let count = expired.len();
        join_all(
            expired
                .into_iter()
                .map(|ended| self.give_back_for_sure(ended)),
        )
        .await;
        Ok(count)
    }

    /// Ends a live stay in Postgres, then gives its nights back in Redis.
    ///
    /// The give-back is registered in Redis first (see `lua/reconcile.lua`), so that a
    /// reconciler pass meanwhile leaves the stay's nights alone rather than rewriting them
    /// from a snapshot that may predate the ending or the release.
    async fn end(
        &self,
        current: &Reservation,
        ending: Ending,
    ) -> Result<Option<Reservation>, BookingError> {
        let now = self.clock.now();
        self.begin_give_back(&current.stay).await;
        let reservation_id = current.id();
        let ended = self
            .bounded(async {
                let db = self.connection(current.stay.hotel_id).await?;
                Ok(reservations::end_stay(&db, reservation_id, ending, now).await?)
            })
            .await?;
        let Some(ended) = ended else {
            // Not live after all: nothing to give back. (On an error the entry stays until
            // its deadline, since Postgres may have ended the stay.)
            self.abandon_give_back(&current.stay).await;
            return Ok(None);
        };
        self.give_back_for_sure(ended.clone()).await;
        Ok(Some(ended))
    }

    /// Registers in Redis the give-back of a stay Postgres is about to end, until the
    /// in-flight deadline. A failure is logged: the reconciler may then repair the stay's
    /// nights a pass early, off by its rooms until a pass looks at them again (the
    /// ending's own journal entry, once settled), never past capacity.
    async fn begin_give_back(&self, stay: &Stay) {
        if let Some(cache) = &self.cache {
            let deadline = self.in_flight_deadline(self.clock.now());
            if let Err(error) = cache.begin_give_back(stay, deadline).await {
                tracing::warn!(%error, "could not register a give-back; the reconciler may repair its nights early");
            }
        }
    }

    /// Withdraws a registered give-back whose stay Postgres did not end after all.
    async fn abandon_give_back(&self, stay: &Stay) {
        if let Some(cache) = &self.cache {
            if let Err(error) = cache.abandon_give_back(stay).await {
                tracing::warn!(%error, "could not withdraw a give-back; it lapses at its deadline");
            }
        }
    }

    /// The give-back after Postgres ended a stay, in a task of its own: a client that
    /// hangs up (or a request deadline) after the commit cannot skip it.
    async fn give_back_for_sure(&self, ended: Reservation) {
        let booker = self.clone();
        let given_back = tokio::spawn(async move { booker.give_back(&ended).await });
        if let Err(error) = given_back.await {
            tracing::error!(%error, "the give-back task failed; the reconciler will repair Redis");
        }
    }

    /// Gives the nights of a stay that Postgres has just ended back in Redis. A failure is
    /// logged and counted, and the reconciler repairs it.
    async fn give_back(&self, ended: &Reservation) {
        if let Some(cache) = &self.cache {
            let released = cache.release_stay(&ended.stay).await;
            count_compensation(ended.id(), released);
        }
    }
}
