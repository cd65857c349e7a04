//! Redis, the fast path in front of Postgres: the connection pool, the key layout of
//! per-night inventory, and the Lua scripts that pre-deduct it.
//!
//! Redis is a cache. Postgres holds the truth and re-checks every booking; what Redis gets
//! wrong (a lost deduction after a restart, a deduction whose commit never came) can only
//! turn a guest away too early or send one more attempt to the Postgres re-check, never
//! oversell. Nights load from Postgres on a miss and expire by TTL after they pass.

pub mod keys;
pub mod scripts;

use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use deadpool_redis::{PoolConfig, Runtime, Timeouts};
use uuid::Uuid;

use crate::store::inventory::Night;
use keys::{night_expires_at, KeyLayout};
pub use scripts::PreDeduct;

/// A pool of connections to the Redis at `url`. Waits are bounded so that when Redis is
/// down the booking path notices within a second and takes the Postgres-only route.
pub fn connect(url: &str, size: usize) -> anyhow::Result<deadpool_redis::Pool> {
    let mut config = deadpool_redis::Config::from_url(url);
    config.pool = Some(PoolConfig {
        max_size: size,
        timeouts: Timeouts {
            wait: Some(Duration::from_secs(1)),
            create: Some(Duration::from_secs(1)),
            recycle: Some(Duration::from_secs(1)),
        },
        ..PoolConfig::default()
    });
    config
        .create_pool(Some(Runtime::Tokio1))
        .context("REDIS_URL is not a valid Redis URL")
}

/// Why a Redis call failed: the booking path treats every one the same way (carry on
/// without Redis, leave repairs to the reconciler), so one type carries them all.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no Redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("reserve.lua answered {0:?}, which its header does not list")]
    UnknownReply(Vec<i64>),
}

/// How nights read from Postgres go into Redis (see lua/load_nights.lua).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// After a miss: write only nights that are absent.
    Absent,
    /// After staff changed inventory: overwrite capacity and rate, keep `res`.
    Refresh,
}

/// One night as Redis holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedNight {
    pub capacity: i32,
    pub reserved: i32,
    pub rate_cents: i64,
}

/// Per-night room-type inventory in Redis.
#[derive(Clone)]
pub struct NightCache {
    pool: deadpool_redis::Pool,
    keys: KeyLayout,
    hold_marker_ttl: Duration,
}

impl NightCache {
    pub fn new(pool: deadpool_redis::Pool, prefix: &str, hold_marker_ttl: Duration) -> Self {
        Self {
            pool,
            keys: KeyLayout::new(prefix),
            hold_marker_ttl,
        }
    }

    pub fn keys(&self) -> &KeyLayout {
        &self.keys
    }

    fn night_keys(&self, hotel_id: i64, room_type_id: i64, nights: &[NaiveDate]) -> Vec<String> {
        nights
            .iter()
            .map(|night| self.keys.night(hotel_id, room_type_id, *night))
            .collect()
    }

    /// Deducts `rooms` on every night, or on none, and marks `reservation_id` as held.
    pub async fn reserve(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: &[NaiveDate],
        rooms: i32,
        reservation_id: Uuid,
    ) -> Result<PreDeduct, CacheError> {
        let mut connection = self.pool.get().await?;
        let mut invocation = scripts::RESERVE.prepare_invoke();
        for key in self.night_keys(hotel_id, room_type_id, nights) {
            invocation.key(key);
        }
        invocation
            .key(self.keys.hold(hotel_id, reservation_id))
            .arg(rooms)
            .arg(self.hold_marker_ttl.as_secs().max(1));
        let reply: Vec<i64> = invocation.invoke_async(&mut *connection).await?;
        scripts::decode_reserve(&reply).ok_or(CacheError::UnknownReply(reply))
    }

