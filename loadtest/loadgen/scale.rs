//! `loadgen scale`: what the reconciler and Redis cost as the inventory on sale grows, at
//! several sizes, on one running innkeeper (redis mode, its background reconciler off) and
//! the PostgreSQL and Redis it uses.
//!
//! At each size the catalog is emptied and seeded straight into PostgreSQL: N hotels of
//! one room type, each with the nights from today on. Then, timed:
//! - warming every night into Redis, as every inventory write did before nights came on
//!   demand, and the Redis memory that takes;
//! - one full pass with every night resident: the pass the reconciler made every 30 s
//!   before the journal, and what `innkeeper reconcile` still does;
//! - one background pass with nothing changed, and one after 1% of the nights changed (3
//!   night stays at random, each a statement of its own as a booking is, applied to
//!   PostgreSQL and Redis alike);
//! - booking p99 through the service with no pass running (before and after the others),
//!   with background passes once a second beside it, and with full passes back to back;
//! - Redis memory after Redis is emptied and guests read availability of a few hundred
//!   hotels, and a full pass then (what the full round costs when Redis holds only what
//!   is in demand).
//!
//! The passes run in this process, through innkeeper's own reconciler on the service's
//! stores, as the job runs in whichever instance holds its lease.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, NaiveDate, Utc};
use hyper::Method;
use innkeeper::app::Backends;
use innkeeper::clock::SystemClock;
use innkeeper::config::Config;
use innkeeper::inventory::keys::KeyLayout;
use innkeeper::inventory::{LoadMode, NightCache, RedisLink};
use innkeeper::jobs::{ReconcileSchedule, Reconciler};
use innkeeper::store::{inventory, Shards};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::client::Conn;
use crate::scenarios::{spread_bookings, Env, Spread};

/// Hotels whose availability guests read in the demand pattern, and reads per hotel.
const READ_HOTELS: usize = 300;
const READS_PER_HOTEL: usize = 4;
/// The reads' stays: 3 nights, arriving within this many days.
const READ_WINDOW_DAYS: u64 = 90;
/// The key prefix of the service (its default).
const PREFIX: &str = "innkeeper:";

/// What one size measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScaleRow {
    pub hotels: usize,
    pub nights_on_sale: u64,
    pub seed_s: f64,
    pub warm_all_s: f64,
    pub memory_all_mb: f64,
    pub keys_all: i64,
    pub full_pass_s: f64,
    pub full_pass_checked: u64,
    pub quiet_pass_s: f64,
    pub quiet_pass_checked: u64,
    pub touched_nights: u64,
    pub touched_pass_s: f64,
    pub touched_pass_checked: u64,
    pub booking_p99_ms: f64,
    pub booking_p99_no_pass_ms: [f64; 2],
    pub booking_p99_during_pass_ms: f64,
    pub passes_during_bookings: u64,
    pub booking_p99_during_full_pass_ms: f64,
    pub full_passes_during_bookings: u64,
    pub nights_read: u64,
    pub memory_read_mb: f64,
    pub keys_read: i64,
    pub demand_full_pass_s: f64,
    pub demand_full_pass_checked: u64,
}

/// The service's stores, and innkeeper's own reconciler and cache on them.
struct Stores {
    shards: Shards,
    cache: NightCache,
    redis: RedisLink,
    reconciler: Reconciler,
}

impl Stores {
    async fn open(database_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        let config = Config::from_vars(
            [
                ("DATABASE_URL", database_url),
                ("REDIS_URL", redis_url),
                (
                    "INNKEEPER_JWT_SECRET",
                    "scale benchmark: signs no token at all",
                ),
                ("INNKEEPER_REDIS_KEY_PREFIX", PREFIX),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        )?;
        let backends = Backends::start(&config)?;
        let shards = backends.shards(&config).await?;
        let redis = RedisLink::open(&backends.redis, 1)?;
        let cache = NightCache::new(
            redis.clone(),
            PREFIX,
            config.in_flight_ttl,
            config.night_idle_ttl,
        );
        // Entries are taken as soon as they are written: the bench times the pass that
        // looks at the changes it just made, not the service's settle time.
        let reconciler = Reconciler::new(
            shards.clone(),
            Some(cache.clone()),
            Arc::new(SystemClock),
            config.limits,
            ReconcileSchedule::of(&config),
        )
        .with_schedule(ReconcileSchedule {
            settle: Duration::ZERO,
            ..ReconcileSchedule::of(&config)
        });
        Ok(Self {
            shards,
            cache,
            redis,
            reconciler,
        })
    }

    /// A connection without innkeeper's statement timeout: seeding ten thousand hotels
    /// takes longer than a booking may.
    async fn db(&self) -> anyhow::Result<deadpool_postgres::Object> {
        let db = self.shards.catalog().get().await?;
        db.batch_execute("SET statement_timeout = 0").await?;
        Ok(db)
    }

    async fn redis(&self) -> anyhow::Result<innkeeper::inventory::link::Connection> {
        Ok(self.redis.connection().await?.handle())
    }

    /// Redis' `used_memory` in MB and its key count.
    async fn memory(&self) -> anyhow::Result<(f64, i64)> {
        let mut redis = self.redis().await?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut redis)
            .await?;
        let used: f64 = info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .context("INFO memory has no used_memory")?
            .trim()
            .parse()?;
        let keys: i64 = redis::cmd("DBSIZE").query_async(&mut redis).await?;
        Ok((used / 1e6, keys))
    }
}

