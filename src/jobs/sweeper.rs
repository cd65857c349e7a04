//! The hold sweeper: pending reservations past `hold_expires_at` become `expired` and give
//! their nights back, in Postgres and then Redis.
//!
//! `expire_holds()` (migrations/V3__jobs.sql) takes due rows with `FOR UPDATE SKIP LOCKED`
//! and only ever changes `pending` rows, so each hold expires exactly once even when
//! several innkeeper processes sweep at the same time, and a confirm racing the expiry
//! either confirms first (the sweeper then finds the row no longer pending) or finds it
//! expired (and answers 409).

use std::sync::Arc;
use std::time::Instant;

use tokio_postgres::Row;

use crate::booking::Booker;
use crate::clock::Clock;
use crate::store::reservations::Reservation;

/// Holds expired per statement; the sweep repeats until a batch comes back short.
const BATCH: i32 = 200;

#[derive(Clone)]
pub struct Sweeper {
    booker: Booker,
    clock: Arc<dyn Clock>,
}

impl Sweeper {
    pub fn new(booker: Booker, clock: Arc<dyn Clock>) -> Self {
        Self { booker, clock }
    }

    /// Expires every hold due now; returns how many expired.
    pub async fn run_once(&self) -> anyhow::Result<u64> {
        let mut expired = 0;
        loop {
            let now = self.clock.now();
            let started = Instant::now();
            let rows: Vec<Row> = {
                let db = self.booker.db().get().await?;
                let sql = "SELECT reservation_id, hotel_id, room_type_id, guest_id, check_in, \
                           check_out, rooms, status, total_cents, currency, hold_expires_at, \
                           created_at, updated_at FROM expire_holds($1, $2)";
                db.query(&db.prepare_cached(sql).await?, &[&now, &BATCH])
                    .await?
            };
            crate::telemetry::observe_transaction("expire_holds", started);
            for row in &rows {
                let ended = Reservation::from_row(row);
                self.booker.give_back(&ended).await;
            }
            expired += rows.len() as u64;
            metrics::counter!("innkeeper_holds_expired_total").increment(rows.len() as u64);
            if rows.len() < BATCH as usize {
                return Ok(expired);
            }
        }
    }
}
