//! PostgreSQL split by hotel: the catalog database, the shard databases, and which one
//! holds what.
//!
//! A hotel lives on one shard, chosen by its *logical shard*: a fixed hash of its id onto
//! [`LOGICAL_SHARDS`] slots, which the catalog's `shard_map` assigns to databases. A
//! database is added by moving whole logical shards to it (SCALING.md says how); nothing
//! else ever moves a hotel. A reservation id's entry in the id directory lives on the
//! shard its own hash picks, its *home* (see `claims`).
//!
//! Without `INNKEEPER_SHARD_URLS` the catalog is the only shard, and everything here
//! collapses to the one pool innkeeper always had.

use std::sync::Arc;

use anyhow::Context;
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::{connect, migrate};
use crate::config::{Config, Secret};

/// How many logical shards hotels and reservation ids are hashed onto: far more than there
/// will be databases, so that load moves between databases in small pieces.
pub const LOGICAL_SHARDS: usize = 256;

/// One shard database: its place in `INNKEEPER_SHARD_URLS`, and its pool.
#[derive(Clone)]
pub struct Shard {
    pub index: usize,
    pub pool: Pool,
}

/// The catalog and every shard.
#[derive(Clone)]
pub struct Shards {
    catalog: Pool,
    shards: Arc<[Shard]>,
    /// Logical shard → index into `shards`.
    map: Arc<[u16; LOGICAL_SHARDS]>,
}

impl Shards {
    /// Connects to the catalog and every shard, migrates each, and reads the shard map,
    /// filling it on the first start. A shard list that disagrees with the deployment
    /// (reordered, shorter, another database at a known place, a database listed twice,
    /// hotels where none are expected) is refused before anything is recorded.
    pub async fn open(
        catalog_url: &Secret,
        shard_urls: Option<&Secret>,
        config: &Config,
    ) -> anyhow::Result<Self> {
        let catalog = connect(catalog_url.expose(), config)?;
        migrate(&catalog).await.context("migrating the catalog")?;
        let shards: Vec<Shard> = match shard_urls {
            None => vec![Shard {
                index: 0,
                pool: catalog.clone(),
            }],
            Some(urls) => urls
                .urls()
                .into_iter()
                .enumerate()
                .map(|(index, url)| {
                    let pool = connect(url, config)
                        .with_context(|| format!("INNKEEPER_SHARD_URLS entry {}", index + 1))?;
                    Ok(Shard { index, pool })
                })
                .collect::<anyhow::Result<_>>()?,
        };
        // Everything is checked before anything is recorded: a refused start leaves
        // the databases as they were.
        let mut identities: Vec<Identity> = Vec::new();
        for shard in &shards {
            let place = shard.index + 1;
            if shard_urls.is_some() {
                migrate(&shard.pool)
                    .await
                    .with_context(|| format!("migrating shard {place}"))?;
            }
            let identity = identify(&shard.pool)
                .await
                .with_context(|| format!("reading shard {place}'s identity"))?;
            if let Some(earlier) = identities
                .iter()
                .position(|other| other.database_id == identity.database_id)
            {
                anyhow::bail!(
                    "INNKEEPER_SHARD_URLS entries {} and {place} are the same database",
                    earlier + 1
                );
            }
            identities.push(identity);
        }
        let catalog_identity = identify(&catalog)
            .await
            .context("reading the catalog's identity")?;
        let listed: Vec<Uuid> = identities
            .iter()
            .map(|identity| identity.database_id)
            .collect();
        let places = read_places(&catalog).await?;
        check_places(&places, &listed, catalog_identity.database_id)?;
        let map = read_map(&catalog).await?;
        if let Some(beyond) = map
            .iter()
            .flatten()
            .find(|shard| usize::from(**shard) >= shards.len())
        {
            anyhow::bail!(
                "the shard map assigns hotels to shard {} but INNKEEPER_SHARD_URLS lists {}",
                beyond + 1,
                shards.len()
            );
        }
        // A database not served before must not hold hotels (they would be found nowhere),
        // unless it is the one database of a deployment that ran before shards existed:
        // the catalog, first in the list, before any place or map was recorded.
        let first_start = places.is_empty() && map.iter().all(Option::is_none);
        let mut holding = None;
        for shard in &shards[places.len()..] {
            if holds_hotels(&shard.pool).await? {
                let the_old_catalog =
                    first_start && shard.index == 0 && listed[0] == catalog_identity.database_id;
                anyhow::ensure!(
                    the_old_catalog,
                    "the database at INNKEEPER_SHARD_URLS entry {} already holds hotels but was \
                     never served at that place",
                    shard.index + 1
                );
                holding = Some(shard.index);
            }
        }
        if !listed.contains(&catalog_identity.database_id) && holds_hotels(&catalog).await? {
            anyhow::bail!(
                "the catalog (DATABASE_URL) holds hotels: its URL must be entry 1 of \
                 INNKEEPER_SHARD_URLS"
            );
        }
        record_places(&catalog, &listed[places.len()..], places.len()).await?;
        check_places(
            &read_places(&catalog).await?,
            &listed,
            catalog_identity.database_id,
        )
        .context("another instance started with another INNKEEPER_SHARD_URLS")?;
        let map = if map.iter().all(Option::is_some) {
            map.map(Option::unwrap_or_default)
        } else {
            fill_map(&catalog, shards.len(), holding).await?
        };
        let shards = Self {
            catalog,
            shards: shards.into(),
            map: Arc::new(map),
        };
        if shards.is_split() {
            for (shard, identity) in shards.all().iter().zip(&identities) {
                if !identity.claims_complete {
                    backfill_claims(&shards, shard).await.with_context(|| {
                        format!("filling in the id directory for shard {}", shard.index + 1)
                    })?;
                }
            }
        }
        Ok(shards)
    }

