//! The reconciler: makes Redis equal Postgres on the nights Redis holds, from yesterday to
//! the booking horizon, in both directions (Redis lost deductions, or kept deductions whose
//! commit never came).
//!
//! Its cost follows the change, not the inventory on sale. Each pass looks at:
//! - the nights the night journal names (migration V12): Postgres' triggers write an
//!   entry in the same transaction as every change to a night (a booking, a cancel, an
//!   expiry, an inventory, rate, ratio or restrictions write), so a night whose count
//!   changed is looked at by the next pass;
//! - the nights it must look at again: those it deferred (below), those a deduction or
//!   give-back still in flight covers, and every night of an in-flight entry it removed as
//!   past its deadline. It journals them for the next pass;
//! - a slice of the full round: every hotel once per `INNKEEPER_RECONCILE_FULL_PERIOD_SECS`,
//!   a few per pass, so drift that no change journaled is found too (Redis losing writes
//!   in a failover, a deduction stranded by a process killed before its compensation).
//!
//! A deduction whose compensation failed (Redis out of reach at that moment) changed
//! nothing in Postgres, so the booker journals its nights itself; if even that fails, the
//! full round finds it. The journal entries a pass takes are its own once taken; a pass
//! that fails puts back what it had not done, and one cut short by its deadline leaves
//! them to the full round.
//!
//! A pass takes only entries older than the settle time (`ReconcileSchedule::settle`):
//! a Redis write based on a Postgres read from before the change (a load after a miss, a
//! staff change's refresh, a give-back's release) lands within it. Landed before the
//! pass reads Postgres, it is repaired from a snapshot that has the change; landed after,
//! its `at` stamp defers the night to the next pass (below). Without the wait such a
//! write could land after the pass that consumed the change's entry, and stay wrong
//! until the full round.
//!
//! A night Redis does not hold is neither drift nor repaired: it loads from Postgres when
//! someone asks for it, so Redis holds what is in demand.
//!
//! Why a repair never erases a deduction still in flight, nor counts one twice:
//! every deduction is recorded in its hotel's in-flight hash by the same script call that
//! makes it. When its commit is marked the entry is settled (lua/commit.lua) rather than
//! removed, and a pass that has seen it settled removes it; when it is given back the entry
//! leaves at once. For each hotel the reconciler
//! 1. reads the in-flight hash (S1) and notes the time T;
//! 2. reads, in ONE Postgres snapshot taken after that, every night's `total_reserved` and
//!    which ids of S1 are committed;
//! 3. runs lua/reconcile.lua per room type, which, atomically in Redis, sets each night to
//!    Postgres' count plus the rooms of ids still in flight and uncommitted at the
//!    snapshot. An id whose state cannot be known from the snapshot (it deducted after
//!    step 1, it left the hash between steps 2 and 3, or it was settled since step 1)
//!    makes its nights wait for the next pass instead of being guessed at. Settling rather
//!    than removing is what makes a deduction made after step 1 and committed before step
//!    3 visible at step 3: removed, it would leave no trace, and the script would set its
//!    nights to a snapshot that may predate its commit, erasing it. An entry past its
//!    deadline at T belongs to a transaction that had ended before the snapshot (commits
//!    are bounded well inside the deadline), so Postgres' count already tells the truth
//!    about it.
//!
//! Every ending registers its give-back in the same hash before Postgres ends the stay,
//! with negative rooms, and the release removes it: a cancel, a confirm that finds the
//! hold expired, and the hold sweeper, which reads the due holds and registers them before
//! it expires exactly those. While an entry is there (in step 1's read or at step 3) the
//! stay's nights wait for the next pass, since neither the snapshot's view of the ending
//! nor Redis' of the release can be told. A registration that fails (Redis down) is
//! logged; its nights may then be off by the stay's rooms, in either direction, never past
//! capacity, until the first pass that takes the journal entry of the ending (the settle
//! time below lets its release land first).
//!
//! The snapshot and the script are minutes apart at most; deductions, commits and
//! releases in between change Redis and the hash together, which is why the script
//! compares against the hash as it is when it runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::BookingLimits;
use crate::inventory::{
    nights_of_entry, KnownDeduction, NightCache, ReconcileCall, ReconcileCounts, CALL_TIMEOUT,
};
use crate::store::journal::{self, ChangedNights};
use crate::store::{hotels, inventory, reservations};
use crate::store::{Shard, Shards};
use crate::telemetry::metrics::{
    CACHE_KEYS, RECONCILER_DRIFT, RECONCILER_LAST_SUCCESS, RECONCILER_NIGHTS_CHECKED,
    RECONCILER_PASS_SECONDS, RECONCILER_REPAIRS, RECONCILER_ROUND_PROGRESS, RECONCILER_RUNS,
};

