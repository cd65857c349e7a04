//! The load: the scenarios themselves, and the loops that send their requests from
//! pre-opened connections and tally the answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Days;
use hyper::Method;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::Barrier;

use crate::client::{Conn, Target};
use crate::stats::{Kind, Row, Tally};

use super::probes::{peak_rss_mib, stored_in, PgCounter};
use super::setup::{booking_body, random_stay, HotStay, Spread};
use super::{Env, GENERATOR};

pub(super) async fn open_connections(target: &Target, count: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        conns.push(Conn::open(target).await?);
    }
    Ok(conns)
}

/// Releases `requests` requests at once over pre-opened connections, each connection
/// sending its next as soon as its last is answered. Returns the tally (with the arrival
/// time of every expected answer) and the seconds from the release to the last answer.
async fn at_once<F>(
    conns: Vec<Conn>,
    requests: u64,
    expected: u16,
    request: F,
) -> anyhow::Result<(Tally, f64)>
where
    F: Fn() -> (Method, &'static str, Option<String>, Option<String>) + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let barrier = Arc::new(Barrier::new(conns.len() + 1));
    let remaining = Arc::new(AtomicU64::new(requests));
    let started = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut workers = Vec::new();
    for mut conn in conns {
        let (barrier, remaining, started) = (barrier.clone(), remaining.clone(), started.clone());
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            barrier.wait().await;
            let t0 = *started.get_or_init(Instant::now);
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let (method, path, token, body) = request();
                match conn.call(method, path, token.as_deref(), body).await {
                    Ok(answer) => {
                        let kind = Kind::of(answer.status, &answer.body, expected);
                        if kind == Kind::Ok {
                            tally.created_at_us.push(t0.elapsed().as_micros() as u64);
                        }
                        tally.record(kind, answer.latency);
                    }
                    Err(_) => tally.record(Kind::Error, Duration::ZERO),
                }
            }
            tally
        }));
    }
    barrier.wait().await;
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await?);
    }
    let elapsed = started.get().map_or(0.0, |t0| t0.elapsed().as_secs_f64());
    Ok((tally, elapsed))
}

/// Runs `request` from `conns` connections until `duration` has passed; each call gets
/// the worker's random generator and answers (path, token, body, expected status).
async fn closed_loop<F>(
    env: &Env,
    conns: usize,
    duration: Duration,
    request: F,
) -> anyhow::Result<(Tally, f64)>
where
    F: Fn(&mut StdRng) -> (Method, String, bool, Option<String>, u16) + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let connections = open_connections(&env.target, conns).await?;
    env.load_began();
    let deadline = Instant::now() + duration;
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for mut conn in connections {
        let (request, guest) = (request.clone(), env.guest.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let (method, path, as_guest, body, expected) = request(&mut rng);
                let token = as_guest.then_some(guest.as_str());
                match conn.call(method, &path, token, body).await {
                    Ok(answer) => tally.record(
                        Kind::of(answer.status, &answer.body, expected),
                        answer.latency,
                    ),
                    Err(_) => tally.record(Kind::Error, Duration::ZERO),
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await?);
    }
    env.load_ended();
    Ok((tally, t0.elapsed().as_secs_f64()))
}

