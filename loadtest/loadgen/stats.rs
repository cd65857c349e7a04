//! What one scenario measured, kept per response so that latency can be split by outcome
//! (the rush's 409s apart from its 201s), and the row it becomes in the report.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every answer of one worker, or of a whole scenario once merged.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency in microseconds, by outcome.
    latencies: BTreeMap<Kind, Vec<u32>>,
    /// For a burst (see `at_once`): when each expected answer arrived, in microseconds since the release.
    pub created_at_us: Vec<u64>,
}

/// How an answer is counted. `SoldOut` is a 409 whose problem `code` is `sold_out`: an
/// expected outcome, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Ok,
    SoldOut,
    Error,
}

impl Kind {
    pub fn of(status: u16, body: &[u8], expected: u16) -> Self {
        if status == expected {
            Kind::Ok
        } else if status == 409 && contains(body, b"\"sold_out\"") {
            Kind::SoldOut
        } else {
            Kind::Error
        }
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

impl Tally {
    pub fn record(&mut self, kind: Kind, latency: Duration) {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies.entry(kind).or_default().push(micros);
    }

    pub fn merge(&mut self, other: Tally) {
        for (kind, mut latencies) in other.latencies {
            self.latencies
                .entry(kind)
                .or_default()
                .append(&mut latencies);
        }
        self.created_at_us.extend(other.created_at_us);
    }

    pub fn count(&self, kind: Kind) -> u64 {
        self.latencies.get(&kind).map_or(0, |l| l.len() as u64)
    }

    pub fn total(&self) -> u64 {
        self.latencies.values().map(|l| l.len() as u64).sum()
    }

    /// The `q` quantile (0..=1) of the latency of `kind`, in milliseconds; 0 when none.
    pub fn percentile_ms(&mut self, kind: Kind, q: f64) -> f64 {
        self.latencies
            .get_mut(&kind)
            .map_or(0.0, |latencies| nearest_rank_ms(latencies, q))
    }
}

/// The `q` quantile (0..=1) of latencies in microseconds, in milliseconds; 0 when there are
/// none. Nearest rank: the smallest value with at least q of the samples at or below it.
pub fn nearest_rank_ms(latencies: &mut [u32], q: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort_unstable();
    let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
    f64::from(latencies[rank - 1]) / 1000.0
}

/// One line of the report: a scenario in one inventory mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub scenario: String,
    pub mode: String,
    pub generator: String,
    /// What `throughput` counts, e.g. "409 sold_out/s".
    pub unit: String,
    pub throughput: f64,
    /// Latency of the responses `throughput` counts.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub attempts: u64,
    pub elapsed_s: f64,
    /// Answers that were neither the expected status nor 409 `sold_out`, over attempts.
    pub error_rate: f64,
    /// Rooms sold past a night's sellable capacity, or acknowledged bookings missing from
    /// Postgres. Must be 0.
    pub oversell: i64,
    /// Transactions of the service's database started during the scenario
    /// (`pg_stat_database` xact_commit + xact_rollback).
    pub pg_xacts: u64,
    /// The service's peak resident set (VmHWM) at the end of the scenario.
    pub peak_rss_mib: f64,
    /// Scenario-specific figures (the rush's sell-out time, its 201 latency, ...).
    pub extra: BTreeMap<String, f64>,
}

impl Row {
    pub fn pg_xacts_per_attempt(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.pg_xacts as f64 / self.attempts as f64
        }
    }
}