/// Nights per script call, so one call never blocks Redis for long.
const NIGHTS_PER_CALL: usize = 400;

/// Hotels looked at together: their in-flight reads, clock reads and scripts each go to
/// Redis as one batch, and their nights come from one Postgres snapshot, so a pass costs
/// a few round trips per batch rather than seven per hotel (which made a pass over 1% of
/// the nights cost a fifth of a full one, since most hotels had a changed night).
const HOTELS_PER_BATCH: usize = 64;

/// Journal entries taken per statement: each chunk is looked at before the next is taken.
const JOURNAL_CHUNK: i64 = 2_000;

/// The least time a pass may spend on the journal, however short its interval.
const MIN_PASS_BUDGET: Duration = Duration::from_secs(5);

/// What one pass found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconcileReport {
    /// Nights compared: those Redis holds, among the nights the pass looked at.
    pub checked: u64,
    /// Nights where Redis differed from Postgres.
    pub drifted: u64,
    /// Nights rewritten from Postgres.
    pub repaired: u64,
}

impl std::iter::Sum for ReconcileReport {
    fn sum<I: Iterator<Item = Self>>(reports: I) -> Self {
        reports.fold(Self::default(), |total, report| Self {
            checked: total.checked + report.checked,
            drifted: total.drifted + report.drifted,
            repaired: total.repaired + report.repaired,
        })
    }
}

/// How often passes run, and how long the full round over every hotel may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSchedule {
    pub interval: Duration,
    pub full_period: Duration,
    /// How old a journal entry must be before a pass takes it (see the module's header).
    pub settle: Duration,
}

impl ReconcileSchedule {
    /// A journal entry is written before its transaction commits, at most a statement
    /// timeout before; a Redis write based on a Postgres read from before that commit
    /// (a load after a miss, a staff change's refresh, a give-back's release) follows its
    /// read within a statement timeout and a Redis call's. Twice the statement timeout,
    /// the Redis call's and a second more cover both.
    pub fn of(config: &Config) -> Self {
        Self {
            interval: config.reconcile_interval,
            full_period: config.reconcile_full_period,
            settle: config.db_statement_timeout * 2 + CALL_TIMEOUT + Duration::from_secs(1),
        }
    }

    /// Hotels each pass takes from the full round so that it covers `hotels` in one
    /// period: at least one, so a round always ends.
    fn slice(&self, hotels: i64) -> i64 {
        if self.full_period.is_zero() {
            return hotels.max(1);
        }
        let share = self.interval.as_secs_f64() / self.full_period.as_secs_f64();
        ((hotels as f64 * share).ceil() as i64).max(1)
    }
}

/// Which nights of a batch of hotels a pass compares.
enum Scope<'a> {
    /// Every night from yesterday to the horizon.
    Everything,
    /// The nights of these spans: (hotel, room type, first night, last night), not
    /// overlapping.
    Spans(&'a [(i64, i64, NaiveDate, NaiveDate)]),
}

/// What a pass did, and the nights its successor must look at.
#[derive(Default)]
struct Tally {
    counts: ReconcileCounts,
    revisit: Vec<ChangedNights>,
}

impl Tally {
    fn add(&mut self, counts: ReconcileCounts) {
        self.counts.checked += counts.checked;
        self.counts.drifted += counts.drifted;
        self.counts.repaired += counts.repaired;
        self.counts.deferred += counts.deferred;
    }

