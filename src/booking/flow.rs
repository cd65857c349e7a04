//! The reservation flow: pre-deduct in Redis, commit in Postgres, compensate on failure.
//!
//! 1. The stay is checked against the hotel's booking rules (its today, the limits).
//! 2. In the `redis` inventory mode, reserve.lua checks every night and deducts all or
//!    none, setting the reservation id's deduction marker. Most sold-out traffic ends
//!    here, without touching Postgres. A night missing from Redis is loaded from Postgres
//!    and the script retried; if Redis is down, the booking carries on through Postgres
//!    alone.
//! 3. With PostgreSQL split into shards, the id is claimed in the id directory first (see
//!    [`ids`](super::ids)), so one id books once across shards. Then the hotel's shard
//!    re-checks and commits in one statement (`book_stay`). If it refuses (sold out under
//!    its row locks, a duplicate id) or fails, the Redis deduction is given back.
//!    What compensation cannot give back (Redis down, a crash) is logged and counted, and
//!    left for the reconciler.
//!
//! Everything after the Redis deduction runs in its own task, so a client that hangs up
//! mid-request cannot leave a deduction without its commit or its compensation.

use chrono::{DateTime, SubsecRound, Utc};
use tracing::Instrument;

use super::{Booker, BookingError};
use crate::config::Fault;
use crate::domain::{
    NewReservation, Principal, Reservation, ReservationId, RoomCount, Stay, StayDates, StayRules,
};
use crate::inventory::{CacheError, LoadMode, NightCache, PreDeduct};
use crate::store::inventory as inventory_store;
use crate::store::journal::{self, ChangedNights};
use crate::store::reservations::Committed;
use crate::telemetry::metrics::{self, COMPENSATIONS, REDIS_FALLBACKS};

/// How a reservation request ended, as counted in `innkeeper_reservations_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Replayed,
    /// Turned away by the first check: Redis, or Postgres in the `db` mode.
    SoldOut,
    /// Passed Redis but refused by the Postgres re-check.
    SoldOutDbRecheck,
    IdempotencyConflict,
    InProgress,
    /// The guest already holds the most pending reservations allowed.
    HoldLimit,
    /// The stay breaks a restriction of the hotel's.
    RestrictionViolated,
    /// No such hotel or room type: the client's mistake.
    NotFound,
    /// A stay outside the booking limits: the client's mistake.
    Invalid,
    /// A store out of reach or too slow: retry later.
    Unavailable,
    /// Anything else: a fault of ours.
    Error,
}

impl Outcome {
    /// Its label, one of `telemetry::metrics::RESERVATION_OUTCOMES`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Replayed => "replayed",
            Outcome::SoldOut => "sold_out",
            Outcome::SoldOutDbRecheck => "sold_out_db_recheck",
            Outcome::IdempotencyConflict => "idempotency_conflict",
            Outcome::InProgress => "in_progress",
            Outcome::HoldLimit => "hold_limit",
            Outcome::RestrictionViolated => "restriction_violated",
            Outcome::NotFound => "not_found",
            Outcome::Invalid => "invalid",
            Outcome::Unavailable => "unavailable",
            Outcome::Error => "error",
        }
    }

    fn of(error: &BookingError) -> Self {
        match error {
            BookingError::SoldOut => Outcome::SoldOut,
            BookingError::IdempotencyConflict => Outcome::IdempotencyConflict,
            BookingError::RequestInProgress => Outcome::InProgress,
            BookingError::HoldLimit(_) => Outcome::HoldLimit,
            BookingError::RestrictionViolated { .. } => Outcome::RestrictionViolated,
            BookingError::NotFound(_) => Outcome::NotFound,
            BookingError::Invalid(_) | BookingError::Required(_) | BookingError::Malformed => {
                Outcome::Invalid
            }
            BookingError::Unavailable(_) | BookingError::Overloaded => Outcome::Unavailable,
            BookingError::Conflict(_) | BookingError::Internal(_) => Outcome::Error,
        }
    }
}

