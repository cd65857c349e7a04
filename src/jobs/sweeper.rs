//! The hold sweeper: pending reservations past `hold_expires_at` become `expired` and give
//! their nights back, in Postgres and then Redis.
//!
//! `expire_holds()` (migrations/V6__expire_chosen_holds.sql) takes the due rows it was given
//! with `FOR UPDATE SKIP LOCKED` and only ever changes `pending` rows, so each hold expires
//! exactly once even when several innkeeper processes sweep at the same time, and a
//! confirm racing the expiry either confirms first (the sweeper then finds the row no
//! longer pending) or finds it expired (and answers 409). Each expiry's give-back is
//! registered in Redis first, as a cancel's is, so the reconciler sees it.

use std::sync::Arc;

use crate::booking::Booker;
use crate::clock::Clock;
use crate::store::{Shard, Shards};
use crate::telemetry::metrics::HOLDS_EXPIRED;

/// Holds expired per statement; the sweep repeats until a batch comes back short.
const BATCH: u16 = 200;

#[derive(Clone)]
pub struct Sweeper {
    booker: Booker,
    shards: Shards,
    clock: Arc<dyn Clock>,
}

impl Sweeper {
    pub fn new(booker: Booker, shards: Shards, clock: Arc<dyn Clock>) -> Self {
        Self {
            booker,
            shards,
            clock,
        }
    }

    /// Expires every hold due now on every shard; returns how many expired.
    pub async fn run_once(&self) -> anyhow::Result<u64> {
        super::on_every_shard(&self.shards, |shard| self.run_on(shard)).await
    }

    /// Expires every hold due now on `shard`; returns how many expired.
    pub async fn run_on(&self, shard: &Shard) -> anyhow::Result<u64> {
        let mut expired = 0;
        loop {
            let batch = self
                .booker
                .expire_due(shard, self.clock.now(), BATCH)
                .await?;
            expired += batch as u64;
            metrics::counter!(HOLDS_EXPIRED).increment(batch as u64);
            if batch < usize::from(BATCH) {
                return Ok(expired);
            }
        }
    }
}
