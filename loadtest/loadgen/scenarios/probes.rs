//! What the service did, read beside it: Postgres transactions, stored reservations and
//! nights sold past capacity, its peak memory.

use anyhow::Context;

use super::setup::Spread;
use super::Env;

/// Transactions started in the service's database so far (commits and rollbacks).
/// Read on a connection of its own, with one simple query: that read is one transaction
/// of its own, which [`PgCounter::since`] takes off.
pub(super) async fn pg_xacts(database_url: &str) -> anyhow::Result<u64> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting to the service's database for pg_stat_database")?;
    let task = tokio::spawn(connection);
    let rows = client
        .simple_query(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database \
             WHERE datname = current_database()",
        )
        .await?;
    drop(client);
    let _ = task.await;
    rows.iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .context("pg_stat_database has no row for this database")?
        .parse()
        .context("xact count")
}

pub(super) struct PgCounter {
    before: u64,
}

impl PgCounter {
    pub(super) async fn start(env: &Env) -> anyhow::Result<Self> {
        tokio::time::sleep(env.settle).await;
        Ok(Self {
            before: pg_xacts(&env.database_url).await?,
        })
    }

    pub(super) async fn since(self, env: &Env) -> anyhow::Result<u64> {
        tokio::time::sleep(env.settle).await;
        let after = pg_xacts(&env.database_url).await?;
        // The `before` read was itself one transaction.
        Ok(after.saturating_sub(self.before).saturating_sub(1))
    }
}

/// The service's peak resident set so far (VmHWM), in MiB.
pub(super) fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

pub(super) struct Stored {
    pub(super) reservations: u64,
    pub(super) nights_over: i64,
}

/// Reservations Postgres holds for the spread hotels, and nights sold past capacity.
pub(super) async fn stored_in(env: &Env, spread: &Spread) -> anyhow::Result<Stored> {
    let (client, connection) =
        tokio_postgres::connect(&env.database_url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    let hotel_ids: Vec<i64> = spread.hotels.iter().map(|(h, _)| *h).collect();
    let reservations: i64 = client
        .query_one(
            "SELECT count(*) FROM reservations WHERE hotel_id = ANY($1)",
            &[&hotel_ids],
        )
        .await?
        .get(0);
    let nights_over: i64 = client
        .query_one(
            "SELECT coalesce(sum(total_reserved - capacity), 0)::bigint \
             FROM room_type_inventory WHERE total_reserved > capacity",
            &[],
        )
        .await?
        .get(0);
    drop(client);
    let _ = task.await;
    Ok(Stored {
        reservations: reservations as u64,
        nights_over,
    })
}