/// A refused or failed booking, with the outcome it is counted as.
#[derive(Debug)]
struct Refused {
    outcome: Outcome,
    error: BookingError,
}

impl From<BookingError> for Refused {
    fn from(error: BookingError) -> Self {
        Self {
            outcome: Outcome::of(&error),
            error,
        }
    }
}

/// A failure before any deduction: either the request is refused or Redis is out of reach
/// (then Postgres alone decides).
#[derive(Debug)]
enum RefusedOrCache {
    Refused(BookingError),
    Cache(CacheError),
}

impl From<BookingError> for RefusedOrCache {
    fn from(error: BookingError) -> Self {
        Self::Refused(error)
    }
}

impl From<tokio_postgres::Error> for RefusedOrCache {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Refused(error.into())
    }
}

impl From<CacheError> for RefusedOrCache {
    fn from(error: CacheError) -> Self {
        Self::Cache(error)
    }
}

impl Booker {
    /// Books `stay` for `caller` (the guest is the caller's `sub`) and counts the outcome.
    /// `override_restrictions` (staff only; the caller checks) books past the stay's
    /// restrictions.
    pub async fn book(
        &self,
        stay: Stay,
        caller: &Principal,
        override_restrictions: bool,
    ) -> Result<(Outcome, Reservation), BookingError> {
        let result = self
            .book_uncounted(stay, caller, override_restrictions)
            .await;
        let outcome = match &result {
            Ok((outcome, _)) => *outcome,
            Err(refused) => refused.outcome,
        };
        metrics::count_reservation(outcome.label());
        result.map_err(|refused| refused.error)
    }

    async fn book_uncounted(
        &self,
        stay: Stay,
        caller: &Principal,
        override_restrictions: bool,
    ) -> Result<(Outcome, Reservation), Refused> {
        let guest_id = caller.sub.as_str();
        // Postgres keeps microseconds: the 201 must show exactly what a replay will read.
        let now = self.clock.now().trunc_subsecs(6);
        let hotel = self
            .directory
            .lookup(stay.hotel_id, stay.room_type_id)
            .await?;
        let rules = StayRules {
            limits: self.limits,
            today: hotel.timezone.today(now),
        };
        let parsed = StayDates::parse(stay.check_in, stay.check_out, &rules)
            .and_then(|_| RoomCount::parse(stay.rooms, &self.limits));
        if let Err(invalid) = parsed {
            // A replay wins over the limits: yesterday's booking retried today is still
            // the same booking.
            return match self.stored(stay.reservation_id).await? {
                Some(stored) => Ok(replay(&stay, guest_id, stored)?),
                None => Err(BookingError::from(invalid).into()),
            };
        }
        let booking = NewReservation {
            stay,
            guest_id: guest_id.to_owned(),
            // Staff book on behalf of guests, often many at once: they are exempt.
            hold_limit: self.max_live_holds.filter(|_| !caller.is_staff()),
            override_restrictions,
            created_at: now,
            hold_expires_at: now + self.hold_ttl,
        };
        let Some(cache) = &self.cache else {
            return self.commit(&booking, Outcome::SoldOut).await;
        };
        match self
            .pre_deduct(cache, &booking.stay, now, override_restrictions)
            .await
        {
            Ok(PreDeduct::Deducted) => {
                if self.fault == Some(Fault::DieAfterDeduct) {
                    die_for_fault_test();
                }
                // From here the deduction must end in a commit or a compensation even if
                // this request is dropped, so the rest runs in its own task.
                let booker = self.clone();
                let cache = cache.clone();
                // The task carries the request's span, so its log lines name the request.
                tokio::spawn(
                    async move { booker.commit_deducted(&cache, &booking).await }
                        .instrument(tracing::Span::current()),
                )
                .await
                .map_err(|error| Refused::from(BookingError::Internal(error.into())))?
            }
            Ok(PreDeduct::SoldOut { .. }) | Ok(PreDeduct::Missing { .. }) => {
                Err(BookingError::SoldOut.into())
            }
            Ok(PreDeduct::Restricted { night, restriction }) => {
                Err(BookingError::RestrictionViolated { restriction, night }.into())
            }
            Ok(PreDeduct::AlreadyHeld) => match self
                .stored_at(booking.stay.hotel_id, booking.stay.reservation_id)
                .await?
            {
                Some(stored) => Ok(replay(&booking.stay, guest_id, stored)?),
                None => Err(BookingError::RequestInProgress.into()),
            },
            Err(RefusedOrCache::Refused(error)) => Err(error.into()),
            Err(RefusedOrCache::Cache(error)) => {
                tracing::warn!(%error, "Redis is unavailable; booking through Postgres alone");
                ::metrics::counter!(REDIS_FALLBACKS).increment(1);
                self.commit(&booking, Outcome::SoldOut).await
            }
        }
    }

