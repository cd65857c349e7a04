//! The bench's scenarios, run against one innkeeper process (one inventory mode):
//!
//! 1. **rush**: one hot room type of C sellable rooms; 20 x C booking attempts for the same
//!    stay, released at once from pre-opened connections. Measures how fast it sells out,
//!    the latency of the attempts turned away (409 `sold_out`) while it sells, and the
//!    Postgres transactions it cost.
//! 2. **sold_out**: the same stay, now sold out, at full speed for a fixed time: the
//!    rejection path.
//! 3. **spread**: bookings of 1 room for 1 or 2 nights in a random hotel of 1,000: the
//!    commit path, with no hot rows.
//! 4. **availability**: public availability reads of random hotels of the 1,000.
//! 5. with `--webhook`, a local receiver subscribed to every event hears the rush's and
//!    the spread's bookings: how fast, how late, and how soon the backlog drains.
//! 6. **overload** (its own command, run with admission control on and off): the rush at
//!    ten times its demand, arriving open loop well past capacity.
//!
//! Every loop is bounded by a count or a deadline. Every scenario creates its own hotels.
//!
//! [`setup`] creates the hotels and inventory a scenario needs, [`drivers`] sends the load
//! and tallies the answers, and [`probes`] reads what the service did (Postgres
//! transactions, stored reservations, its memory).

mod drivers;
mod overload;
mod probes;
mod setup;
mod webhooks;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

use crate::client::Target;

pub use drivers::{
    availability_reads, burst_floor, healthz_loop, rush_and_sold_out, spread_bookings,
};
pub use overload::{overload, Arrivals, OPEN_LOOP};
pub use setup::{create_spread, sellable, Spread};
pub use webhooks::Receiver;

/// Everything a scenario needs to reach the service and observe it.
pub struct Env {
    pub target: Target,
    pub staff: String,
    pub guest: String,
    pub mode: String,
    /// The service's database (the catalog), for `pg_stat_database` and the oversell
    /// checks.
    pub database_url: String,
    /// Its shard databases, when PostgreSQL is split (`INNKEEPER_SHARD_URLS`); empty when
    /// the catalog is the only one.
    pub shard_urls: Vec<String>,
    /// The innkeeper processes, for their peak RSS.
    pub pids: Vec<u32>,
    /// How long to wait for idle backends to report their transaction counts:
    /// PostgreSQL 15+ flushes an idle backend's statistics up to 10 s late.
    pub settle: Duration,
    /// When each load of this run began (the wall clock, which events' commit times are
    /// read in) and stopped sending (see [`Env::load_began`]).
    pub loads: Arc<Mutex<Vec<Load>>>,
}

/// One load of a run: when it began, by the wall clock and by this process's, and when it
/// stopped sending, once it has.
pub type Load = (DateTime<Utc>, Instant, Option<Instant>);

impl Env {
    /// Notes that a load begins now. The webhook receiver counts a scenario's bookings
    /// from here (its setup may book too) and its delivery until [`Env::load_ended`]
    /// (its row's timing starts after setup waits).
    pub fn load_began(&self) {
        self.loads
            .lock()
            .unwrap()
            .push((Utc::now(), Instant::now(), None));
    }

    /// Notes that the load begun last stopped sending now.
    pub fn load_ended(&self) {
        if let Some(load) = self.loads.lock().unwrap().last_mut() {
            load.2 = Some(Instant::now());
        }
    }

    /// When the first load begun after `start` began (wall clock) and ended, if it has.
    pub fn load_after(&self, start: Instant) -> Option<(DateTime<Utc>, Instant)> {
        let loads = self.loads.lock().unwrap();
        let (began, _, ended) = loads.iter().find(|(_, at, _)| *at > start)?;
        Some((*began, (*ended)?))
    }
}

pub const GENERATOR: &str = "loadgen (Rust, hyper HTTP/1.1, closed loop)";
