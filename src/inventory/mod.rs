//! Redis, the fast path in front of Postgres: the shared connections, the key layout of
//! per-night inventory, and the Lua scripts that pre-deduct it.
//!
//! Redis is a cache. Postgres holds the truth and re-checks every booking; what Redis gets
//! wrong (a lost deduction after a restart, a deduction whose commit never came) can only
//! turn a guest away too early or send one more attempt to the Postgres re-check, never
//! oversell. Nights load from Postgres on a miss (or when staff warm a hotel), and leave
//! when nobody has asked for them for the idle TTL, or once they have passed.

pub mod keys;
pub mod link;
pub mod scripts;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;

use crate::domain::{Night, NightRestrictions, Stay};
use crate::telemetry;
use keys::{night_expires_at, KeyLayout};
pub use link::RedisLink;
pub use scripts::PreDeduct;

/// Longest a Redis call may take. A script runs in well under a millisecond; a call this
/// slow means Redis is frozen or unreachable. Whether a timed-out script ran is unknown:
/// if it deducted, Redis shows fewer rooms than Postgres until the reconciler repairs it,
/// which can turn guests away early but never oversell.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a Redis call failed: the booking path treats every one the same way (carry on
/// without Redis, leave repairs to the reconciler), so one type carries them all.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("a script answered {0:?}, which its header does not list")]
    UnknownReply(Vec<i64>),
    #[error("Redis did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
}

/// How nights read from Postgres go into Redis (see lua/load_nights.lua). Only [`Absent`]
/// (Self::Absent) writes a night Redis does not hold (whole); the others change nights it
/// holds and leave the rest absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// After a miss: write only nights that are absent.
    Absent,
    /// After staff changed inventory: overwrite capacity and rate, keep `res`.
    Refresh,
    /// After staff changed restrictions: overwrite only those.
    Rules,
}

/// One night as Redis holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedNight {
    pub capacity: i32,
    pub reserved: i32,
    pub rate_cents: i64,
    pub restrictions: NightRestrictions,
}

/// A night's restrictions as the night hash's fields hold them (see lua/load_nights.lua):
/// ss, cta, mins, maxs, ctdn, each '0' when unset.
fn restriction_fields(rules: &NightRestrictions) -> [String; 5] {
    let flag = |set: bool| if set { "1" } else { "0" }.to_owned();
    let stay = |nights: Option<i32>| nights.unwrap_or(0).to_string();
    [
        flag(rules.stop_sell),
        flag(rules.closed_to_arrival),
        stay(rules.min_stay),
        stay(rules.max_stay),
        flag(rules.departure_closed_after),
    ]
}

/// A stay's in-flight hash entry: "rooms|room_type_id|check_in|check_out|deadline".
fn in_flight_entry(stay: &Stay, deadline: i64) -> String {
    format!(
        "{}|{}|{}|{}|{deadline}",
        stay.rooms, stay.room_type_id, stay.check_in, stay.check_out
    )
}

/// The nights an in-flight entry covers, from its text: (room type, check-in, check-out).
/// A give-back's leading '-' and a settled entry's '=' are skipped.
pub fn nights_of_entry(entry: &str) -> Option<(i64, NaiveDate, NaiveDate)> {
    let mut fields = entry.trim_start_matches(['=', '-']).split('|').skip(1);
    let room_type_id = fields.next()?.parse().ok()?;
    let check_in = fields.next()?.parse().ok()?;
    let check_out = fields.next()?.parse().ok()?;
    Some((room_type_id, check_in, check_out))
}

/// An in-flight deduction the reconciler read before its Postgres snapshot, and whether
/// that snapshot had its reservation.
#[derive(Debug, Clone)]
pub struct KnownDeduction {
    pub reservation_id: String,
    pub committed: bool,
    pub entry: String,
}

/// What one reconcile.lua call found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileCounts {
    pub checked: u64,
    pub drifted: u64,
    pub repaired: u64,
    pub deferred: u64,
}

/// One reconcile.lua call: the nights of one room type, as the reconciler's Postgres
/// snapshot has them, the times of its pass (the snapshot, in unix seconds, and
/// [`NightCache::server_time`] before the Postgres read began), and the hotel's in-flight
/// entries read before that.
pub struct ReconcileCall<'a> {
    pub hotel_id: i64,
    pub room_type_id: i64,
    pub nights: &'a [Night],
    pub times: (i64, i64),
    pub known: &'a [KnownDeduction],
}

