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
        for shard in &shards {
            let place = shard.index + 1;
            migrate(&shard.pool)
                .await
                .with_context(|| format!("migrating shard {place}"))?;
            let remembered = claim_place(&shard.pool, shard.index)
                .await
                .with_context(|| format!("reading shard {place}'s identity"))?;
            anyhow::ensure!(
                remembered == shard.index,
                "the database at INNKEEPER_SHARD_URLS entry {place} was first served as entry {}; \
                 the list must keep its order",
                remembered + 1
            );
        }
        let map = read_or_fill_map(&catalog, shards.len()).await?;
        Ok(Self {
            catalog,
            shards: shards.into(),
            map: Arc::new(map),
        })
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

/// The place this database remembers being served at, recording `index` if it has none.
async fn claim_place(pool: &Pool, index: usize) -> anyhow::Result<usize> {
    let client = pool.get().await?;
    let index = i16::try_from(index).context("too many shards")?;
    client
        .execute(
            "INSERT INTO shard_identity (shard) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&index],
        )
        .await?;
    let remembered: i16 = client
        .query_one("SELECT shard FROM shard_identity", &[])
        .await?
        .get(0);
    Ok(remembered as usize)
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
