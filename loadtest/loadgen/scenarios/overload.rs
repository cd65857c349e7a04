//! The overload scenario: the rush at ten times its demand, arriving open loop at a rate
//! well past what the service can answer, so that a queue must form somewhere. Run once
//! with admission control on and once with it off, it shows where that queue goes: into
//! every answer's latency, or into quick 503 `overloaded` answers.
//!
//! Open loop means arrivals keep their schedule whatever the service does: each attempt's
//! latency runs from when it was due, not from when a connection was free to send it, so
//! a slow service is not flattered by the generator waiting for it (no coordinated
//! omission). Attempts go out over a pool of pre-opened connections larger than the
//! service's in-flight limit; an attempt due while every connection is busy waits for
//! one, and that wait counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::Conn;
use crate::stats::{contains, nearest_rank_ms, Row};

use super::drivers::open_connections;
use super::probes::peak_rss_mib;
use super::setup::HotStay;
use super::Env;

/// What the open-loop generator is asked to do.
pub struct Arrivals {
    /// Booking attempts, all for the same hot stay.
    pub attempts: u64,
    /// Attempts a second, on a fixed schedule.
    pub rate: f64,
    /// Connections opened beforehand.
    pub connections: usize,
}

pub const OPEN_LOOP: &str = "loadgen (Rust, hyper HTTP/1.1, open loop)";

pub async fn overload(env: &Env, total_inventory: i64, arrivals: &Arrivals) -> anyhow::Result<Row> {
    let mut setup = Conn::open(&env.target).await?;
    let stay =
        Arc::new(HotStay::create(&mut setup, env, "Overload Hotel", total_inventory, false).await?);
    // As in the rush: the service already knows the hotel when the hot dates open.
    stay.warm(&mut setup, env).await?;

    let pool = Arc::new(Mutex::new(
        open_connections(&env.target, arrivals.connections).await?,
    ));
    let free = Arc::new(Semaphore::new(arrivals.connections));
    let mut answers = JoinSet::new();
    let t0 = Instant::now();
    for n in 0..arrivals.attempts {
        let due = t0 + Duration::from_secs_f64(n as f64 / arrivals.rate);
        tokio::time::sleep_until(due.into()).await;
        let (pool, free, guest, stay) =
            (pool.clone(), free.clone(), env.guest.clone(), stay.clone());
        answers.spawn(async move {
            let _permit = free
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let mut conn = pool.lock().expect("pool").pop().expect("a free connection");
            let status = match conn
                .call(
                    Method::POST,
                    "/v1/reservations",
                    Some(&guest),
                    Some(stay.attempt()),
                )
                .await
            {
                Ok(answer) => status_label(answer.status, &answer.body),
                Err(_) => "connection error",
            };
            pool.lock().expect("pool").push(conn);
            (status, due.elapsed())
        });
    }
    let offered_s = t0.elapsed().as_secs_f64();
    let mut statuses: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(arrivals.attempts as usize);
    while let Some(answer) = answers.join_next().await {
        let (status, latency) = answer?;
        *statuses.entry(status).or_default() += 1;
        latencies.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }
    let elapsed = t0.elapsed().as_secs_f64();

    let sold = stay.sold(&mut setup, env).await?;
    let created = statuses.get("201").copied().unwrap_or(0);
    let attempts = latencies.len() as u64;
    let mut extra = BTreeMap::from([
        ("capacity".to_owned(), stay.capacity as f64),
        ("sold".to_owned(), sold as f64),
        (
            "offered_rate".to_owned(),
            attempts as f64 / offered_s.max(1e-9),
        ),
        ("connections".to_owned(), arrivals.connections as f64),
    ]);
    for (status, count) in &statuses {
        extra.insert(
            format!("share {status}"),
            *count as f64 / attempts.max(1) as f64,
        );
    }
    let expected = ["201", "409 sold_out", "503 overloaded"];
    let unexpected: u64 = statuses
        .iter()
        .filter(|(status, _)| !expected.contains(status))
        .map(|(_, count)| count)
        .sum();
    Ok(Row {
        scenario: format!(
            "overload: {} attempts at {:.0}/s for {} rooms",
            arrivals.attempts, arrivals.rate, stay.capacity
        ),
        mode: env.mode.clone(),
        generator: OPEN_LOOP.into(),
        unit: "attempts answered/s".into(),
        throughput: attempts as f64 / elapsed.max(1e-9),
        p50_ms: nearest_rank_ms(&mut latencies, 0.50),
        p99_ms: nearest_rank_ms(&mut latencies, 0.99),
        attempts,
        elapsed_s: elapsed,
        error_rate: unexpected as f64 / attempts.max(1) as f64,
        oversell: stay.oversell(sold, created),
        pg_xacts: 0,
        peak_rss_mib: peak_rss_mib(&env.pids),
        extra,
    })
}

/// How an answer is reported: its status, with the problem code where the share of one
/// code matters.
fn status_label(status: u16, body: &[u8]) -> &'static str {
    let has = |code: &[u8]| contains(body, code);
    match status {
        201 => "201",
        409 if has(b"\"sold_out\"") => "409 sold_out",
        503 if has(b"\"overloaded\"") => "503 overloaded",
        409 => "409 other",
        503 => "503 other",
        400..=499 => "4xx other",
        500..=599 => "5xx other",
        _ => "other",
    }
}
