//! The reservation flow: pre-deduct in Redis, commit in Postgres, compensate on failure.
//!
//! 1. The request is parsed against the hotel's booking rules (its today, the limits).
//! 2. In the `redis` inventory mode, reserve.lua checks every night and deducts all or
//!    none, marking the reservation id as held. Most sold-out traffic ends here, without
//!    touching Postgres. A night missing from Redis is loaded from Postgres and the script
//!    retried; if Redis is down, the booking carries on through Postgres alone.
//! 3. Postgres re-checks and commits in one statement (`book_stay`). If it refuses (sold
//!    out under its row locks, a duplicate id) or fails, the Redis deduction is given back.
//!    What compensation cannot give back (Redis down, a crash) is logged and counted, and
//!    left for the reconciler.
//!
//! Everything after the Redis deduction runs in its own task, so a client that hangs up
//! mid-request cannot leave a deduction without its commit or its compensation.

mod directory;
pub mod group_commit;

pub use directory::{HotelEntry, RoomTypeName};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use tracing::Instrument;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::{BookingLimits, Config};
use crate::domain::{RoomCount, Stay, StayRules};
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::inventory::{CacheError, Hold, LoadMode, NightCache, PreDeduct};
use crate::store::inventory as inventory_store;
use crate::store::reservations::{self, Committed, NewStay, Reservation};
use directory::HotelDirectory;
use group_commit::GroupCommitter;

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
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Created,
        Outcome::Replayed,
        Outcome::SoldOut,
        Outcome::SoldOutDbRecheck,
        Outcome::IdempotencyConflict,
        Outcome::InProgress,
        Outcome::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Replayed => "replayed",
            Outcome::SoldOut => "sold_out",
            Outcome::SoldOutDbRecheck => "sold_out_db_recheck",
            Outcome::IdempotencyConflict => "idempotency_conflict",
            Outcome::InProgress => "in_progress",
            Outcome::Error => "error",
        }
    }
}

/// A reservation request as received, before the hotel's rules are applied.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub reservation_id: Uuid,
    pub hotel_id: i64,
    pub room_type_id: i64,
    pub check_in: NaiveDate,
    pub check_out: NaiveDate,
    pub rooms: i64,
    pub guest_id: String,
}

impl BookingRequest {
    /// Whether a stored reservation is what this request asks for: then a retry is a
    /// replay, otherwise the id was reused for something else.
    fn matches(&self, stored: &Reservation) -> bool {
        stored.hotel_id == self.hotel_id
            && stored.room_type_id == self.room_type_id
            && stored.check_in == self.check_in
            && stored.check_out == self.check_out
            && i64::from(stored.rooms) == self.rooms
            && stored.guest_id == self.guest_id
    }
}

/// The booking service: the flow above, and the lifecycle of a reservation.
#[derive(Clone)]
pub struct Booker {
    db: deadpool_postgres::Pool,
    /// `None` in the `db` inventory mode.
    cache: Option<NightCache>,
    clock: Arc<dyn Clock>,
    limits: BookingLimits,
    hold_ttl: Duration,
    in_flight_ttl: Duration,
    fault: Option<Fault>,
    directory: Arc<HotelDirectory>,
    /// Commits the bookings Redis admitted, several per transaction (redis mode only: the
    /// db mode is the one-transaction-per-attempt baseline).
    group: Arc<GroupCommitter>,
}

/// How long the hold marker of a committed reservation is kept: replays within this time
/// are answered from the marker's path without deducting again.
const COMMITTED_MARKER_TTL: Duration = Duration::from_secs(24 * 3600);

impl Booker {
    pub fn new(
        db: deadpool_postgres::Pool,
        cache: Option<NightCache>,
        clock: Arc<dyn Clock>,
        config: &Config,
    ) -> Self {
        // A little over Postgres' own statement timeout, so that one fires first when the
        // server is alive.
        let commit_timeout = config.db_statement_timeout + Duration::from_millis(500);
        Self {
            directory: Arc::new(HotelDirectory::new(db.clone())),
            group: Arc::new(GroupCommitter::new(db.clone(), commit_timeout)),
            db,
            cache,
            clock,
            limits: config.limits,
            hold_ttl: config.hold_ttl,
            in_flight_ttl: config.in_flight_ttl,
            fault: config.fault,
        }
    }