    /// reserve.lua, loading the stay's nights from Postgres once if Redis lacks some.
    async fn pre_deduct(
        &self,
        cache: &NightCache,
        stay: &Stay,
        now: DateTime<Utc>,
        override_restrictions: bool,
    ) -> Result<PreDeduct, RefusedOrCache> {
        // The commit that follows is bounded by commit_timeout, well inside the deadline.
        let deadline = self.in_flight_deadline(now);
        let first = cache.reserve(stay, deadline, override_restrictions).await?;
        if !matches!(first, PreDeduct::Missing { .. }) {
            return Ok(first);
        }
        let db = self.connection(stay.hotel_id).await?;
        let stored = inventory_store::get_nights(
            &db,
            stay.hotel_id,
            stay.room_type_id,
            stay.check_in,
            stay.check_out,
        )
        .await?;
        drop(db);
        cache
            .load(stay.hotel_id, stay.room_type_id, &stored, LoadMode::Absent)
            .await?;
        Ok(cache.reserve(stay, deadline, override_restrictions).await?)
    }

    /// The Postgres commit after a Redis deduction, with its compensation.
    async fn commit_deducted(
        &self,
        cache: &NightCache,
        booking: &NewReservation,
    ) -> Result<(Outcome, Reservation), Refused> {
        let result = self.commit(booking, Outcome::SoldOutDbRecheck).await;
        // A created booking's deduction is marked committed by its group (see
        // group_commit.rs); anything else gives it back.
        if !matches!(result, Ok((Outcome::Created, _))) {
            let released = cache.release_deduction(&booking.stay).await;
            if released.is_err() {
                self.journal_stranded(&booking.stay).await;
            }
            count_compensation(booking.stay.reservation_id, released);
        }
        result
    }

