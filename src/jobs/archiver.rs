//! The archiver: only current and future data stays hot. Reservations whose check-out is
//! older than the retention move to `reservations_archive` in the same statement that
//! deletes them, and inventory rows of past nights are deleted. (Redis keys of past nights
//! expire by TTL on their own.)

use std::sync::Arc;
use std::time::Instant;

use chrono::Days;

use crate::clock::Clock;
use crate::store::reservations::COLUMNS;
use crate::store::{Shard, Shards};

/// Reservations moved per statement, so one run never holds long locks.
const BATCH: i64 = 1000;

#[derive(Clone)]
pub struct Archiver {
    shards: Shards,
    clock: Arc<dyn Clock>,
    retention_days: u32,
}

/// What one archiver run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    pub reservations_archived: u64,
    pub nights_deleted: u64,
}

impl std::iter::Sum for ArchiveReport {
    fn sum<I: Iterator<Item = Self>>(reports: I) -> Self {
        reports.fold(Self::default(), |total, report| Self {
            reservations_archived: total.reservations_archived + report.reservations_archived,
            nights_deleted: total.nights_deleted + report.nights_deleted,
        })
    }
}

impl Archiver {
    pub fn new(shards: Shards, clock: Arc<dyn Clock>, retention_days: u32) -> Self {
        Self {
            shards,
            clock,
            retention_days,
        }
    }

    /// One run on every shard.
    pub async fn run_once(&self) -> anyhow::Result<ArchiveReport> {
        super::on_every_shard(&self.shards, |shard| self.run_on(shard)).await
    }

    pub async fn run_on(&self, shard: &Shard) -> anyhow::Result<ArchiveReport> {
        let now = self.clock.now();
        let today = now.date_naive();
        let cutoff = today - Days::new(u64::from(self.retention_days));
        // A night is past everywhere once it is two days behind UTC's today.
        let past = today - Days::new(2);
        let db = shard.pool.get().await?;
        let mut report = ArchiveReport::default();
        let started = Instant::now();
        // Columns by name: the two tables gained columns in different orders.
        let archive = format!(
            "WITH moved AS ( \
                 DELETE FROM reservations WHERE reservation_id IN ( \
                     SELECT reservation_id FROM reservations WHERE check_out < $1 \
                     LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING {COLUMNS}) \
             INSERT INTO reservations_archive ({COLUMNS}, archived_at) \
             SELECT {COLUMNS}, $3 FROM moved"
        );
        let statement = db.prepare_cached(&archive).await?;
        loop {
            let moved = db.execute(&statement, &[&cutoff, &BATCH, &now]).await?;
            report.reservations_archived += moved;
            if moved < BATCH as u64 {
                break;
            }
        }
        let past_nights = "DELETE FROM room_type_inventory WHERE date < $1";
        report.nights_deleted = db
            .execute(&db.prepare_cached(past_nights).await?, &[&past])
            .await?;
        crate::telemetry::observe_transaction("archive", started);
        if report != ArchiveReport::default() {
            tracing::info!(?report, "archived finished stays and past nights");
        }
        Ok(report)
    }
}