/// Runs every size, writes the rows to `out` and prints their table.
pub async fn run(
    env: &Env,
    redis_url: &str,
    sizes: &[usize],
    nights: u64,
    seconds: u64,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let stores = Stores::open(&env.database_url, redis_url).await?;
    let mut rows = Vec::new();
    for hotels in sizes {
        eprintln!("[scale] {hotels} hotels x {nights} nights");
        rows.push(one_size(env, &stores, *hotels, nights, seconds).await?);
    }
    std::fs::write(out, serde_json::to_string_pretty(&rows)?)?;
    print!("{}", render(&rows));
    Ok(())
}

async fn one_size(
    env: &Env,
    stores: &Stores,
    hotels: usize,
    nights: u64,
    seconds: u64,
) -> anyhow::Result<ScaleRow> {
    let mut rng = StdRng::seed_from_u64(hotels as u64);
    let today = Utc::now().date_naive();
    empty(stores).await?;

    let started = Instant::now();
    let seeded = seed(stores, hotels, today, nights).await?;
    let seed_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    warm_all(stores, &seeded, today, nights).await?;
    let warm_all_s = started.elapsed().as_secs_f64();
    let (memory_all_mb, keys_all) = stores.memory().await?;

    let (full_pass_s, full) = timed(stores.reconciler.run_once()).await?;
    let (quiet_pass_s, quiet) = timed(stores.reconciler.pass_once()).await?;

    let touched_nights = touch(stores, &seeded, &mut rng, today, nights).await?;
    let (touched_pass_s, touched) = timed(stores.reconciler.pass_once()).await?;

    let sample: Vec<(i64, i64)> = seeded.iter().copied().take(1000).collect();
    let spread = Arc::new(Spread::of(sample));
    let quiet_before = spread_bookings(env, spread.clone(), 64, Duration::from_secs(seconds))
        .await?
        .p99_ms;
    // Background passes once a second, thirty times the default rate, each looking at
    // what the bookings changed and at a slice of the full round.
    let background = bookings_beside(env, &spread, seconds, {
        let reconciler = stores.reconciler.clone();
        move || {
            let reconciler = reconciler.clone();
            async move {
                let started = Instant::now();
                let report = reconciler.pass_once().await;
                tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
                report
            }
        }
    })
    .await?;
    let beside_full = bookings_beside(env, &spread, seconds, {
        let reconciler = stores.reconciler.clone();
        move || {
            let reconciler = reconciler.clone();
            async move { reconciler.run_once().await }
        }
    })
    .await?;
    let quiet_after = spread_bookings(env, spread.clone(), 64, Duration::from_secs(seconds))
        .await?
        .p99_ms;

    let mut redis = stores.redis().await?;
    redis::cmd("FLUSHDB").query_async::<()>(&mut redis).await?;
    let nights_read = read_demand(env, &seeded, &mut rng).await?;
    let (memory_read_mb, keys_read) = stores.memory().await?;
    let (demand_full_pass_s, demand) = timed(stores.reconciler.run_once()).await?;

    Ok(ScaleRow {
        hotels,
        nights_on_sale: hotels as u64 * nights,
        seed_s,
        warm_all_s,
        memory_all_mb,
        keys_all,
        full_pass_s,
        full_pass_checked: full.checked,
        quiet_pass_s,
        quiet_pass_checked: quiet.checked,
        touched_nights,
        touched_pass_s,
        touched_pass_checked: touched.checked,
        // The load without passes ran before and after the loads beside them.
        booking_p99_ms: (quiet_before + quiet_after) / 2.0,
        booking_p99_no_pass_ms: [quiet_before, quiet_after],
        booking_p99_during_pass_ms: background.0,
        passes_during_bookings: background.1,
        booking_p99_during_full_pass_ms: beside_full.0,
        full_passes_during_bookings: beside_full.1,
        nights_read,
        memory_read_mb,
        keys_read,
        demand_full_pass_s,
        demand_full_pass_checked: demand.checked,
    })
}