    /// Books a stay and counts the outcome.
    pub async fn book(&self, request: BookingRequest) -> Result<(Outcome, Reservation), ApiError> {
        let result = self.book_uncounted(request).await;
        let outcome = match &result {
            Ok((outcome, _)) => *outcome,
            Err(refused) => refused.outcome,
        };
        metrics::counter!("innkeeper_reservations_total", "outcome" => outcome.label())
            .increment(1);
        result.map_err(|refused| refused.error)
    }

    async fn book_uncounted(
        &self,
        request: BookingRequest,
    ) -> Result<(Outcome, Reservation), Refused> {
        // Postgres keeps microseconds: the 201 must show exactly what a replay will read.
        let now = self.clock.now().trunc_subsecs(6);
        let hotel = self
            .directory
            .lookup(request.hotel_id, request.room_type_id)
            .await?;
        let rules = StayRules {
            limits: self.limits,
            today: hotel.timezone.today(now),
        };
        let parsed = Stay::parse(request.check_in, request.check_out, &rules)
            .and_then(|stay| Ok((stay, RoomCount::parse(request.rooms, &self.limits)?)));
        let (stay, rooms) = match parsed {
            Ok(parsed) => parsed,
            // A replay wins over the limits: yesterday's booking retried today is still
            // the same booking.
            Err(invalid) => {
                return match self.stored(request.reservation_id).await? {
                    Some(stored) => Ok(self.replay(&request, stored)?),
                    None => Err(ApiError::from(invalid).into()),
                }
            }
        };
        let stay = NewStay {
            reservation_id: request.reservation_id,
            hotel_id: request.hotel_id,
            room_type_id: request.room_type_id,
            guest_id: request.guest_id.clone(),
            check_in: stay.check_in(),
            check_out: stay.check_out(),
            rooms: rooms.get(),
            now,
            hold_expires_at: now + self.hold_ttl,
        };
        let Some(cache) = &self.cache else {
            return self.commit(&request, &stay, Outcome::SoldOut).await;
        };
        let hold = Hold::from(&stay);
        match self.pre_deduct(cache, &hold, now).await {
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
                    async move { booker.commit_deducted(&cache, &request, &stay, &hold).await }
                        .instrument(tracing::Span::current()),
                )
                .await
                .map_err(|error| Refused::from(ApiError::Internal(error.into())))?
            }
            Ok(PreDeduct::SoldOut { .. }) | Ok(PreDeduct::Missing { .. }) => {
                Err(ApiError::SoldOut.into())
            }
            Ok(PreDeduct::AlreadyHeld) => match self.stored(request.reservation_id).await? {
                Some(stored) => Ok(self.replay(&request, stored)?),
                None => Err(ApiError::RequestInProgress.into()),
            },
            Err(ApiErrorOrCache::Api(error)) => Err(error.into()),
            Err(ApiErrorOrCache::Cache(error)) => {
                tracing::warn!(%error, "Redis is unavailable; booking through Postgres alone");
                metrics::counter!("innkeeper_redis_fallbacks_total").increment(1);
                self.commit(&request, &stay, Outcome::SoldOut).await
            }
        }
    }

    /// reserve.lua, loading the stay's nights from Postgres once if Redis lacks some.
    async fn pre_deduct(
        &self,
        cache: &NightCache,
        hold: &Hold,
        now: DateTime<Utc>,
    ) -> Result<PreDeduct, ApiErrorOrCache> {
        // The commit that follows is bounded by commit_timeout; the in-flight entry must
        // outlive it, so the reconciler never takes a live deduction for an abandoned one.
        let deadline = now.timestamp() + self.in_flight_ttl.as_secs() as i64;
        let first = cache.reserve(hold, deadline).await?;
        if !matches!(first, PreDeduct::Missing { .. }) {
            return Ok(first);
        }
        let db = self.db.get().await.map_err(ApiError::from)?;
        let stored = inventory_store::get_nights(
            &db,
            hold.hotel_id,
            hold.room_type_id,
            hold.check_in,
            hold.check_out,
        )
        .await
        .map_err(ApiError::from)?;
        drop(db);
        cache
            .load(hold.hotel_id, hold.room_type_id, &stored, LoadMode::Absent)
            .await?;
        Ok(cache.reserve(hold, deadline).await?)
    }

    /// The Postgres commit after a Redis deduction, with its compensation.
    async fn commit_deducted(
        &self,
        cache: &NightCache,
        request: &BookingRequest,
        stay: &NewStay,
        hold: &Hold,
    ) -> Result<(Outcome, Reservation), Refused> {
        let result = self.commit(request, stay, Outcome::SoldOutDbRecheck).await;
        match &result {
            Ok((Outcome::Created, _)) => {
                // The guest need not wait for this: until it lands, a replay finds the
                // marker still holding rooms and looks the reservation up in Postgres.
                let cache = cache.clone();
                let hold = hold.clone();
                tokio::spawn(async move {
                    if let Err(error) = cache.mark_committed(&hold, COMMITTED_MARKER_TTL).await {
                        tracing::warn!(%error, "could not mark a hold as committed");
                    }
                });
            }
            _ => {
                let released = cache.release_hold(hold).await;
                count_compensation(stay.reservation_id, released);
            }
        }
        result
    }

    /// Runs the Postgres transaction and turns its answer into the API's.
    /// `sold_out` says what Postgres is doing: re-checking a booking Redis admitted (then
    /// it commits as part of a group), or checking first (the `db` mode, or Redis down).
    async fn commit(
        &self,
        request: &BookingRequest,
        stay: &NewStay,
        sold_out: Outcome,
    ) -> Result<(Outcome, Reservation), Refused> {
        let committed = if sold_out == Outcome::SoldOutDbRecheck {
            self.group.commit(stay.clone()).await?
        } else {
            self.group.alone(stay).await?
        };
        match committed {
            Committed::Created(reservation) => Ok((Outcome::Created, reservation)),
            Committed::Exists => match self.stored(stay.reservation_id).await? {
                Some(stored) => Ok(self.replay(request, stored)?),
                None => Err(ApiError::RequestInProgress.into()),
            },
            Committed::SoldOut => Err(Refused {
                outcome: sold_out,
                error: ApiError::SoldOut,
            }),
        }
    }

    async fn stored(&self, reservation_id: Uuid) -> Result<Option<Reservation>, ApiError> {
        let db = self.db.get().await?;
        Ok(reservations::get(&db, reservation_id).await?)
    }

    fn replay(
        &self,
        request: &BookingRequest,
        stored: Reservation,
    ) -> Result<(Outcome, Reservation), ApiError> {
        if request.matches(&stored) {
            Ok((Outcome::Replayed, stored))
        } else {
            Err(ApiError::IdempotencyConflict)
        }
    }

    /// A reservation the caller may see: its guest, or any member of staff. Others are
    /// told it does not exist, so ids cannot be probed.
    pub async fn visible(
        &self,
        reservation_id: Uuid,
        caller: &Principal,
    ) -> Result<Reservation, ApiError> {
        self.stored(reservation_id)
            .await?
            .filter(|reservation| caller.is_staff() || reservation.guest_id == caller.sub)
            .ok_or(ApiError::NotFound("reservation"))
    }

    /// Cancels a pending or confirmed reservation and gives its nights back, in Postgres
    /// and then Redis. Canceling again answers the canceled reservation.
    pub async fn cancel(
        &self,
        reservation_id: Uuid,
        caller: &Principal,
    ) -> Result<Reservation, ApiError> {
        let current = self.visible(reservation_id, caller).await?;
        if let Some(ended) = self.end(reservation_id, "canceled").await? {
            return Ok(ended);
        }
        let now = self.stored(reservation_id).await?.unwrap_or(current);
        match now.status.as_str() {
            "canceled" => Ok(now),
            _ => Err(ApiError::Conflict(format!(
                "a reservation that is {} cannot be canceled",
                now.status
            ))),
        }
    }

    /// Confirms a pending reservation (the payment callback). Confirming again answers the
    /// confirmed reservation; a canceled or expired one is a conflict. A hold found past
    /// its expiry is expired on the spot, and its nights given back.
    pub async fn confirm(&self, reservation_id: Uuid) -> Result<Reservation, ApiError> {
        let now = self.clock.now();
        let db = self.db.get().await?;
        if let Some(confirmed) = reservations::confirm(&db, reservation_id, now).await? {
            return Ok(confirmed);
        }
        let current = reservations::get(&db, reservation_id)
            .await?
            .ok_or(ApiError::NotFound("reservation"))?;
        drop(db);
        match current.status.as_str() {
            "confirmed" => Ok(current),
            "pending" => {
                self.end(reservation_id, "expired").await?;
                Err(ApiError::Conflict(
                    "the reservation's hold has expired".into(),
                ))
            }
            status => Err(ApiError::Conflict(format!(
                "a reservation that is {status} cannot be confirmed"
            ))),
        }
    }

    /// Ends a live stay in Postgres, then gives its nights back in Redis.
    async fn end(
        &self,
        reservation_id: Uuid,
        status: &str,
    ) -> Result<Option<Reservation>, ApiError> {
        let db = self.db.get().await?;
        let Some(ended) =
            reservations::end_stay(&db, reservation_id, status, self.clock.now()).await?
        else {
            return Ok(None);
        };
        drop(db);
        self.give_back(&ended).await;
        Ok(Some(ended))
    }

    /// Gives the nights of a stay that Postgres has just ended back in Redis. A failure is
    /// logged and counted, and the reconciler repairs it.
    pub async fn give_back(&self, ended: &Reservation) {
        if let Some(cache) = &self.cache {
            let released = cache.release_stay(&Hold::from(ended)).await;
            count_compensation(ended.reservation_id, released);
        }
    }

    /// What the directory knows of a hotel (see `directory`): 404 if it does not exist.
    pub async fn hotel(&self, hotel_id: i64) -> Result<HotelEntry, ApiError> {
        self.directory.hotel(hotel_id).await
    }

    /// Forgets a hotel this process has just changed (its timezone, its room types).
    pub fn forget_hotel(&self, hotel_id: i64) {
        self.directory.forget(hotel_id);
    }

    pub fn db(&self) -> &deadpool_postgres::Pool {
        &self.db
    }

    pub fn cache(&self) -> Option<&NightCache> {
        self.cache.as_ref()
    }
}

