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
    /// filling it round-robin on the first start. A shard list that disagrees with what
    /// the databases remember (reordered, or shorter than the map) is refused.
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
        // A catalog that served as a shard (as it does alone) holds that shard's hotels:
        // leaving it out of the list, or moving it, would hide them.
        let catalog_identity = identify(&catalog)
            .await
            .context("reading the catalog's identity")?;
        if let Some(place) = catalog_identity.shard {
            anyhow::ensure!(
                identities
                    .get(place)
                    .is_some_and(|shard| shard.database_id == catalog_identity.database_id),
                "the catalog (DATABASE_URL) holds the hotels of shard {}: its URL must stay \
                 entry {} of INNKEEPER_SHARD_URLS",
                place + 1,
                place + 1
            );
        }
        for (shard, identity) in shards.iter().zip(&identities) {
            if let Some(first) = identity.shard.filter(|first| *first != shard.index) {
                anyhow::bail!(
                    "the database at INNKEEPER_SHARD_URLS entry {} was first served as \
                     entry {}; the list must keep its order",
                    shard.index + 1,
                    first + 1
                );
            }
        }
        for (shard, identity) in shards.iter().zip(&mut identities) {
            if identity.shard.is_none() {
                *identity = take_place(&shard.pool, shard.index)
                    .await
                    .with_context(|| format!("recording shard {}'s place", shard.index + 1))?;
            }
        }
        let map = read_or_fill_map(&catalog, shards.len()).await?;
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
    /// Its place in `INNKEEPER_SHARD_URLS`, once it has served as a shard.
    shard: Option<usize>,
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
            "SELECT database_id, shard, claims_complete FROM database_identity",
            &[],
        )
        .await?;
    Ok(Identity {
        database_id: row.get(0),
        shard: row.get::<_, Option<i16>>(1).map(|shard| shard as usize),
        claims_complete: row.get(2),
    })
}

/// Records `index` as this database's place if it has none yet (another instance
/// starting at once may have recorded it first); its identity after.
async fn take_place(pool: &Pool, index: usize) -> anyhow::Result<Identity> {
    let index = i16::try_from(index).context("too many shards")?;
    pool.get()
        .await?
        .execute(
            "UPDATE database_identity SET shard = $1 WHERE shard IS NULL",
            &[&index],
        )
        .await?;
    identify(pool).await
}

/// Rows of the id directory written per statement while filling it in.
const BACKFILL_CHUNK: usize = 10_000;

/// Gives every reservation `shard` holds its entry in the id directory, on its id's home
/// shard: what a database that served before the split (the catalog alone) lacks. Done
/// once per database, before serving; every instance must be stopped while a deployment
/// is split (SCALING.md), so no booking lands meanwhile without its entry.
async fn backfill_claims(shards: &Shards, shard: &Shard) -> anyhow::Result<()> {
    let client = shard.pool.get().await?;
    let rows = client
        .query(
            "SELECT reservation_id, hotel_id, created_at FROM reservations",
            &[],
        )
        .await?;
    let mut by_home: std::collections::HashMap<usize, Vec<&tokio_postgres::Row>> =
        std::collections::HashMap::new();
    for row in &rows {
        by_home
            .entry(shards.home_of(row.get(0)).index)
            .or_default()
            .push(row);
    }
    for (home, rows) in by_home {
        let home = shards.shards[home].pool.get().await?;
        for chunk in rows.chunks(BACKFILL_CHUNK) {
            let ids: Vec<Uuid> = chunk.iter().map(|row| row.get(0)).collect();
            let hotels: Vec<i64> = chunk.iter().map(|row| row.get(1)).collect();
            let created: Vec<chrono::DateTime<chrono::Utc>> =
                chunk.iter().map(|row| row.get(2)).collect();
            // Shared: a stored reservation's entry is never taken back.
            home.execute(
                "INSERT INTO reservation_claims (reservation_id, hotel_id, claimed_at, shared) \
                 SELECT id, hotel, at, true FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) \
                 AS entry(id, hotel, at) ON CONFLICT DO NOTHING",
                &[&ids, &hotels, &created],
            )
            .await?;
        }
    }
    client
        .execute("UPDATE database_identity SET claims_complete = true", &[])
        .await?;
    if !rows.is_empty() {
        tracing::info!(
            shard = shard.index + 1,
            reservations = rows.len(),
            "filled in the id directory for reservations made before the split"
        );
    }
    Ok(())
}

/// The catalog's shard map, filled round-robin over `shards` databases if it is empty.
/// Instances starting together fill it alike (first writer wins, row by row).
async fn read_or_fill_map(catalog: &Pool, shards: usize) -> anyhow::Result<[u16; LOGICAL_SHARDS]> {
    let client = catalog.get().await.context("reading the shard map")?;
    client
        .execute(
            "INSERT INTO shard_map (logical_shard, shard) \
             SELECT logical, logical % $1 FROM generate_series(0, 255) AS logical \
             WHERE NOT EXISTS (SELECT 1 FROM shard_map) \
             ON CONFLICT DO NOTHING",
            &[&(shards as i32)],
        )
        .await
        .context("filling the shard map")?;
    let rows = client
        .query("SELECT logical_shard, shard FROM shard_map", &[])
        .await
        .context("reading the shard map")?;
    let mut map = [u16::MAX; LOGICAL_SHARDS];
    for row in rows {
        let logical: i16 = row.get(0);
        let shard: i16 = row.get(1);
        map[logical as usize] = shard as u16;
    }
    if let Some(missing) = map.iter().position(|shard| *shard == u16::MAX) {
        anyhow::bail!("the shard map has no database for logical shard {missing}");
    }
    if let Some(beyond) = map.iter().find(|shard| usize::from(**shard) >= shards) {
        anyhow::bail!(
            "the shard map assigns hotels to shard {} but INNKEEPER_SHARD_URLS lists {shards}",
            beyond + 1
        );
    }
    Ok(map)
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
