//! The booking layer: where the cache (Redis) and the source of truth (Postgres) meet, and
//! where a reader looks for every rule between them. Only this layer and `jobs` hold both.
//!
//! - [`flow`]: a booking. Redis pre-deducts, Postgres re-checks and commits (in groups,
//!   see [`group_commit`]), and a refusal or failure gives the deduction back.
//! - [`lifecycle`]: what happens to a reservation after: confirm, cancel, expire, and the
//!   give-back of its nights.
//! - [`availability`]: what a guest can book, read from Redis with Postgres behind it.
//! - [`catalog`]: staff's writes to hotels, room types, rooms and inventory, each
//!   committed to Postgres and then refreshed in Redis.
//! - [`health`]: whether each store answers, and how its connections stand.
//! - [`directory`]: what the booking path must know of a hotel, kept in memory briefly.
//! - [`webhooks`]: staff's webhook endpoints and their deliveries, and the payment
//!   provider's events.
//!
//! Every call answers in [`BookingError`], which `http` turns into problem+json.

pub mod availability;
pub mod catalog;
mod directory;
mod error;
mod flow;
pub mod group_commit;
pub mod health;
mod ids;
mod lifecycle;
pub mod webhooks;

pub use error::BookingError;
pub use flow::Outcome;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::{Config, Fault};
use crate::domain::BookingLimits;
use crate::inventory::NightCache;
use crate::store::Shards;
use directory::HotelDirectory;
use group_commit::GroupCommitter;

/// The booking service: the flow, the lifecycle of a reservation, availability and the
/// catalog writes that must reach both stores.
#[derive(Clone)]
pub struct Booker {
    /// The catalog and the shards; every hotel's data on its own shard.
    shards: Shards,
    /// `None` in the `db` inventory mode.
    cache: Option<NightCache>,
    clock: Arc<dyn Clock>,
    limits: BookingLimits,
    hold_ttl: Duration,
    max_live_holds: Option<u32>,
    in_flight_ttl: Duration,
    fault: Option<Fault>,
    /// How long one call may wait on Postgres outside the booking path (which has its own
    /// deadlines): a little over the statement timeout.
    db_deadline: Duration,
    directory: Arc<HotelDirectory>,
    /// Per shard: commits the bookings Redis admitted, several per transaction (redis
    /// mode only: the db mode is the one-transaction-per-attempt baseline).
    groups: Arc<[Arc<GroupCommitter>]>,
}

impl Booker {
    pub fn new(
        shards: Shards,
        cache: Option<NightCache>,
        clock: Arc<dyn Clock>,
        config: &Config,
    ) -> Self {
        // A little over Postgres' own statement timeout, so that one fires first when the
        // server is alive.
        let commit_timeout = config.db_statement_timeout + Duration::from_millis(500);
        Self {
            directory: Arc::new(HotelDirectory::new(shards.clone(), commit_timeout)),
            groups: shards
                .all()
                .iter()
                .map(|shard| {
                    Arc::new(
                        GroupCommitter::new(shard.pool.clone(), commit_timeout, config.fault)
                            .marking_in(cache.clone()),
                    )
                })
                .collect(),
            shards,
            cache,
            clock,
            limits: config.limits,
            hold_ttl: config.hold_ttl,
            max_live_holds: config.max_live_holds,
            in_flight_ttl: config.in_flight_ttl,
            fault: config.fault,
            db_deadline: commit_timeout,
        }
    }

    /// When an in-flight entry made at `now` lapses (unix seconds): it must outlive the
    /// deduction's commit or the give-back's ending, so the reconciler never takes a live
    /// one for an abandoned one.
    fn in_flight_deadline(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp() + self.in_flight_ttl.as_secs() as i64
    }

    /// A connection to the shard that holds `hotel_id`.
    async fn connection(&self, hotel_id: i64) -> Result<deadpool_postgres::Object, BookingError> {
        Ok(self.shards.of_hotel(hotel_id).pool.get().await?)
    }

    /// `work` on every shard at once, each bounded like any other Postgres call: their
    /// answers in shard order, or the first failure (a shard out of reach fails it all).
    async fn on_every_shard<T, Work>(
        &self,
        work: impl Fn(deadpool_postgres::Object) -> Work,
    ) -> Result<Vec<T>, BookingError>
    where
        Work: Future<Output = Result<T, BookingError>>,
    {
        let work = &work;
        futures::future::try_join_all(
            self.shards
                .all()
                .iter()
                .map(|shard| self.bounded(async move { work(shard.pool.get().await?).await })),
        )
        .await
    }

    /// The group committer of the shard that holds `hotel_id`.
    fn group(&self, hotel_id: i64) -> &Arc<GroupCommitter> {
        &self.groups[self.shards.of_hotel(hotel_id).index]
    }

    /// `work` on Postgres, bounded by the deadline: see [`bounded`].
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, BookingError>>,
    ) -> Result<T, BookingError> {
        bounded(self.db_deadline, work).await
    }
}

/// Bounds one piece of Postgres work. tokio-postgres waits for ever on a server that is
/// frozen (SIGSTOP, a stalled disk), where its own statement timeout cannot fire: past
/// `deadline` the caller is answered 503 `unavailable` instead.
async fn bounded<T>(
    deadline: Duration,
    work: impl Future<Output = Result<T, BookingError>>,
) -> Result<T, BookingError> {
    tokio::time::timeout(deadline, work)
        .await
        .unwrap_or(Err(BookingError::Unavailable("the database")))
}