/// Booking p99 of the spread load while `pass` runs back to back beside it, and the passes
/// it made.
async fn bookings_beside<Pass, Fut>(
    env: &Env,
    spread: &Arc<Spread>,
    seconds: u64,
    pass: Pass,
) -> anyhow::Result<(f64, u64)>
where
    Pass: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<innkeeper::jobs::ReconcileReport>> + Send,
{
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut passes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                pass().await?;
                passes += 1;
            }
            anyhow::Ok(passes)
        })
    };
    let during = spread_bookings(env, spread.clone(), 64, Duration::from_secs(seconds)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = looping.await??;
    Ok((during?.p99_ms, passes))
}

async fn timed<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(f64, T)> {
    let started = Instant::now();
    let done = work.await?;
    Ok((started.elapsed().as_secs_f64(), done))
}

/// Empties the catalog, the journal and Redis, and starts the full round over.
async fn empty(stores: &Stores) -> anyhow::Result<()> {
    stores
        .db()
        .await?
        .batch_execute(
            "TRUNCATE hotels, room_types, rooms, room_type_inventory, room_type_restrictions, \
                      reservations, reservations_archive, reservation_claims, night_journal \
             CASCADE; \
             UPDATE reconcile_round SET next_hotel_id = 0",
        )
        .await?;
    // A statement of its own: VACUUM cannot run in the implicit transaction of a batch.
    stores.db().await?.batch_execute("VACUUM ANALYZE").await?;
    let mut redis = stores.redis().await?;
    redis::cmd("FLUSHDB").query_async::<()>(&mut redis).await?;
    Ok(())
}

/// Seeds `hotels` hotels of one room type with 100 rooms on `nights` nights from today,
/// in three statements; the journal entries they make are dropped. Returns (hotel, room
/// type) pairs.
async fn seed(
    stores: &Stores,
    hotels: usize,
    today: NaiveDate,
    nights: u64,
) -> anyhow::Result<Vec<(i64, i64)>> {
    let db = stores.db().await?;
    db.execute(
        "INSERT INTO hotels (hotel_id, name, address, city, country, timezone, currency, \
                             overbooking_ratio_bp) OVERRIDING SYSTEM VALUE \
         SELECT nextval('hotel_ids'), 'Scale ' || g, '1 Scale Street', 'Scaleton', 'PT', \
                'UTC', 'EUR', 10000 \
         FROM generate_series(1, $1::int) g",
        &[&(hotels as i32)],
    )
    .await?;
    db.execute(
        "INSERT INTO room_types (hotel_id, name, max_occupancy) \
         SELECT hotel_id, 'Double', 2 FROM hotels ORDER BY hotel_id",
        &[],
    )
    .await?;
    db.execute(
        "INSERT INTO room_type_inventory \
             (hotel_id, room_type_id, date, total_inventory, capacity, rate_cents) \
         SELECT rt.hotel_id, rt.room_type_id, $1::date + d, 100, 100, 12000 \
         FROM room_types rt, generate_series(0, $2::int - 1) d",
        &[&today, &(nights as i32)],
    )
    .await?;
    db.batch_execute("TRUNCATE night_journal").await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    let rows = db
        .query(
            "SELECT hotel_id, room_type_id FROM room_types ORDER BY hotel_id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Loads every night of every hotel into Redis, eight hotels at a time.
async fn warm_all(
    stores: &Stores,
    seeded: &[(i64, i64)],
    today: NaiveDate,
    nights: u64,
) -> anyhow::Result<()> {
    let to = today + Days::new(nights);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        let db = stores.db().await?;
        loop {
            let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((hotel_id, _)) = seeded.get(index) else {
                return anyhow::Ok(());
            };
            for (room_type_id, stored) in
                inventory::nights_of_hotel(&db, *hotel_id, today, to).await?
            {
                for chunk in stored.chunks(400) {
                    stores
                        .cache
                        .load(*hotel_id, room_type_id, chunk, LoadMode::Absent)
                        .await?;
                }
            }
        }
    };
    futures::future::try_join_all((0..8).map(|_| worker())).await?;
    Ok(())
}

/// Changes 1% of the nights on sale, as bookings do: 3-night stays at random, each one
/// statement in PostgreSQL (which journals it) and the same deduction in Redis. Returns
/// the nights changed.
async fn touch(
    stores: &Stores,
    seeded: &[(i64, i64)],
    rng: &mut StdRng,
    today: NaiveDate,
    nights: u64,
) -> anyhow::Result<u64> {
    let stays = (seeded.len() as u64 * nights / 100 / 3).max(1);
    let picks: Vec<(i64, i64, NaiveDate)> = (0..stays)
        .map(|_| {
            let (hotel_id, room_type_id) = seeded[rng.gen_range(0..seeded.len())];
            (
                hotel_id,
                room_type_id,
                today + Days::new(rng.gen_range(0..nights - 3)),
            )
        })
        .collect();
    let keys = KeyLayout::new(PREFIX);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        let db = stores.db().await?;
        let statement = db
            .prepare(
                "UPDATE room_type_inventory SET total_reserved = total_reserved + 1 \
                 WHERE hotel_id = $1 AND room_type_id = $2 AND date >= $3 AND date < $3 + 3",
            )
            .await?;
        let mut redis = stores.redis().await?;
        loop {
            let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((hotel_id, room_type_id, first)) = picks.get(index) else {
                return anyhow::Ok(());
            };
            db.execute(&statement, &[hotel_id, room_type_id, first])
                .await?;
            let mut pipe = redis::pipe();
            for night in 0..3 {
                pipe.cmd("HINCRBY")
                    .arg(keys.night(*hotel_id, *room_type_id, *first + Days::new(night)))
                    .arg("res")
                    .arg(1)
                    .ignore();
            }
            pipe.query_async::<()>(&mut redis).await?;
        }
    };
    futures::future::try_join_all((0..16).map(|_| worker())).await?;
    Ok(stays * 3)
}

