//! Job leases (migration V7): which instance runs each background job.

use std::time::Duration;

use deadpool_postgres::Pool;

/// Claims `job` for `holder` until `lease` from now, by the database's clock: renews it when
/// `holder` has it, takes it when it has lapsed. Returns whether `holder` now has it.
pub async fn claim(db: &Pool, job: &str, holder: &str, lease: Duration) -> anyhow::Result<bool> {
    let client = db.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO job_leases (job, holder, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3)) \
             ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE job_leases.holder = EXCLUDED.holder OR job_leases.expires_at < now() \
             RETURNING holder",
        )
        .await?;
    let claimed = client
        .query_opt(&statement, &[&job, &holder, &lease.as_secs_f64()])
        .await?;
    Ok(claimed.is_some())
}

/// Gives up `holder`'s leases, so that another instance takes the jobs at its next step
/// rather than once they lapse.
pub async fn release_all(db: &Pool, holder: &str) -> anyhow::Result<()> {
    let client = db.get().await?;
    client
        .execute("DELETE FROM job_leases WHERE holder = $1", &[&holder])
        .await?;
    Ok(())
}