    /// Journals the nights of a deduction Redis could not be given back, for the
    /// reconciler's next pass: Postgres changed nothing, so no trigger journaled them. When
    /// Postgres is out of reach too, the reconciler's full round finds them.
    async fn journal_stranded(&self, stay: &Stay) {
        let Some(last) = stay.check_out.pred_opt() else {
            return;
        };
        let stranded = ChangedNights {
            hotel_id: stay.hotel_id,
            room_type_id: stay.room_type_id,
            first: stay.check_in,
            last,
        };
        let recorded = self
            .bounded(async {
                let db = self.connection(stay.hotel_id).await?;
                journal::record(&db, &[stranded]).await?;
                Ok(())
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(%error, "could not journal the nights of a deduction not given back; the reconciler's full round will find them");
        }
    }

    /// Claims the reservation id (with split shards), runs the Postgres transaction on
    /// the hotel's shard and turns its answer into the API's. A refusal that stored
    /// nothing takes the claim back.
    async fn commit(
        &self,
        booking: &NewReservation,
        sold_out: Outcome,
    ) -> Result<(Outcome, Reservation), Refused> {
        let claim = self.claim_id(&booking.stay).await?;
        let result = self.commit_on_shard(booking, sold_out).await;
        if let Err(refused) = &result {
            // Before answering, so the id is free for another hotel once the guest hears
            // the refusal. Its bounded wait is within the in-flight TTL's (Config::check).
            if refused.error.stored_nothing() {
                self.withdraw_claim(&booking.stay, claim).await;
            }
        }
        result
    }

    /// `sold_out` says what Postgres is doing: re-checking a booking Redis admitted (then
    /// it commits as part of a group), or checking first (the `db` mode, or Redis down).
    async fn commit_on_shard(
        &self,
        booking: &NewReservation,
        sold_out: Outcome,
    ) -> Result<(Outcome, Reservation), Refused> {
        let group = self.group(booking.stay.hotel_id);
        let committed = if sold_out == Outcome::SoldOutDbRecheck {
            group.commit(booking.clone()).await?
        } else {
            group.alone(booking).await?
        };
        match committed {
            Committed::Created(reservation) => Ok((Outcome::Created, reservation)),
            Committed::Exists => match self
                .stored_at(booking.stay.hotel_id, booking.stay.reservation_id)
                .await?
            {
                Some(stored) => Ok(replay(&booking.stay, &booking.guest_id, stored)?),
                None => Err(BookingError::RequestInProgress.into()),
            },
            Committed::SoldOut => Err(Refused {
                outcome: sold_out,
                error: BookingError::SoldOut,
            }),
            Committed::HoldLimit => {
                Err(BookingError::HoldLimit(booking.hold_limit.unwrap_or_default()).into())
            }
            Committed::Restricted { restriction, night } => {
                Err(BookingError::RestrictionViolated { restriction, night }.into())
            }
        }
    }
}

/// A stored reservation answering a request with its id: a replay when it is what the
/// request asks for, otherwise the id was reused for something else.
fn replay(
    stay: &Stay,
    guest_id: &str,
    stored: Reservation,
) -> Result<(Outcome, Reservation), BookingError> {
    if stored.stay == *stay && stored.guest_id == guest_id {
        Ok((Outcome::Replayed, stored))
    } else {
        Err(BookingError::IdempotencyConflict)
    }
}

fn die_for_fault_test() -> ! {
    tracing::error!("INNKEEPER_FAULT=die_after_deduct: killing this process");
    // SAFETY: kill(2) on our own pid with a valid signal has no memory effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// Logs and counts a Redis give-back. A failed one leaves Redis showing fewer rooms than
/// Postgres until the reconciler repairs it: guests may be turned away early, never
/// oversold.
pub(super) fn count_compensation(reservation_id: ReservationId, result: Result<bool, CacheError>) {
    let label = match result {
        Ok(_) => "ok",
        Err(error) => {
            tracing::error!(%reservation_id, %error, "could not give rooms back in Redis; the reconciler will repair it");
            "failed"
        }
    };
    ::metrics::counter!(COMPENSATIONS, "result" => label).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::RESERVATION_OUTCOMES;

    #[test]
    fn every_outcome_is_in_the_metrics_catalogue() {
        let all = [
            Outcome::Created,
            Outcome::Replayed,
            Outcome::SoldOut,
            Outcome::SoldOutDbRecheck,
            Outcome::IdempotencyConflict,
            Outcome::InProgress,
            Outcome::HoldLimit,
            Outcome::RestrictionViolated,
            Outcome::NotFound,
            Outcome::Invalid,
            Outcome::Unavailable,
            Outcome::Error,
        ];
        let labels: Vec<&str> = all.iter().map(|outcome| outcome.label()).collect();
        assert_eq!(labels, RESERVATION_OUTCOMES);
    }

    #[test]
    fn client_mistakes_and_outages_are_not_errors() {
        assert_eq!(
            Outcome::of(&BookingError::NotFound("hotel")),
            Outcome::NotFound
        );
        assert_eq!(
            Outcome::of(&crate::domain::InvalidField::new("rooms", "x").into()),
            Outcome::Invalid
        );
        assert_eq!(
            Outcome::of(&BookingError::Unavailable("the database")),
            Outcome::Unavailable
        );
        assert_eq!(
            Outcome::of(&BookingError::Internal(anyhow::anyhow!("x"))),
            Outcome::Error
        );
    }
}