    /// Where hotel ids come from and the shard map lives.
    pub fn catalog(&self) -> &Pool {
        &self.catalog
    }

    /// Every shard, in the order of `INNKEEPER_SHARD_URLS`.
    pub fn all(&self) -> &[Shard] {
        &self.shards
    }

    /// Whether there is more than one shard: only then does a reservation id need the
    /// directory to stay unique.
    pub fn is_split(&self) -> bool {
        self.shards.len() > 1
    }

    /// The shard that holds `hotel_id`.
    pub fn of_hotel(&self, hotel_id: i64) -> &Shard {
        self.at(logical_shard(hotel_id as u64))
    }

    /// The shard that holds `reservation_id`'s entry in the id directory.
    pub fn home_of(&self, reservation_id: Uuid) -> &Shard {
        let (high, low) = reservation_id.as_u64_pair();
        self.at(logical_shard(high ^ low))
    }

    fn at(&self, logical: usize) -> &Shard {
        &self.shards[usize::from(self.map[logical])]
    }
}

/// A stable hash onto the logical shards: splitmix64's finaliser, which spreads
/// consecutive ids (hotel ids come from one sequence) evenly. Never `std`'s hasher, whose
/// output may change between Rust releases and would move every hotel.
pub fn logical_shard(key: u64) -> usize {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % LOGICAL_SHARDS as u64) as usize
}

/// What a database knows of itself (`database_identity`).
struct Identity {
    database_id: Uuid,
    /// Whether every reservation it holds has its entry in the id directory.
    claims_complete: bool,
}

/// This database's identity, made on first use.
async fn identify(pool: &Pool) -> anyhow::Result<Identity> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO database_identity (database_id) VALUES (gen_random_uuid()) \
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT database_id, claims_complete FROM database_identity",
            &[],
        )
        .await?;
    Ok(Identity {
        database_id: row.get(0),
        claims_complete: row.get(1),
    })
}