impl From<&NewStay> for Hold {
    fn from(stay: &NewStay) -> Self {
        Self {
            reservation_id: stay.reservation_id,
            hotel_id: stay.hotel_id,
            room_type_id: stay.room_type_id,
            check_in: stay.check_in,
            check_out: stay.check_out,
            rooms: stay.rooms,
        }
    }
}

impl From<&Reservation> for Hold {
    fn from(reservation: &Reservation) -> Self {
        Self {
            reservation_id: reservation.reservation_id,
            hotel_id: reservation.hotel_id,
            room_type_id: reservation.room_type_id,
            check_in: reservation.check_in,
            check_out: reservation.check_out,
            rooms: reservation.rooms,
        }
    }
}

/// Test-only faults, placed where no other tool can reach (`INNKEEPER_FAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The process kills itself (SIGKILL) right after a Redis deduction, before the
    /// Postgres commit: the crash the reconciler exists for.
    DieAfterDeduct,
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
fn count_compensation(reservation_id: Uuid, result: Result<bool, CacheError>) {
    let label = match result {
        Ok(_) => "ok",
        Err(error) => {
            tracing::error!(%reservation_id, %error, "could not give rooms back in Redis; the reconciler will repair it");
            "failed"
        }
    };
    metrics::counter!("innkeeper_compensations_total", "result" => label).increment(1);
}

/// A refused or failed booking, with the outcome it is counted as.
#[derive(Debug)]
struct Refused {
    outcome: Outcome,
    error: ApiError,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        let outcome = match &error {
            ApiError::SoldOut => Outcome::SoldOut,
            ApiError::IdempotencyConflict => Outcome::IdempotencyConflict,
            ApiError::RequestInProgress => Outcome::InProgress,
            _ => Outcome::Error,
        };
        Self { outcome, error }
    }
}

/// A failure before any deduction: either the request is refused (an API error) or Redis
/// is out of reach (then Postgres alone decides).
#[derive(Debug)]
enum ApiErrorOrCache {
    Api(ApiError),
    Cache(CacheError),
}

impl From<ApiError> for ApiErrorOrCache {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<CacheError> for ApiErrorOrCache {
    fn from(error: CacheError) -> Self {
        Self::Cache(error)
    }
}
