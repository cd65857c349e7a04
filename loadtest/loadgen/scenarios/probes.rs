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

/// Transactions counted in every database of the service: the catalog's alone, and all of
/// them together (the catalog's included, once).
pub(super) struct Xacts {
    pub(super) total: u64,
    pub(super) catalog: u64,
}

impl Xacts {
    /// Adds what a split service's catalog took to a row's figures, so the report can show
    /// that it stays off the booking path.
    pub(super) fn record(&self, env: &Env, extra: &mut std::collections::BTreeMap<String, f64>) {
        if !env.shard_urls.is_empty() {
            extra.insert("pg_xacts_catalog".into(), self.catalog as f64);
        }
    }
}

/// The catalog, then each shard that is not the catalog.
fn databases(env: &Env) -> Vec<&str> {
    let mut urls = vec![env.database_url.as_str()];
    for shard in &env.shard_urls {
        if !urls.contains(&shard.as_str()) {
            urls.push(shard);
        }
    }
    urls
}

pub(super) struct PgCounter {
    before: Vec<u64>,
}

impl PgCounter {
    pub(super) async fn start(env: &Env) -> anyhow::Result<Self> {
        tokio::time::sleep(env.settle).await;
        let mut before = Vec::new();
        for url in databases(env) {
            before.push(pg_xacts(url).await?);
        }
        Ok(Self { before })
    }

    pub(super) async fn since(self, env: &Env) -> anyhow::Result<Xacts> {
        tokio::time::sleep(env.settle).await;
        let mut counts = Vec::new();
        for (url, before) in databases(env).into_iter().zip(self.before) {
            let after = pg_xacts(url).await?;
            // The `before` read was itself one transaction.
            counts.push(after.saturating_sub(before).saturating_sub(1));
        }
        Ok(Xacts {
            total: counts.iter().sum(),
            catalog: counts[0],
        })
    }
}

/// The service's peak resident set so far (VmHWM), in MiB: every instance's, added up.
pub(super) fn peak_rss_mib(pids: &[u32]) -> f64 {
    pids.iter().map(|pid| peak_rss_of(*pid)).sum()
}

fn peak_rss_of(pid: u32) -> f64 {
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

/// Reservations Postgres holds for the spread hotels, and nights sold past capacity, in
/// every database of the service.
pub(super) async fn stored_in(env: &Env, spread: &Spread) -> anyhow::Result<Stored> {
    let mut stored = Stored {
        reservations: 0,
        nights_over: 0,
    };
    for url in databases(env) {
        let found = stored_in_one(url, spread).await?;
        stored.reservations += found.reservations;
        stored.nights_over += found.nights_over;
    }
    Ok(stored)
}

async fn stored_in_one(database_url: &str, spread: &Spread) -> anyhow::Result<Stored> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
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