/// The databases first served at each place, in order (the catalog's `shard_places`).
async fn read_places(catalog: &Pool) -> anyhow::Result<Vec<Uuid>> {
    let rows = catalog
        .get()
        .await?
        .query("SELECT database_id FROM shard_places ORDER BY shard", &[])
        .await
        .context("reading the shard places")?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Refuses a list that disagrees with the places recorded: shorter than them, or with
/// another database at a recorded place.
fn check_places(places: &[Uuid], listed: &[Uuid], catalog: Uuid) -> anyhow::Result<()> {
    anyhow::ensure!(
        places.len() <= listed.len(),
        "this deployment has {} shards, but INNKEEPER_SHARD_URLS lists {}",
        places.len(),
        listed.len()
    );
    for (index, (first, now)) in places.iter().zip(listed).enumerate() {
        if first == now {
            continue;
        }
        let place = index + 1;
        if *first == catalog {
            anyhow::bail!(
                "the catalog (DATABASE_URL) holds the hotels of shard {place}: its URL must \
                 stay entry {place} of INNKEEPER_SHARD_URLS"
            );
        }
        anyhow::bail!(
            "INNKEEPER_SHARD_URLS entry {place} is not the database first served there; the \
             list must keep its order"
        );
    }
    Ok(())
}

/// Records the databases at the places from `first` on. Instances starting together
/// record alike; one with another list finds the places taken (checked after).
async fn record_places(catalog: &Pool, databases: &[Uuid], first: usize) -> anyhow::Result<()> {
    let client = catalog.get().await?;
    for (offset, database_id) in databases.iter().enumerate() {
        let shard = i16::try_from(first + offset).context("too many shards")?;
        client
            .execute(
                "INSERT INTO shard_places (shard, database_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&shard, database_id],
            )
            .await
            .context("recording the shard places")?;
    }
    Ok(())
}

/// Whether a database holds any hotel.
async fn holds_hotels(pool: &Pool) -> anyhow::Result<bool> {
    Ok(pool
        .get()
        .await?
        .query_one("SELECT EXISTS (SELECT 1 FROM hotels)", &[])
        .await?
        .get(0))
}

/// Rows of the id directory written per statement while filling it in.
const BACKFILL_CHUNK: usize = 10_000;

/// Gives every reservation `shard` holds its entry in the id directory, on its id's home
/// shard: what a database that served before the split (the catalog alone) lacks. Done
/// once per database, before serving; every instance must be stopped while a deployment
/// goes from one database to several (SCALING.md), so no booking lands meanwhile without
/// its entry.
async fn backfill_claims(shards: &Shards, shard: &Shard) -> anyhow::Result<()> {
    let client = shard.pool.get().await?;
    let page = client
        .prepare(
            "SELECT reservation_id, hotel_id, created_at FROM reservations \
             WHERE reservation_id > $1 ORDER BY reservation_id LIMIT $2",
        )
        .await?;
    let mut after = Uuid::nil();
    let mut filled = 0;
    loop {
        // A page at a time, by id: each statement stays well inside the statement timeout.
        let rows = client
            .query(&page, &[&after, &(BACKFILL_CHUNK as i64)])
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.get(0);
        let mut by_home: std::collections::HashMap<usize, Vec<&tokio_postgres::Row>> =
            std::collections::HashMap::new();
        for row in &rows {
            by_home
                .entry(shards.home_of(row.get(0)).index)
                .or_default()
                .push(row);
        }
        for (home, entries) in by_home {
            let ids: Vec<Uuid> = entries.iter().map(|row| row.get(0)).collect();
            let hotels: Vec<i64> = entries.iter().map(|row| row.get(1)).collect();
            let created: Vec<chrono::DateTime<chrono::Utc>> =
                entries.iter().map(|row| row.get(2)).collect();
            // Shared: a stored reservation's entry is never taken back.
            shards.shards[home]
                .pool
                .get()
                .await?
                .execute(
                    "INSERT INTO reservation_claims (reservation_id, hotel_id, claimed_at, shared) \
                     SELECT id, hotel, at, true FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) \
                     AS entry(id, hotel, at) ON CONFLICT DO NOTHING",
                    &[&ids, &hotels, &created],
                )
                .await?;
        }
        filled += rows.len();
    }
    client
        .execute("UPDATE database_identity SET claims_complete = true", &[])
        .await?;
    if filled > 0 {
        tracing::info!(
            shard = shard.index + 1,
            reservations = filled,
            "filled in the id directory for reservations made before the split"
        );
    }
    Ok(())
}

/// The catalog's shard map as it stands: `None` for a logical shard not yet assigned.
async fn read_map(catalog: &Pool) -> anyhow::Result<[Option<u16>; LOGICAL_SHARDS]> {
    let rows = catalog
        .get()
        .await?
        .query("SELECT logical_shard, shard FROM shard_map", &[])
        .await
        .context("reading the shard map")?;
    let mut map = [None; LOGICAL_SHARDS];
    for row in rows {
        let logical: i16 = row.get(0);
        let shard: i16 = row.get(1);
        map[logical as usize] = Some(shard as u16);
    }
    Ok(map)
}

/// Fills the empty shard map: every logical shard to `holding` (the one database that
/// already held hotels), or round-robin over `shards`. Instances starting together fill it
/// alike (first writer wins, row by row); the map is read back whole.
async fn fill_map(
    catalog: &Pool,
    shards: usize,
    holding: Option<usize>,
) -> anyhow::Result<[u16; LOGICAL_SHARDS]> {
    let (modulus, offset) = match holding {
        Some(shard) => (1, shard as i32),
        None => (shards as i32, 0),
    };
    catalog
        .get()
        .await?
        .execute(
            "INSERT INTO shard_map (logical_shard, shard) \
             SELECT logical, logical % $1 + $2 FROM generate_series(0, 255) AS logical \
             ON CONFLICT DO NOTHING",
            &[&modulus, &offset],
        )
        .await
        .context("filling the shard map")?;
    let map = read_map(catalog).await?;
    let mut filled = [0; LOGICAL_SHARDS];
    for (logical, shard) in map.iter().enumerate() {
        filled[logical] = shard.with_context(|| format!("logical shard {logical} has no shard"))?;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_never_changes() {
        // Hotels are placed by these values: a change would strand every hotel.
        assert_eq!(
            [1, 2, 3, 1000, u64::MAX].map(logical_shard),
            [193, 206, 237, 72, 32]
        );
    }

    #[test]
    fn consecutive_ids_spread_over_every_logical_shard() {
        let mut counts = [0u32; LOGICAL_SHARDS];
        for id in 1..=25_600 {
            counts[logical_shard(id)] += 1;
        }
        // 100 per slot on average; an even spread stays well within half to double.
        assert!(
            counts.iter().all(|count| (50..=200).contains(count)),
            "{counts:?}"
        );
    }
}