/// What one reconcile.lua call found and did, and what the next pass must look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileOutcome {
    pub counts: ReconcileCounts,
    /// The call's nights (their indices) to look at again: deferred, or covered by an
    /// entry still in flight.
    pub revisit: Vec<usize>,
    /// In-flight entries removed as past their deadline and never settled: their rooms are
    /// still deducted on every night they cover.
    pub lapsed: Vec<String>,
}

/// Per-night room-type inventory in Redis.
#[derive(Clone)]
pub struct NightCache {
    link: RedisLink,
    keys: KeyLayout,
    marker_ttl: Duration,
    idle_ttl: Duration,
}

impl NightCache {
    /// `marker_ttl`: how long the deduction marker of a reservation id lives before its
    /// commit is marked (see lua/reserve.lua). `idle_ttl`: how long a night nobody asks
    /// for stays in Redis (see lua/load_nights.lua).
    pub fn new(link: RedisLink, prefix: &str, marker_ttl: Duration, idle_ttl: Duration) -> Self {
        Self {
            link,
            keys: KeyLayout::new(prefix),
            marker_ttl,
            idle_ttl,
        }
    }

    fn idle_seconds(&self) -> u64 {
        self.idle_ttl.as_secs().max(1)
    }

    fn night_keys(&self, hotel_id: i64, room_type_id: i64, nights: &[NaiveDate]) -> Vec<String> {
        nights
            .iter()
            .map(|night| self.keys.night(hotel_id, room_type_id, *night))
            .collect()
    }