/// Guests read the availability of 3-night stays in a few hundred hotels. Returns the
/// distinct nights asked for.
async fn read_demand(env: &Env, seeded: &[(i64, i64)], rng: &mut StdRng) -> anyhow::Result<u64> {
    let mut conn = Conn::open(&env.target).await?;
    let mut asked = HashSet::new();
    let mut picked: BTreeMap<i64, ()> = BTreeMap::new();
    while picked.len() < READ_HOTELS.min(seeded.len()) {
        picked.insert(seeded[rng.gen_range(0..seeded.len())].0, ());
    }
    for hotel_id in picked.keys() {
        for _ in 0..READS_PER_HOTEL {
            let check_in = Utc::now().date_naive() + Days::new(rng.gen_range(0..READ_WINDOW_DAYS));
            let check_out = check_in + Days::new(3);
            conn.expect(
                Method::GET,
                &format!(
                    "/v1/hotels/{hotel_id}/availability?check_in={check_in}&check_out={check_out}"
                ),
                None,
                None,
                200,
            )
            .await?;
            for night in 0..3 {
                asked.insert((*hotel_id, check_in + Days::new(night)));
            }
        }
    }
    Ok(asked.len() as u64)
}

/// The markdown table of BENCHMARKS.md's scale section.
pub fn render(rows: &[ScaleRow]) -> String {
    let mut out = String::from(
        "| hotels | nights on sale | seed | warm every night | Redis, every night | full pass, every night resident | pass, nothing changed | pass, 1% changed (nights compared) | ÷ full pass | booking p99, no pass (mean of two) | during background passes, 1/s | ÷ | during full passes | ÷ | Redis after reads of 300 hotels (nights read) | full pass, demand-only Redis |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} s | {:.1} s | {:.0} MB ({} keys) | {:.2} s | {:.3} s | {:.3} s ({}) | {:.3} | {:.1} ms | {:.1} ms ({} passes) | {:.2} | {:.1} ms ({} passes) | {:.2} | {:.1} MB, {} keys ({}) | {:.2} s |\n",
            row.hotels,
            row.nights_on_sale,
            row.seed_s,
            row.warm_all_s,
            row.memory_all_mb,
            row.keys_all,
            row.full_pass_s,
            row.quiet_pass_s,
            row.touched_pass_s,
            row.touched_pass_checked,
            row.touched_pass_s / row.full_pass_s.max(1e-9),
            row.booking_p99_ms,
            row.booking_p99_during_pass_ms,
            row.passes_during_bookings,
            row.booking_p99_during_pass_ms / row.booking_p99_ms.max(1e-9),
            row.booking_p99_during_full_pass_ms,
            row.full_passes_during_bookings,
            row.booking_p99_during_full_pass_ms / row.booking_p99_ms.max(1e-9),
            row.memory_read_mb,
            row.keys_read,
            row.nights_read,
            row.demand_full_pass_s,
        ));
    }
    out
}