    fn report(&self) -> ReconcileReport {
        ReconcileReport {
            checked: self.counts.checked,
            drifted: self.counts.drifted,
            repaired: self.counts.repaired,
        }
    }
}

#[derive(Clone)]
pub struct Reconciler {
    shards: Shards,
    cache: Option<NightCache>,
    clock: Arc<dyn Clock>,
    limits: BookingLimits,
    schedule: ReconcileSchedule,
}

impl Reconciler {
    pub fn new(
        shards: Shards,
        cache: Option<NightCache>,
        clock: Arc<dyn Clock>,
        limits: BookingLimits,
        schedule: ReconcileSchedule,
    ) -> Self {
        Self {
            shards,
            cache,
            clock,
            limits,
            schedule,
        }
    }

    /// The same reconciler on another schedule, for tests that drive its passes by hand
    /// (with the background pass off, its interval is zero).
    pub fn with_schedule(mut self, schedule: ReconcileSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// One full pass over every night of every hotel of every shard: what an operator
    /// asks for (`innkeeper reconcile`, the admin route) after an incident.
    pub async fn run_once(&self) -> anyhow::Result<ReconcileReport> {
        super::on_every_shard(&self.shards, |shard| self.run_on(shard)).await
    }

    /// One full pass over every hotel of `shard`. In the `db` inventory mode there is no
    /// cache to repair and the report is all zeros.
    pub async fn run_on(&self, shard: &Shard) -> anyhow::Result<ReconcileReport> {
        let started = Instant::now();
        let mut tally = Tally::default();
        if let Some(cache) = &self.cache {
            let hotels = hotels::all_ids(&shard.pool.get().await?).await?;
            let done = self.hotels(cache, shard, &hotels, &mut tally).await;
            self.put_back(shard, std::mem::take(&mut tally.revisit))
                .await;
            done?;
        }
        Ok(self.finish(shard, &tally, started, "full"))
    }

    /// The background pass on every shard at once, for tests that drive it by hand.
    pub async fn pass_once(&self) -> anyhow::Result<ReconcileReport> {
        super::on_every_shard(&self.shards, |shard| self.pass_on(shard)).await
    }

    /// The background pass on `shard`: the nights the journal names, then a slice of the
    /// full round. In the `db` mode there is no cache, and the pass only empties the
    /// journal.
    ///
    /// It takes the journal a chunk at a time and looks at each chunk before taking the
    /// next, for at most its interval: a backlog (after an outage) is worked off over the
    /// next passes, and a pass cut short by its deadline has taken little that it did not
    /// look at (what it had taken is left to the full round).
    pub async fn pass_on(&self, shard: &Shard) -> anyhow::Result<ReconcileReport> {
        let started = Instant::now();
        let mut tally = Tally::default();
        let Some(cache) = &self.cache else {
            while !self.take(shard).await?.is_empty() {}
            return Ok(self.finish(shard, &tally, started, "changes"));
        };
        let budget = self.schedule.interval.max(MIN_PASS_BUDGET);
        let mut done = Ok(());
        while started.elapsed() < budget {
            let changed = match self.take(shard).await {
                Ok(changed) if changed.is_empty() => break,
                Ok(changed) => changed,
                Err(error) => {
                    done = Err(error);
                    break;
                }
            };
            if let Err(error) = self.changed_nights(cache, shard, changed, &mut tally).await {
                done = Err(error);
                break;
            }
        }
        if done.is_ok() {
            done = self.round_slice(cache, shard, &mut tally).await;
        }
        self.put_back(shard, std::mem::take(&mut tally.revisit))
            .await;
        done?;
        match cache.resident_keys().await {
            Ok(keys) => metrics::gauge!(CACHE_KEYS).set(keys as f64),
            Err(error) => tracing::warn!(%error, "could not count the keys in Redis"),
        }
        Ok(self.finish(shard, &tally, started, "changes"))
    }

    /// Looks at the nights of journal entries a pass took, a batch of hotels at a time; on
    /// a failure, what it had not looked at goes back to the journal with the revisits.
    async fn changed_nights(
        &self,
        cache: &NightCache,
        shard: &Shard,
        changed: Vec<ChangedNights>,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let mut pending = self.spans_by_hotel(changed);
        while !pending.is_empty() {
            let mut batch = Vec::new();
            let mut spans = Vec::new();
            while batch.len() < HOTELS_PER_BATCH {
                let Some((hotel_id, hotel_spans)) = pending.pop_first() else {
                    break;
                };
                batch.push(hotel_id);
                spans.extend(
                    hotel_spans
                        .into_iter()
                        .map(|(room_type_id, first, last)| (hotel_id, room_type_id, first, last)),
                );
            }
            let looked = self
                .reconcile_batch(cache, shard, &batch, Scope::Spans(&spans), tally)
                .await;
            if let Err(error) = looked {
                let undone = pending.into_iter().flat_map(|(hotel_id, spans)| {
                    spans.into_iter().map(move |(room_type_id, first, last)| {
                        (hotel_id, room_type_id, first, last)
                    })
                });
                tally.revisit.extend(spans.into_iter().chain(undone).map(
                    |(hotel_id, room_type_id, first, last)| ChangedNights {
                        hotel_id,
                        room_type_id,
                        first,
                        last,
                    },
                ));
                return Err(error);
            }
        }
        Ok(())
    }

    async fn take(&self, shard: &Shard) -> anyhow::Result<Vec<ChangedNights>> {
        let db = shard.pool.get().await?;
        Ok(journal::take(&db, JOURNAL_CHUNK, self.schedule.settle).await?)
    }

    /// Journal entries grouped by hotel, as merged spans within the nights a pass looks at.
    fn spans_by_hotel(
        &self,
        changed: Vec<ChangedNights>,
    ) -> BTreeMap<i64, Vec<(i64, NaiveDate, NaiveDate)>> {
        let (from, to) = self.window(self.clock.now().date_naive());
        spans_by_hotel(changed, from, to - Days::new(1))
    }

    /// The next slice of the full round, which starts over when it reaches the last hotel.
    async fn round_slice(
        &self,
        cache: &NightCache,
        shard: &Shard,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let db = shard.pool.get().await?;
        let position = journal::round_position(&db).await?;
        let limit = self.schedule.slice(position.hotels);
        let slice = hotels::ids_from(&db, position.next_hotel_id, limit).await?;
        drop(db);
        self.hotels(cache, shard, &slice, tally).await?;
        let passed = position.passed + slice.len() as i64;
        // The round ends with its last hotel; hotels added meanwhile wait for the next.
        let next = match slice.last() {
            Some(last) if passed < position.hotels => last + 1,
            _ => 0,
        };
        journal::advance_round(&shard.pool.get().await?, next).await?;
        let passed = if next == 0 { position.hotels } else { passed };
        let progress = if position.hotels == 0 {
            1.0
        } else {
            passed as f64 / position.hotels as f64
        };
        metrics::gauge!(RECONCILER_ROUND_PROGRESS, "shard" => shard_label(shard)).set(progress);
        Ok(())
    }

    async fn hotels(
        &self,
        cache: &NightCache,
        shard: &Shard,
        hotels: &[i64],
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        for batch in hotels.chunks(HOTELS_PER_BATCH) {
            self.reconcile_batch(cache, shard, batch, Scope::Everything, tally)
                .await?;
        }
        Ok(())
    }

    /// Journals the nights the next pass must look at. A failure is logged: the full round
    /// covers them.
    async fn put_back(&self, shard: &Shard, revisit: Vec<ChangedNights>) {
        if revisit.is_empty() {
            return;
        }
        // Merged, so a long stay in flight is one entry, not one a night.
        let revisit: Vec<ChangedNights> = spans_by_hotel(revisit, NaiveDate::MIN, NaiveDate::MAX)
            .into_iter()
            .flat_map(|(hotel_id, spans)| {
                spans
                    .into_iter()
                    .map(move |(room_type_id, first, last)| ChangedNights {
                        hotel_id,
                        room_type_id,
                        first,
                        last,
                    })
            })
            .collect();
        let recorded = async {
            let db = shard.pool.get().await?;
            journal::record(&db, &revisit).await?;
            anyhow::Ok(())
        };
        if let Err(error) = recorded.await {
            tracing::warn!(
                error = format!("{error:#}"),
                nights = revisit.len(),
                "could not journal nights for the next reconciler pass; the full round will look at them"
            );
        }
    }

    fn finish(
        &self,
        shard: &Shard,
        tally: &Tally,
        started: Instant,
        kind: &'static str,
    ) -> ReconcileReport {
        let report = tally.report();
        let shard = shard_label(shard);
        metrics::counter!(RECONCILER_RUNS).increment(1);
        metrics::gauge!(RECONCILER_DRIFT).set(report.drifted as f64);
        metrics::counter!(RECONCILER_REPAIRS).increment(report.repaired);
        metrics::gauge!(RECONCILER_LAST_SUCCESS).set(self.clock.now().timestamp() as f64);
        metrics::gauge!(RECONCILER_NIGHTS_CHECKED, "shard" => shard.clone(), "pass" => kind)
            .set(report.checked as f64);
        metrics::gauge!(RECONCILER_PASS_SECONDS, "shard" => shard, "pass" => kind)
            .set(started.elapsed().as_secs_f64());
        if report.drifted > 0 || tally.counts.deferred > 0 {
            tracing::info!(
                pass = kind,
                checked = report.checked,
                drifted = report.drifted,
                repaired = report.repaired,
                deferred = tally.counts.deferred,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "reconciled Redis with Postgres"
            );
        }
        report
    }

    /// The nights a pass may compare: yesterday (a night is "today" somewhere until UTC's
    /// tomorrow) to the last night of the longest stay starting at the horizon.
    fn window(&self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        let from = today - Days::new(1);
        let to = today
            + Days::new(
                u64::from(self.limits.horizon_days) + u64::from(self.limits.max_nights) + 1,
            );
        (from, to)
    }

    /// One pass's look at a batch of hotels (see the module's header for the steps).
    async fn reconcile_batch(
        &self,
        cache: &NightCache,
        shard: &Shard,
        hotels: &[i64],
        scope: Scope<'_>,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let in_flight = cache.in_flight_of(hotels).await?;
        let snapshot = self.clock.now();
        let read_at = cache.server_times(hotels).await?;
        let (from, to) = self.window(snapshot.date_naive());
        let ids: Vec<Uuid> = in_flight
            .iter()
            .flatten()
            .filter_map(|(id, _)| id.parse().ok())
            .collect();

        let mut db = shard.pool.get().await?;
        let tx = db
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let nights = match &scope {
            Scope::Everything => inventory::nights_of_hotels(&tx, hotels, from, to).await?,
            Scope::Spans(spans) => inventory::nights_in_spans(&tx, spans).await?,
        };
        let committed = reservations::stored_among(&tx, &ids).await?;
        tx.commit().await?;
        drop(db);

        let known: BTreeMap<i64, Vec<KnownDeduction>> = hotels
            .iter()
            .zip(in_flight)
            .map(|(hotel_id, entries)| {
                let known = entries
                    .into_iter()
                    .map(|(reservation_id, entry)| KnownDeduction {
                        committed: committed.contains(&reservation_id),
                        reservation_id,
                        entry,
                    })
                    .collect();
                (*hotel_id, known)
            })
            .collect();
        let read_at: BTreeMap<i64, i64> = hotels.iter().copied().zip(read_at).collect();
        let calls: Vec<ReconcileCall> = nights
            .iter()
            .flat_map(|((hotel_id, room_type_id), nights)| {
                let (known, read_at) = (&known[hotel_id], read_at[hotel_id]);
                nights
                    .chunks(NIGHTS_PER_CALL)
                    .map(move |chunk| ReconcileCall {
                        hotel_id: *hotel_id,
                        room_type_id: *room_type_id,
                        nights: chunk,
                        times: (snapshot.timestamp(), read_at),
                        known,
                    })
            })
            .collect();
        let outcomes = cache.reconcile_all(&calls).await?;
        let mut failed = None;
        for (call, done) in calls.iter().zip(outcomes) {
            // What the calls that ran did (a lapsed entry they dropped is gone from Redis)
            // counts, whichever failed.
            let done = match done {
                Ok(done) => done,
                Err(error) => {
                    failed.get_or_insert(error);
                    continue;
                }
            };
            tally.add(done.counts);
            let (hotel_id, room_type_id) = (call.hotel_id, call.room_type_id);
            let night = |index: usize| call.nights.get(index).map(|night| night.date);
            tally
                .revisit
                .extend(
                    done.revisit
                        .into_iter()
                        .filter_map(night)
                        .map(|date| ChangedNights {
                            hotel_id,
                            room_type_id,
                            first: date,
                            last: date,
                        }),
                );
            tally.revisit.extend(done.lapsed.iter().filter_map(|entry| {
                let (room_type_id, check_in, check_out) = nights_of_entry(entry)?;
                Some(ChangedNights {
                    hotel_id,
                    room_type_id,
                    first: check_in,
                    last: check_out.pred_opt()?,
                })
            }));
        }
        match failed {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

fn shard_label(shard: &Shard) -> String {
    (shard.index + 1).to_string()
}

/// Journal entries grouped by hotel, each room type's spans clipped to `[first, last]`,
/// sorted and merged where they overlap or touch.
fn spans_by_hotel(
    changed: Vec<ChangedNights>,
    first: NaiveDate,
    last: NaiveDate,
) -> BTreeMap<i64, Vec<(i64, NaiveDate, NaiveDate)>> {
    let mut by_room_type: BTreeMap<(i64, i64), Vec<(NaiveDate, NaiveDate)>> = BTreeMap::new();
    for change in changed {
        let (from, to) = (change.first.max(first), change.last.min(last));
        if from <= to {
            by_room_type
                .entry((change.hotel_id, change.room_type_id))
                .or_default()
                .push((from, to));
        }
    }
    let mut by_hotel: BTreeMap<i64, Vec<(i64, NaiveDate, NaiveDate)>> = BTreeMap::new();
    for ((hotel_id, room_type_id), mut spans) in by_room_type {
        spans.sort();
        let merged = by_hotel.entry(hotel_id).or_default();
        let mut current: Option<(NaiveDate, NaiveDate)> = None;
        for (from, to) in spans {
            current = match current {
                Some((start, end)) if from <= end + Days::new(1) => Some((start, end.max(to))),
                Some((start, end)) => {
                    merged.push((room_type_id, start, end));
                    Some((from, to))
                }
                None => Some((from, to)),
            };
        }
        if let Some((start, end)) = current {
            merged.push((room_type_id, start, end));
        }
    }
    by_hotel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, d).unwrap()
    }

    fn change(hotel_id: i64, room_type_id: i64, first: u32, last: u32) -> ChangedNights {
        ChangedNights {
            hotel_id,
            room_type_id,
            first: day(first),
            last: day(last),
        }
    }

    #[test]
    fn spans_merge_where_they_overlap_or_touch_and_are_clipped() {
        let spans = spans_by_hotel(
            vec![
                change(1, 7, 5, 6),
                change(1, 7, 7, 9),
                change(1, 7, 3, 4),
                change(1, 7, 12, 12),
                change(1, 8, 5, 6),
                change(2, 7, 1, 28),
                change(3, 7, 25, 28),
            ],
            day(2),
            day(20),
        );
        assert_eq!(
            spans,
            BTreeMap::from([
                (
                    1,
                    vec![
                        (7, day(3), day(9)),
                        (7, day(12), day(12)),
                        (8, day(5), day(6))
                    ]
                ),
                (2, vec![(7, day(2), day(20))]),
            ])
        );
    }

    #[test]
    fn a_round_is_sliced_to_end_within_its_period() {
        let schedule = ReconcileSchedule {
            interval: Duration::from_secs(30),
            full_period: Duration::from_secs(3600),
            settle: Duration::ZERO,
        };
        // 120 passes a period: 10,000 hotels take 84 a pass.
        assert_eq!(schedule.slice(10_000), 84);
        assert!(schedule.slice(10_000) * 120 >= 10_000);
        assert_eq!(schedule.slice(0), 1);
        assert_eq!(schedule.slice(5), 1);
    }
}