    /// The keys every script on a stay's deduction touches: its nights, its deduction
    /// marker, the hotel's in-flight hash.
    fn stay_invocation<'a>(
        &self,
        script: &'a scripts::InventoryScript,
        stay: &Stay,
    ) -> scripts::ScriptCall<'a> {
        let mut invocation = script.prepare_invoke();
        for night in stay.nights() {
            invocation.key(self.keys.night(stay.hotel_id, stay.room_type_id, night));
        }
        invocation
            .key(self.keys.deduction(stay.hotel_id, stay.reservation_id))
            .key(self.keys.in_flight(stay.hotel_id));
        invocation
    }

    /// Deducts the stay's rooms on every night, or on none, and records the deduction as
    /// in flight until `deadline` (unix seconds), by which its transaction has surely ended.
    /// `override_restrictions`: staff book past the stay's restrictions.
    pub async fn reserve(
        &self,
        stay: &Stay,
        deadline: i64,
        override_restrictions: bool,
    ) -> Result<PreDeduct, CacheError> {
        let call = self.link.connection().await?;
        let mut connection = call.handle();
        let mut invocation = self.stay_invocation(&scripts::RESERVE, stay);
        invocation
            .arg(stay.rooms)
            .arg(self.marker_ttl.as_secs().max(1))
            .arg(stay.reservation_id.to_string())
            .arg(in_flight_entry(stay, deadline))
            .arg(if override_restrictions { "1" } else { "0" })
            .arg(self.idle_seconds());
        let started = std::time::Instant::now();
        let reply: Vec<i64> = call.run(invocation.invoke(&mut connection)).await?;
        telemetry::observe_script("reserve", started);
        scripts::decode_reserve(&reply, stay).ok_or(CacheError::UnknownReply(reply))
    }

    /// Gives back a deduction that Postgres did not commit. Idempotent: only the first
    /// call for a reservation id gives rooms back. Returns whether it did.
    pub async fn release_deduction(&self, stay: &Stay) -> Result<bool, CacheError> {
        self.release(stay, "deduction").await
    }

    /// Gives back the nights of a stay that Postgres has just canceled or expired.
    pub async fn release_stay(&self, stay: &Stay) -> Result<bool, CacheError> {
        self.release(stay, "stay").await
    }

    async fn release(&self, stay: &Stay, mode: &str) -> Result<bool, CacheError> {
        let call = self.link.connection().await?;
        let mut connection = call.handle();
        let mut invocation = self.stay_invocation(&scripts::RELEASE, stay);
        invocation
            .arg(stay.rooms)
            .arg(mode)
            .arg(stay.reservation_id.to_string());
        let started = std::time::Instant::now();
        let released: i64 = call.run(invocation.invoke(&mut connection)).await?;
        telemetry::observe_script("release", started);
        Ok(released == 1)
    }

    /// Marks deductions committed, with one commit.lua call per hotel (a call may touch
    /// one hash slot only): each marker becomes 'c' for `ttl` (replays find it without
    /// deducting again, and release.lua never gives a committed stay back as an
    /// uncommitted deduction), and each in-flight entry is settled (see lua/commit.lua),
    /// atomically. The calls go out together on the shared connection.
    pub async fn mark_committed(&self, stays: &[Stay], ttl: Duration) -> Result<(), CacheError> {
        let mut by_hotel: BTreeMap<i64, Vec<&Stay>> = BTreeMap::new();
        for stay in stays {
            by_hotel.entry(stay.hotel_id).or_default().push(stay);
        }
        let call = self.link.connection().await?;
        let marks = by_hotel.into_iter().map(|(hotel_id, stays)| {
            let mut connection = call.handle();
            let mut invocation = scripts::COMMIT.prepare_invoke();
            invocation.key(self.keys.in_flight(hotel_id));
            for stay in &stays {
                invocation.key(self.keys.deduction(hotel_id, stay.reservation_id));
            }
            invocation.arg(ttl.as_secs().max(1));
            for stay in &stays {
                invocation.arg(stay.reservation_id.to_string());
            }
            async move { invocation.invoke::<i64>(&mut connection).await }
        });
        let started = std::time::Instant::now();
        let marked = call.run(futures::future::try_join_all(marks)).await;
        telemetry::observe_script("commit", started);
        marked?;
        Ok(())
    }

    /// Registers the give-back of a stay that Postgres is about to end (cancel, expiry), in
    /// the hotel's in-flight hash, until `deadline` (unix seconds): the reconciler then
    /// leaves its nights alone until the release (which removes the entry) has landed.
    pub async fn begin_give_back(&self, stay: &Stay, deadline: i64) -> Result<(), CacheError> {
        let call = self.link.connection().await?;
        let mut connection = call.handle();
        let mut command = redis::cmd("HSET");
        command
            .arg(self.keys.in_flight(stay.hotel_id))
            .arg(stay.reservation_id.to_string())
            .arg(format!("-{}", in_flight_entry(stay, deadline)));
        call.run(command.query_async::<()>(&mut connection)).await?;
        Ok(())
    }

    /// Withdraws a give-back registered by [`begin_give_back`](Self::begin_give_back)
    /// whose stay Postgres did not end after all.
    pub async fn abandon_give_back(&self, stay: &Stay) -> Result<(), CacheError> {
        let call = self.link.connection().await?;
        let mut connection = call.handle();
        let mut command = redis::cmd("HDEL");
        command
            .arg(self.keys.in_flight(stay.hotel_id))
            .arg(stay.reservation_id.to_string());
        call.run(command.query_async::<()>(&mut connection)).await?;
        Ok(())
    }

    /// The hotel's in-flight deductions and give-backs: (reservation id, entry).
    pub async fn in_flight(&self, hotel_id: i64) -> Result<Vec<(String, String)>, CacheError> {
        Ok(self.in_flight_of(&[hotel_id]).await?.remove(0))
    }

    /// [`in_flight`](Self::in_flight) of several hotels, the calls sent together.
    pub async fn in_flight_of(
        &self,
        hotel_ids: &[i64],
    ) -> Result<Vec<Vec<(String, String)>>, CacheError> {
        let call = self.link.connection().await?;
        let reads = hotel_ids.iter().map(|hotel_id| {
            let mut connection = call.handle();
            let mut command = redis::cmd("HGETALL");
            command.arg(self.keys.in_flight(*hotel_id));
            async move { command.query_async(&mut connection).await }
        });
        call.run(futures::future::try_join_all(reads)).await
    }

    /// The clock of the Redis node that holds `hotel_id`'s nights, in microseconds: what
    /// lua/load_nights.lua stamps each night it writes with, so the reconciler can tell a
    /// night written after its Postgres read began, by one clock whatever instance wrote
    /// it. Asked through a script on a key of the hotel, so a Redis Cluster routes it to
    /// that node: another node's clock may differ, and a plain TIME goes to any node,
    /// one that is down included.
    pub async fn server_time(&self, hotel_id: i64) -> Result<i64, CacheError> {
        Ok(self.server_times(&[hotel_id]).await?.remove(0))
    }

    /// [`server_time`](Self::server_time) for several hotels, the calls sent together.
    pub async fn server_times(&self, hotel_ids: &[i64]) -> Result<Vec<i64>, CacheError> {
        let call = self.link.connection().await?;
        let reads = hotel_ids.iter().map(|hotel_id| {
            let mut connection = call.handle();
            let time = redis::cmd("EVAL")
                .arg("local t = redis.call('TIME') return {tonumber(t[1]), tonumber(t[2])}")
                .arg(1)
                .arg(self.keys.in_flight(*hotel_id))
                .to_owned();
            async move {
                let (seconds, micros): (i64, i64) = time.query_async(&mut connection).await?;
                Ok(seconds * 1_000_000 + micros)
            }
        });
        call.run(futures::future::try_join_all(reads)).await
    }

    /// Runs reconcile.lua for one room type (see its header for the argument that no
    /// in-flight deduction is erased or counted twice). `read_at`: [`server_time`]
    /// (Self::server_time) before the Postgres read began.
    pub async fn reconcile(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: &[Night],
        times: (i64, i64),
        known: &[KnownDeduction],
    ) -> Result<ReconcileOutcome, CacheError> {
        let call = ReconcileCall {
            hotel_id,
            room_type_id,
            nights,
            times,
            known,
        };
        self.reconcile_all(&[call]).await?.remove(0)
    }

    /// Runs reconcile.lua once per call, the calls sent together; each call's outcome, in
    /// the calls' order (one failing does not hide what the others did).
    pub async fn reconcile_all(
        &self,
        calls: &[ReconcileCall<'_>],
    ) -> Result<Vec<Result<ReconcileOutcome, CacheError>>, CacheError> {
        let call = self.link.connection().await?;
        let invocations: Vec<_> = calls
            .iter()
            .map(|reconcile| self.reconcile_invocation(reconcile))
            .collect();
        let runs = invocations.iter().map(|invocation| {
            let mut connection = call.handle();
            async move {
                invocation
                    .invoke::<(Vec<i64>, Vec<i64>, Vec<String>)>(&mut connection)
                    .await
            }
        });
        let started = std::time::Instant::now();
        let replies = call
            .run(async { Ok(futures::future::join_all(runs).await) })
            .await?;
        telemetry::observe_script("reconcile", started);
        Ok(replies
            .into_iter()
            .map(|reply| {
                let (counts, revisit, lapsed) = reply?;
                let counts = match counts[..] {
                    [checked, drifted, repaired, deferred] => ReconcileCounts {
                        checked: checked as u64,
                        drifted: drifted as u64,
                        repaired: repaired as u64,
                        deferred: deferred as u64,
                    },
                    _ => return Err(CacheError::UnknownReply(counts)),
                };
                Ok(ReconcileOutcome {
                    counts,
                    // Lua counts from 1.
                    revisit: revisit
                        .into_iter()
                        .filter_map(|index| usize::try_from(index - 1).ok())
                        .collect(),
                    lapsed,
                })
            })
            .collect())
    }

    fn reconcile_invocation(&self, call: &ReconcileCall<'_>) -> scripts::ScriptCall<'static> {
        let mut invocation = scripts::RECONCILE.prepare_invoke();
        for night in call.nights {
            invocation.key(
                self.keys
                    .night(call.hotel_id, call.room_type_id, night.date),
            );
        }
        let (snapshot_unix, read_at) = call.times;
        invocation
            .key(self.keys.in_flight(call.hotel_id))
            .arg(call.nights.len())
            .arg(snapshot_unix)
            .arg(call.room_type_id)
            .arg(read_at)
            .arg(self.idle_seconds());
        for night in call.nights {
            invocation
                .arg(night.date.to_string())
                .arg(night.capacity)
                .arg(night.total_reserved)
                .arg(night.rate_cents)
                .arg(&restriction_fields(&night.restrictions)[..]);
        }
        invocation.arg(call.known.len());
        for deduction in call.known {
            invocation
                .arg(&deduction.reservation_id)
                .arg(if deduction.committed { "c" } else { "u" })
                .arg(&deduction.entry);
        }
        invocation
    }

    /// How many keys Redis holds, on every node of a cluster: the nights resident, plus
    /// the deduction markers and in-flight hashes (see [`keys`]).
    pub async fn resident_keys(&self) -> Result<i64, CacheError> {
        let call = self.link.connection().await?;
        let mut connection = call.handle();
        call.run(redis::cmd("DBSIZE").query_async(&mut connection))
            .await
    }

    /// Writes nights read from Postgres into Redis (see [`LoadMode`]); returns how many
    /// it wrote.
    pub async fn load(
        &self,
        hotel_id: i64,
        room_type_id: i64,
        nights: &[Night],
        mode: LoadMode,
    ) -> Result<u64, CacheError> {
        if nights.is_empty() {
            return Ok(0);
        }
        let call = self.link.connection().await?;
        let mut connection = call.handle();
        let mut invocation = scripts::LOAD_NIGHTS.prepare_invoke();
        invocation
            .arg(match mode {
                LoadMode::Absent => "absent",
                LoadMode::Refresh => "refresh",
                LoadMode::Rules => "rules",
            })
            .arg(self.idle_seconds());
        for night in nights {
            invocation
                .key(self.keys.night(hotel_id, room_type_id, night.date))
                .arg(night.capacity)
                .arg(night.total_reserved)
                .arg(night.rate_cents)
                .arg(night_expires_at(night.date))
                .arg(&restriction_fields(&night.restrictions)[..]);
        }
        let started = std::time::Instant::now();
        let written: i64 = call.run(invocation.invoke(&mut connection)).await?;
        telemetry::observe_script("load_nights", started);
        Ok(written as u64)
    }

    /// The cached nights of several room types, in one round trip: one row per room type,
    /// one entry per night, `None` where Redis does not hold the night. Each night read
    /// stays in Redis at least the idle TTL from now (see lua/load_nights.lua).
    pub async fn read(
        &self,
        hotel_id: i64,
        room_type_ids: &[i64],
        nights: &[NaiveDate],
    ) -> Result<Vec<Vec<Option<CachedNight>>>, CacheError> {
        let call = self.link.connection().await?;
        let mut connection = call.handle();
        let mut pipe = redis::pipe();
        // The idle TTLs are pushed on beside the read, on the same connection (so at the
        // cost of one round trip, not two), and apart from it: a key a Redis Cluster is
        // moving to another node answers a read through the ASK redirect, but may refuse
        // the EXPIRE, which only makes the night leave a little early.
        let mut touch = redis::pipe();
        for room_type_id in room_type_ids {
            for key in self.night_keys(hotel_id, *room_type_id, nights) {
                pipe.cmd("HMGET")
                    .arg(&key)
                    .arg(&["cap", "res", "rate", "ss", "cta", "mins", "maxs", "ctdn"][..]);
                touch
                    .cmd("EXPIRE")
                    .arg(key)
                    .arg(self.idle_seconds())
                    .arg("GT")
                    .ignore();
            }
        }
        let mut touching = call.handle();
        let touched = touch.query_async::<()>(&mut touching);
        type Fields = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let (replies, touched) = call
            .run(async {
                let (replies, touched) = futures::future::join(
                    pipe.query_async::<Vec<Fields>>(&mut connection),
                    touched,
                )
                .await;
                Ok((replies?, touched))
            })
            .await?;
        if let Err(error) = touched {
            tracing::debug!(%error, "could not push the idle TTL of nights read on");
        }
        let mut replies = replies.into_iter();
        Ok(room_type_ids
            .iter()
            .map(|_| {
                replies
                    .by_ref()
                    .take(nights.len())
                    .map(|(capacity, reserved, rate, ss, cta, mins, maxs, ctdn)| {
                        let stay = |nights: Option<i64>| {
                            nights
                                .filter(|nights| *nights > 0)
                                .and_then(|nights| i32::try_from(nights).ok())
                        };
                        Some(CachedNight {
                            capacity: capacity? as i32,
                            reserved: reserved.unwrap_or(0) as i32,
                            rate_cents: rate.unwrap_or(0),
                            restrictions: NightRestrictions {
                                stop_sell: ss == Some(1),
                                closed_to_arrival: cta == Some(1),
                                min_stay: stay(mins),
                                max_stay: stay(maxs),
                                departure_closed_after: ctdn == Some(1),
                            },
                        })
                    })
                    .collect()
            })
            .collect())
    }
}
