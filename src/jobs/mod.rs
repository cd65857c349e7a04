//! Background jobs that keep the cache honest and Postgres small: the reconciler, the hold
//! sweeper and the archiver. Each is a `run_once` step that tests drive one at a time,
//! looped by [`run_until_stopped`] at its configured interval.

pub mod archiver;
pub mod reconciler;
pub mod sweeper;

use std::future::Future;
use std::time::Duration;

pub use archiver::Archiver;
pub use reconciler::{ReconcileReport, Reconciler};
pub use sweeper::Sweeper;

/// The three jobs of one process.
#[derive(Clone)]
pub struct Jobs {
    pub reconciler: Reconciler,
    pub sweeper: Sweeper,
    pub archiver: Archiver,
}

/// Runs every job at its interval until the returned future is dropped; it never completes
/// on its own, even with every job off, so a caller may `select!` on it beside the server.
/// A zero interval turns a job off. A failed step is logged and retried at the next tick: the jobs repair
/// drift, so skipping one round only delays a repair.
pub async fn run_until_stopped(
    jobs: Jobs,
    reconcile: Duration,
    sweep: Duration,
    archive: Duration,
) {
    let reconciler = jobs.reconciler.clone();
    let sweeper = jobs.sweeper.clone();
    let archiver = jobs.archiver.clone();
    tokio::join!(
        every(reconcile, "reconciler", move || {
            let reconciler = reconciler.clone();
            async move { reconciler.run_once().await.map(|_| ()) }
        }),
        every(sweep, "hold sweeper", move || {
            let sweeper = sweeper.clone();
            async move { sweeper.run_once().await.map(|_| ()) }
        }),
        every(archive, "archiver", move || {
            let archiver = archiver.clone();
            async move { archiver.run_once().await.map(|_| ()) }
        }),
    );
}

async fn every<F, Fut>(period: Duration, name: &'static str, step: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if period.is_zero() {
        return std::future::pending().await;
    }
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = step().await {
            tracing::warn!(
                job = name,
                error = format!("{error:#}"),
                "background job step failed"
            );
        }
    }
}