/// The rush and the sold-out phase after it, on one hot room type.
pub async fn rush_and_sold_out(
    env: &Env,
    total_inventory: i64,
    restricted: bool,
    demand_factor: u64,
    rush_conns: usize,
    sold_out_conns: usize,
    sold_out_for: Duration,
) -> anyhow::Result<(Row, Row)> {
    let mut setup = Conn::open(&env.target).await?;
    let stay = Arc::new(
        HotStay::create(&mut setup, env, "Rush Hotel", total_inventory, restricted).await?,
    );
    let capacity = stay.capacity;
    let demand = capacity as u64 * demand_factor;

    // -- The rush: every connection open first, then all attempts released at once.
    let conns = open_connections(&env.target, rush_conns.min(demand as usize)).await?;
    let counter = PgCounter::start(env).await?;
    // The hotel is already taking bookings when the hot dates open: one booking of another
    // room type a moment before the rush (after the counter's settling wait, which outlasts the
    // service's 5 s hotel cache), so the service knows the hotel. Its transactions are
    // counted with the rush's; see BENCHMARKS.md for what a cold start costs.
    stay.warm(&mut setup, env).await?;

    let (guest, hot_stay) = (env.guest.clone(), stay.clone());
    env.load_began();
    let (mut tally, rush_s) = at_once(conns, demand, 201, move || {
        (
            Method::POST,
            "/v1/reservations",
            Some(guest.clone()),
            Some(hot_stay.attempt()),
        )
    })
    .await?;
    env.load_ended();
    let rush_rss = peak_rss_mib(&env.pids);
    let xacts = counter.since(env).await?;

    let most_reserved = stay.sold(&mut setup, env).await?;
    let created = tally.count(Kind::Ok);
    let oversell = stay.oversell(most_reserved, created);
    let sold_out_s = tally.created_at_us.iter().max().copied().unwrap_or(0) as f64 / 1e6;
    let mut extra = BTreeMap::new();
    extra.insert("capacity".into(), capacity as f64);
    extra.insert("created".into(), created as f64);
    extra.insert("reserved_in_postgres".into(), most_reserved as f64);
    extra.insert("rejected".into(), tally.count(Kind::SoldOut) as f64);
    extra.insert("sell_out_s".into(), sold_out_s);
    extra.insert("p50_201_ms".into(), tally.percentile_ms(Kind::Ok, 0.50));
    extra.insert("p99_201_ms".into(), tally.percentile_ms(Kind::Ok, 0.99));
    extra.insert(
        "pg_xacts_per_room_sold".into(),
        if most_reserved > 0 {
            xacts.total as f64 / most_reserved as f64
        } else {
            0.0
        },
    );
    extra.insert("connections".into(), rush_conns.min(demand as usize) as f64);
    xacts.record(env, &mut extra);
    let rush = Row {
        scenario: format!("rush: {demand} attempts at once for {capacity} rooms"),
        mode: env.mode.clone(),
        generator: GENERATOR.into(),
        unit: "attempts answered/s".into(),
        throughput: tally.total() as f64 / rush_s.max(1e-9),
        p50_ms: tally.percentile_ms(Kind::SoldOut, 0.50),
        p99_ms: tally.percentile_ms(Kind::SoldOut, 0.99),
        attempts: tally.total(),
        elapsed_s: rush_s,
        error_rate: tally.count(Kind::Error) as f64 / tally.total().max(1) as f64,
        oversell,
        pg_xacts: xacts.total,
        peak_rss_mib: rush_rss,
        extra,
    };

    // -- Sold out: the same stay, fresh ids, full speed for a fixed time.
    let conns = open_connections(&env.target, sold_out_conns).await?;
    let counter = PgCounter::start(env).await?;
    let deadline = Instant::now() + sold_out_for;
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for mut conn in conns {
        let (guest, stay) = (env.guest.clone(), stay.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let body = stay.attempt();
                match conn
                    .call(Method::POST, "/v1/reservations", Some(&guest), Some(body))
                    .await
                {
                    Ok(answer) => {
                        let kind = Kind::of(answer.status, &answer.body, 201);
                        tally.record(kind, answer.latency)
                    }
                    Err(_) => tally.record(Kind::Error, Duration::ZERO),
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await?);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let xacts = counter.since(env).await?;
    // Anything created now would be past capacity: the rush sold every room.
    let mut sold_out = Row {
        scenario: "sold out: the rush's stay, after it".into(),
        mode: env.mode.clone(),
        generator: GENERATOR.into(),
        unit: "409 sold_out/s".into(),
        throughput: tally.count(Kind::SoldOut) as f64 / elapsed,
        p50_ms: tally.percentile_ms(Kind::SoldOut, 0.50),
        p99_ms: tally.percentile_ms(Kind::SoldOut, 0.99),
        attempts: tally.total(),
        elapsed_s: elapsed,
        error_rate: (tally.count(Kind::Error) + tally.count(Kind::Ok)) as f64
            / tally.total().max(1) as f64,
        oversell: tally.count(Kind::Ok) as i64,
        pg_xacts: xacts.total,
        peak_rss_mib: peak_rss_mib(&env.pids),
        extra: BTreeMap::from([("connections".into(), sold_out_conns as f64)]),
    };
    xacts.record(env, &mut sold_out.extra);
    Ok((rush, sold_out))
}

/// The floor under the rush's latency: the same burst (as many connections, released at
/// once, as many requests) on `GET /healthz`, which touches neither Redis nor Postgres.
/// No booking path can answer the rush faster than this on the same machine.
pub async fn burst_floor(env: &Env, requests: u64, conns: usize) -> anyhow::Result<Row> {
    let conns = open_connections(&env.target, conns.min(requests as usize)).await?;
    let (mut tally, elapsed) = at_once(conns, requests, 200, || {
        (Method::GET, "/healthz", None, None)
    })
    .await?;
    Ok(Row {
        scenario: format!("floor: the rush's burst of {requests} on GET /healthz"),
        mode: env.mode.clone(),
        generator: GENERATOR.into(),
        unit: "200 answered/s".into(),
        throughput: tally.count(Kind::Ok) as f64 / elapsed.max(1e-9),
        p50_ms: tally.percentile_ms(Kind::Ok, 0.50),
        p99_ms: tally.percentile_ms(Kind::Ok, 0.99),
        attempts: tally.total(),
        elapsed_s: elapsed,
        error_rate: tally.count(Kind::Error) as f64 / tally.total().max(1) as f64,
        oversell: 0,
        pg_xacts: 0,
        peak_rss_mib: peak_rss_mib(&env.pids),
        extra: BTreeMap::from([("connections".into(), tally.total().min(requests) as f64)]),
    })
}

/// Bookings spread across the hotels: the commit path.
pub async fn spread_bookings(
    env: &Env,
    spread: Arc<Spread>,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let counter = PgCounter::start(env).await?;
    let ids = spread.clone();
    let (mut tally, elapsed) = closed_loop(env, conns, duration, move |rng| {
        let (hotel_id, room_type_id, check_in, nights) = random_stay(&ids, rng);
        let body = booking_body(hotel_id, room_type_id, check_in, nights);
        (
            Method::POST,
            "/v1/reservations".into(),
            true,
            Some(body),
            201,
        )
    })
    .await?;
    let xacts = counter.since(env).await?;
    let created = tally.count(Kind::Ok);
    let stored = stored_in(env, &spread).await?;
    // Every 201 must be in Postgres, and no night past its capacity.
    let oversell = (stored.reservations as i64 - created as i64).abs() + stored.nights_over;
    let mut row = Row {
        scenario: format!("spread: bookings across {} hotels", spread.hotels.len()),
        mode: env.mode.clone(),
        generator: GENERATOR.into(),
        unit: "201 created/s".into(),
        throughput: created as f64 / elapsed,
        p50_ms: tally.percentile_ms(Kind::Ok, 0.50),
        p99_ms: tally.percentile_ms(Kind::Ok, 0.99),
        attempts: tally.total(),
        elapsed_s: elapsed,
        error_rate: (tally.total() - created) as f64 / tally.total().max(1) as f64,
        oversell,
        pg_xacts: xacts.total,
        peak_rss_mib: peak_rss_mib(&env.pids),
        extra: BTreeMap::from([
            ("connections".into(), conns as f64),
            ("created".into(), created as f64),
            ("stored".into(), stored.reservations as f64),
        ]),
    };
    xacts.record(env, &mut row.extra);
    Ok(row)
}

/// The floor under the sold-out phase: `GET /healthz`, which reaches neither store, at
/// full speed from as many connections. A rejection costs this much HTTP plus its Redis
/// call, so its rate can approach this one and never pass it.
pub async fn healthz_loop(env: &Env, conns: usize, duration: Duration) -> anyhow::Result<Row> {
    let (mut tally, elapsed) = closed_loop(env, conns, duration, |_| {
        (Method::GET, "/healthz".to_owned(), false, None, 200)
    })
    .await?;
    let ok = tally.count(Kind::Ok);
    Ok(Row {
        scenario: "floor: GET /healthz at full speed".into(),
        mode: env.mode.clone(),
        generator: GENERATOR.into(),
        unit: "200 answered/s".into(),
        throughput: ok as f64 / elapsed,
        p50_ms: tally.percentile_ms(Kind::Ok, 0.50),
        p99_ms: tally.percentile_ms(Kind::Ok, 0.99),
        attempts: tally.total(),
        elapsed_s: elapsed,
        error_rate: (tally.total() - ok) as f64 / tally.total().max(1) as f64,
        oversell: 0,
        pg_xacts: 0,
        peak_rss_mib: peak_rss_mib(&env.pids),
        extra: BTreeMap::from([("connections".into(), conns as f64)]),
    })
}

/// Public availability reads of random hotels.
pub async fn availability_reads(
    env: &Env,
    spread: Arc<Spread>,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    let counter = PgCounter::start(env).await?;
    let ids = spread.clone();
    let (mut tally, elapsed) = closed_loop(env, conns, duration, move |rng| {
        let (hotel_id, _, check_in, nights) = random_stay(&ids, rng);
        let path = format!(
            "/v1/hotels/{hotel_id}/availability?check_in={check_in}&check_out={}&rooms=1",
            check_in + Days::new(nights)
        );
        (Method::GET, path, false, None, 200)
    })
    .await?;
    let xacts = counter.since(env).await?;
    let ok = tally.count(Kind::Ok);
    let mut row = Row {
        scenario: "availability: reads across the hotels".into(),
        mode: env.mode.clone(),
        generator: GENERATOR.into(),
        unit: "200 reads/s".into(),
        throughput: ok as f64 / elapsed,
        p50_ms: tally.percentile_ms(Kind::Ok, 0.50),
        p99_ms: tally.percentile_ms(Kind::Ok, 0.99),
        attempts: tally.total(),
        elapsed_s: elapsed,
        error_rate: (tally.total() - ok) as f64 / tally.total().max(1) as f64,
        oversell: 0,
        pg_xacts: xacts.total,
        peak_rss_mib: peak_rss_mib(&env.pids),
        extra: BTreeMap::from([("connections".into(), conns as f64)]),
    };
    xacts.record(env, &mut row.extra);
    Ok(row)
}
