//! The reconciler: makes Redis equal Postgres on every night from today to the booking
//! horizon, in both directions (Redis lost deductions, or kept deductions whose commit
//! never came).
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
//! logged; its nights may then be off by the stay's rooms until the next pass, in either
//! direction, never past capacity.
//!
//! The snapshot and the script are minutes apart at most; deductions, commits and
//! releases in between change Redis and the hash together, which is why the script
//! compares against the hash as it is when it runs.

use std::sync::Arc;
use std::time::Instant;

use chrono::Days;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::BookingLimits;
use crate::inventory::{KnownDeduction, NightCache, ReconcileCounts};
use crate::store::{inventory, reservations};
use crate::store::{Shard, Shards};
use crate::telemetry::metrics::{
    RECONCILER_DRIFT, RECONCILER_LAST_SUCCESS, RECONCILER_REPAIRS, RECONCILER_RUNS,
};

/// Nights per script call, so one call never blocks Redis for long.
const NIGHTS_PER_CALL: usize = 400;

/// What one full pass found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconcileReport {
    /// Nights compared.
    pub checked: u64,
    /// Nights where Redis differed from Postgres (or lacked the night).
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

#[derive(Clone)]
pub struct Reconciler {
    shards: Shards,
    cache: Option<NightCache>,
    clock: Arc<dyn Clock>,
    limits: BookingLimits,
}

impl Reconciler {
    pub fn new(
        shards: Shards,
        cache: Option<NightCache>,
        clock: Arc<dyn Clock>,
        limits: BookingLimits,
    ) -> Self {
        Self {
            shards,
            cache,
            clock,
            limits,
        }
    }

    /// One full pass over every hotel of every shard.
    pub async fn run_once(&self) -> anyhow::Result<ReconcileReport> {
        super::on_every_shard(&self.shards, |shard| self.run_on(shard)).await
    }

    /// One full pass over every hotel of `shard`. In the `db` inventory mode there is no
    /// cache to repair and the report is all zeros.
    pub async fn run_on(&self, shard: &Shard) -> anyhow::Result<ReconcileReport> {
        let started = Instant::now();
        let mut total = ReconcileCounts::default();
        if let Some(cache) = &self.cache {
            let hotels: Vec<i64> = {
                let db = shard.pool.get().await?;
                db.query("SELECT hotel_id FROM hotels ORDER BY hotel_id", &[])
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect()
            };
            for hotel_id in hotels {
                let counts = self.reconcile_hotel(cache, shard, hotel_id).await?;
                total.checked += counts.checked;
                total.drifted += counts.drifted;
                total.repaired += counts.repaired;
                total.deferred += counts.deferred;
            }
        }
        let report = ReconcileReport {
            checked: total.checked,
            drifted: total.drifted,
            repaired: total.repaired,
        };
        metrics::counter!(RECONCILER_RUNS).increment(1);
        metrics::gauge!(RECONCILER_DRIFT).set(report.drifted as f64);
        metrics::counter!(RECONCILER_REPAIRS).increment(report.repaired);
        metrics::gauge!(RECONCILER_LAST_SUCCESS).set(self.clock.now().timestamp() as f64);
        if report.drifted > 0 || total.deferred > 0 {
            tracing::info!(
                checked = report.checked,
                drifted = report.drifted,
                repaired = report.repaired,
                deferred = total.deferred,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "reconciled Redis with Postgres"
            );
        }
        Ok(report)
    }

    async fn reconcile_hotel(
        &self,
        cache: &NightCache,
        shard: &Shard,
        hotel_id: i64,
    ) -> anyhow::Result<ReconcileCounts> {
        let in_flight = cache.in_flight(hotel_id).await?;
        let snapshot = self.clock.now();
        let read_at = cache.server_time(hotel_id).await?;
        let today = snapshot.date_naive();
        // Yesterday too: a night is "today" somewhere until UTC's tomorrow.
        let from = today - Days::new(1);
        let to = today
            + Days::new(
                u64::from(self.limits.horizon_days) + u64::from(self.limits.max_nights) + 1,
            );
        let ids: Vec<Uuid> = in_flight
            .iter()
            .filter_map(|(id, _)| id.parse().ok())
            .collect();

        let mut db = shard.pool.get().await?;
        let tx = db
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let nights = inventory::nights_of_hotel(&tx, hotel_id, from, to).await?;
        let committed = reservations::stored_among(&tx, &ids).await?;
        tx.commit().await?;
        drop(db);

        let known: Vec<KnownDeduction> = in_flight
            .into_iter()
            .map(|(reservation_id, entry)| KnownDeduction {
                committed: committed.contains(&reservation_id),
                reservation_id,
                entry,
            })
            .collect();
        let mut counts = ReconcileCounts::default();
        for (room_type_id, nights) in nights {
            for chunk in nights.chunks(NIGHTS_PER_CALL) {
                let done = cache
                    .reconcile(
                        hotel_id,
                        room_type_id,
                        chunk,
                        (snapshot.timestamp(), read_at),
                        &known,
                    )
                    .await?;
                counts.checked += done.checked;
                counts.drifted += done.drifted;
                counts.repaired += done.repaired;
                counts.deferred += done.deferred;
            }
        }
        Ok(counts)
    }
}
