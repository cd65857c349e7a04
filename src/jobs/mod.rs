//! Background jobs that keep the cache honest and Postgres small, and tell other systems
//! what happened: the reconciler, the hold sweeper, the archiver and the webhook job. Each is a `run_once` step that tests drive one at a time,
//! looped by [`run_until_stopped`] at its configured interval.
//!
//! However many instances serve, each job runs once per shard: on the instance holding
//! its lease in that shard's Postgres (`job_leases`), which it renews at every step. Each
//! shard's jobs loop on their own, so a shard out of reach delays only its own. A lease lasts two intervals
//! plus [`LEASE_GRACE`], so an instance that dies or freezes hands a job over within three
//! of its intervals plus the grace: the lease lapses, and another instance takes it at its
//! next step. An instance that stops cleanly gives its leases up at once.
//!
//! The lease saves work; safety does not rest on it. A step that outlasts its lease, or a
//! frozen holder that wakes after losing it, can run beside the new holder's step, and
//! each job is correct when two of its steps overlap: reconcile passes never erase a
//! deduction in flight whoever runs them (see `reconciler`), the sweeper expires only
//! holds Postgres still finds due and withdraws the give-backs of those it lost, and the
//! archiver moves each row in the statement that deletes it.

pub mod archiver;
pub mod reconciler;
pub mod sweeper;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use uuid::Uuid;

use crate::store::{leases, Shard, Shards};
use crate::telemetry::metrics::RECONCILER_INTERVAL;

pub use archiver::Archiver;
pub use reconciler::{ReconcileReport, ReconcileSchedule, Reconciler};
pub use sweeper::Sweeper;
pub use webhooks::Deliverer;

/// How much later than its interval a holder's renewal may come before its lease lapses.
pub const LEASE_GRACE: Duration = Duration::from_secs(5);

/// The jobs of one process.
#[derive(Clone)]
pub struct Jobs {
    pub reconciler: Reconciler,
    pub sweeper: Sweeper,
    pub archiver: Archiver,
    pub webhooks: Deliverer,
    pub leases: Leases,
}

/// This instance's claim on the jobs' leases, on every shard.
#[derive(Clone)]
pub struct Leases {
    shards: Shards,
    holder: Arc<str>,
}

impl Leases {
    /// A holder name unique to this process, and telling an operator which one it is.
    pub fn new(shards: Shards) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "unknown host".into());
        Self {
            shards,
            holder: format!(
                "pid {} on {host} ({})",
                std::process::id(),
                Uuid::new_v4().simple()
            )
            .into(),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Renews or takes the lease of `job` on `shard`, run every `period`.
    async fn claim(&self, shard: &Shard, job: &str, period: Duration) -> anyhow::Result<bool> {
        leases::claim(&shard.pool, job, &self.holder, period * 2 + LEASE_GRACE).await
    }

    /// Gives every lease of this instance up, on every shard at once, for others to take
    /// at their next step.
    pub async fn release(&self) -> anyhow::Result<()> {
        let released = join_all(
            self.shards
                .all()
                .iter()
                .map(|shard| leases::release_all(&shard.pool, &self.holder)),
        )
        .await;
        released.into_iter().collect()
    }
}

/// `step` on every shard at once, each answer added up: a shard out of reach fails the
/// whole (after the others are done) without holding them up. What `run_once` of each
/// job does, for tests, `innkeeper reconcile` and the admin pass.
async fn on_every_shard<'a, R, Fut>(
    shards: &'a Shards,
    step: impl Fn(&'a Shard) -> Fut,
) -> anyhow::Result<R>
where
    R: std::iter::Sum,
    Fut: Future<Output = anyhow::Result<R>>,
{
    join_all(shards.all().iter().map(step))
        .await
        .into_iter()
        .sum()
}

/// How often each job steps; zero turns one off.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub reconcile: Duration,
    pub sweep: Duration,
    pub archive: Duration,
    pub webhooks: Duration,
}

/// Runs every job on every shard at its interval until the returned future is dropped; it
/// never completes on its own, even with every job off, so a caller may `select!` on it
/// beside the server. A zero interval turns a job off. A failed step is logged and retried
/// at the next tick: the jobs repair drift, so skipping one round only delays a repair.
pub async fn run_until_stopped(jobs: Jobs, intervals: Intervals) {
    let Intervals {
        reconcile,
        sweep,
        archive,
        webhooks,
    } = intervals;
    metrics::gauge!(RECONCILER_INTERVAL).set(reconcile.as_secs_f64());
    let leases = &jobs.leases;
    let on_shard = |shard: &Shard| {
        let (reconciler, sweeper, archiver, deliverer) = (
            &jobs.reconciler,
            &jobs.sweeper,
            &jobs.archiver,
            &jobs.webhooks,
        );
        let shard = shard.clone();
        async move {
            tokio::join!(
                every(leases, &shard, reconcile, "reconciler", || async {
                    reconciler.pass_on(&shard).await.map(|_| ())
                }),
                every(leases, &shard, sweep, "hold sweeper", || async {
                    sweeper.run_on(&shard).await.map(|_| ())
                }),
                every(leases, &shard, archive, "archiver", || async {
                    archiver.run_on(&shard).await.map(|_| ())
                }),
                every(leases, &shard, webhooks, "webhooks", || async {
                    deliverer.run_on(&shard).await.map(|_| ())
                }),
            );
        }
    };
    join_all(leases.shards.all().iter().map(on_shard)).await;
    std::future::pending().await
}

/// Runs `step` every `period` while this instance holds the job's lease on `shard`.
async fn every<F, Fut>(
    leases: &Leases,
    shard: &Shard,
    period: Duration,
    name: &'static str,
    step: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if period.is_zero() {
        return std::future::pending().await;
    }
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held = false;
    loop {
        ticks.tick().await;
        // A frozen shard never answers: give up by the grace, and try again next tick.
        let claim = tokio::time::timeout(LEASE_GRACE, leases.claim(shard, name, period));
        let holds = match claim
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
        {
            Ok(holds) => holds,
            Err(error) => {
                tracing::warn!(
                    job = name,
                    shard = shard.index + 1,
                    error = format!("{error:#}"),
                    "could not claim the job's lease"
                );
                false
            }
        };
        if holds != held {
            tracing::info!(
                job = name,
                shard = shard.index + 1,
                holder = leases.holder(),
                holds,
                "job lease changed hands"
            );
            held = holds;
        }
        if !holds {
            continue;
        }
        // A step cut short by its deadline (a frozen shard) is repeated at a later tick;
        // past its lease another instance may be running it anyway.
        let deadline = period * 2 + LEASE_GRACE;
        let outcome = tokio::time::timeout(deadline, step())
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {deadline:?}")));
        if let Err(error) = outcome {
            tracing::warn!(
                job = name,
                shard = shard.index + 1,
                error = format!("{error:#}"),
                "background job step failed"
            );
        }
    }
}