    /// Gives back a pre-deduction that Postgres did not commit. Idempotent: only the
    /// first call for a hold gives rooms back. Returns whether it did.
    pub async fn release_hold(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: &[NaiveDate],
        rooms: i32,
        reservation_id: Uuid,
    ) -> Result<bool, CacheError> {
        self.release(
            hotel_id,
            room_type_id,
            nights,
            rooms,
            reservation_id,
            "hold",
        )
        .await
    }

    /// Gives back the nights of a stay that Postgres has just canceled or expired.
    pub async fn release_stay(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: &[NaiveDate],
        rooms: i32,
        reservation_id: Uuid,
    ) -> Result<bool, CacheError> {
        self.release(
            hotel_id,
            room_type_id,
            nights,
            rooms,
            reservation_id,
            "stay",
        )
        .await
    }

    async fn release(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: &[NaiveDate],
        rooms: i32,
        reservation_id: Uuid,
        mode: &str,
    ) -> Result<bool, CacheError> {
        let mut connection = self.pool.get().await?;
        let mut invocation = scripts::RELEASE.prepare_invoke();
        for key in self.night_keys(hotel_id, room_type_id, nights) {
            invocation.key(key);
        }
        invocation
            .key(self.keys.hold(hotel_id, reservation_id))
            .arg(rooms)
            .arg(mode);
        let released: i64 = invocation.invoke_async(&mut *connection).await?;
        Ok(released == 1)
    }

    /// Marks the hold of a committed reservation ('c') and keeps it for `ttl`, so that
    /// replays find it without deducting again, and release.lua never gives a committed
    /// stay back as if it were an uncommitted hold.
    pub async fn mark_committed(
        &self,
        hotel_id: i64,
        reservation_id: Uuid,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut connection = self.pool.get().await?;
        redis::cmd("SET")
            .arg(self.keys.hold(hotel_id, reservation_id))
            .arg("c")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async::<()>(&mut *connection)
            .await?;
        Ok(())
    }

    /// Writes nights read from Postgres into Redis (see [`LoadMode`]).
    pub async fn load(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: &[Night],
        mode: LoadMode,
    ) -> Result<(), CacheError> {
        if nights.is_empty() {
            return Ok(());
        }
        let mut connection = self.pool.get().await?;
        let mut invocation = scripts::LOAD_NIGHTS.prepare_invoke();
        invocation.arg(match mode {
            LoadMode::Absent => "absent",
            LoadMode::Refresh => "refresh",
        });
        for night in nights {
            invocation
                .key(self.keys.night(hotel_id, room_type_id, night.date))
                .arg(night.capacity)
                .arg(night.total_reserved)
                .arg(night.rate_cents)
                .arg(night_expires_at(night.date));
        }
        let _written: i64 = invocation.invoke_async(&mut *connection).await?;
        Ok(())
    }

    /// The cached nights of several room types, in one round trip: one row per room type,
    /// one entry per night, `None` where Redis does not hold the night.
    pub async fn read(
        &self,
        hotel_id: i64,
        room_type_ids: &[i64],
        nights: &[NaiveDate],
    ) -> Result<Vec<Vec<Option<CachedNight>>>, CacheError> {
        let mut connection = self.pool.get().await?;
        let mut pipe = redis::pipe();
        for room_type_id in room_type_ids {
            for key in self.night_keys(hotel_id, *room_type_id, nights) {
                pipe.cmd("HMGET").arg(key).arg("cap").arg("res").arg("rate");
            }
        }
        let replies: Vec<(Option<i64>, Option<i64>, Option<i64>)> =
            pipe.query_async(&mut *connection).await?;
        let mut replies = replies.into_iter();
        Ok(room_type_ids
            .iter()
            .map(|_| {
                replies
                    .by_ref()
                    .take(nights.len())
                    .map(|(capacity, reserved, rate)| {
                        Some(CachedNight {
                            capacity: capacity? as i32,
                            reserved: reserved.unwrap_or(0) as i32,
                            rate_cents: rate.unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .collect())
    }
}
