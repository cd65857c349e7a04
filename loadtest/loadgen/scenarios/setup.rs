//! What a scenario books against: hotels, room types and their nights.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use chrono::{Days, NaiveDate, Utc};
use hyper::Method;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use crate::client::Conn;

use super::Env;

/// A night of the hot stay: a month ahead, so it is inside every booking horizon.
pub(super) fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub(super) fn day(offset: u64) -> NaiveDate {
    today() + Days::new(offset)
}

/// POST a hotel (timezone UTC) with one room type per name; returns the ids.
pub(super) async fn create_hotel(
    conn: &mut Conn,
    env: &Env,
    name: &str,
    ratio: f64,
    room_types: &[&str],
) -> anyhow::Result<(i64, Vec<i64>)> {
    let token = Some(env.staff.as_str());
    let hotel = conn
        .expect(
            Method::POST,
            "/v1/hotels",
            token,
            Some(
                json!({"name": name, "address": "1 Bench Road", "city": "Benchton",
                       "country": "PT", "timezone": "UTC", "currency": "EUR",
                       "overbooking_ratio": ratio})
                .to_string(),
            ),
            201,
        )
        .await?;
    let hotel_id = hotel["id"].as_i64().context("a hotel without an id")?;
    let mut ids = Vec::new();
    for room_type in room_types {
        let created = conn
            .expect(
                Method::POST,
                &format!("/v1/hotels/{hotel_id}/room-types"),
                token,
                Some(json!({"name": room_type, "max_occupancy": 2}).to_string()),
                201,
            )
            .await?;
        ids.push(
            created["id"]
                .as_i64()
                .context("a room type without an id")?,
        );
    }
    Ok((hotel_id, ids))
}

pub(super) async fn put_inventory(
    conn: &mut Conn,
    env: &Env,
    hotel_id: i64,
    room_type_id: i64,
    from: NaiveDate,
    to: NaiveDate,
    total: i64,
) -> anyhow::Result<serde_json::Value> {
    conn.expect(
        Method::PUT,
        &format!("/v1/hotels/{hotel_id}/room-types/{room_type_id}/inventory"),
        Some(&env.staff),
        Some(
            json!({"from": from, "to": to, "total_inventory": total, "rate_cents": 12000})
                .to_string(),
        ),
        200,
    )
    .await
}

pub(super) fn booking_body(
    hotel_id: i64,
    room_type_id: i64,
    check_in: NaiveDate,
    nights: u64,
) -> String {
    format!(
        r#"{{"reservation_id":"{}","hotel_id":{hotel_id},"room_type_id":{room_type_id},"check_in":"{check_in}","check_out":"{}","rooms":1}}"#,
        Uuid::new_v4(),
        check_in + Days::new(nights)
    )
}

/// The rooms a hot room type of `total_inventory` may sell, as API.md defines them:
/// floor(total * ratio), at the rush hotels' ratio of 1.10.
pub fn sellable(total_inventory: i64) -> i64 {
    total_inventory * 110 / 100
}

/// The rush's hotel: a hot room type whose stay everyone wants, and another room type
/// that keeps the hotel known to the service before the hot dates open.
pub(super) struct HotStay {
    pub hotel_id: i64,
    pub hot: i64,
    pub other: i64,
    pub check_in: NaiveDate,
    pub check_out: NaiveDate,
    /// Sellable rooms: [`sellable`] of its total.
    pub capacity: i64,
}

impl HotStay {
    /// `restricted`: every night of the hot stay, and its check-out date, carry stay
    /// restrictions that the stay meets (minimum 2 nights, maximum 7, open to arrival and
    /// departure), so reserve.lua judges each attempt on them before its capacity.
    pub(super) async fn create(
        conn: &mut Conn,
        env: &Env,
        name: &str,
        total_inventory: i64,
        restricted: bool,
    ) -> anyhow::Result<Self> {
        let (hotel_id, room_types) = create_hotel(
            conn,
            env,
            &format!("{name} ({})", env.mode),
            1.10,
            &["Hot double", "Other room"],
        )
        .await?;
        let (hot, other) = (room_types[0], room_types[1]);
        let (check_in, check_out) = (day(30), day(32));
        put_inventory(
            conn,
            env,
            hotel_id,
            hot,
            check_in,
            check_out,
            total_inventory,
        )
        .await?;
        put_inventory(conn, env, hotel_id, other, check_in, check_out, 10).await?;
        if restricted {
            conn.expect(
                Method::PUT,
                &format!("/v1/hotels/{hotel_id}/room-types/{hot}/restrictions"),
                Some(&env.staff),
                Some(
                    json!({"from": check_in, "to": day(33), "min_stay": 2, "max_stay": 7,
                           "closed_to_arrival": false, "closed_to_departure": false})
                    .to_string(),
                ),
                200,
            )
            .await?;
        }
        Ok(Self {
            hotel_id,
            hot,
            other,
            check_in,
            check_out,
            capacity: sellable(total_inventory),
        })
    }

    /// One booking of the hot stay, under a fresh id.
    pub(super) fn attempt(&self) -> String {
        booking_body(self.hotel_id, self.hot, self.check_in, 2)
    }

    /// Books the other room type: the service then knows the hotel, as it would a hotel
    /// already taking bookings when its hot dates open.
    pub(super) async fn warm(&self, conn: &mut Conn, env: &Env) -> anyhow::Result<()> {
        conn.expect(
            Method::POST,
            "/v1/reservations",
            Some(&env.guest),
            Some(booking_body(self.hotel_id, self.other, self.check_in, 2)),
            201,
        )
        .await?;
        Ok(())
    }

    /// The most rooms Postgres holds reserved on any night of the hot stay.
    pub(super) async fn sold(&self, conn: &mut Conn, env: &Env) -> anyhow::Result<i64> {
        let (hotel_id, hot, check_in, check_out) =
            (self.hotel_id, self.hot, self.check_in, self.check_out);
        let inventory = conn
            .expect(
                Method::GET,
                &format!(
                    "/v1/hotels/{hotel_id}/room-types/{hot}/inventory?from={check_in}&to={check_out}"
                ),
                Some(&env.staff),
                None,
                200,
            )
            .await?;
        Ok(inventory
            .as_array()
            .context("inventory is not a list")?
            .iter()
            .filter_map(|night| night["total_reserved"].as_i64())
            .max()
            .unwrap_or(0))
    }

    /// Rooms sold past capacity, by Postgres' count or by the acknowledgements.
    pub(super) fn oversell(&self, sold: i64, created: u64) -> i64 {
        (sold - self.capacity)
            .max(created as i64 - self.capacity)
            .max(0)
    }
}

/// The 1,000 hotels of the spread and availability scenarios: one room type each, with
/// more rooms than the bench can sell, on the nights 10..70 days ahead.
pub struct Spread {
    pub(super) hotels: Vec<(i64, i64)>,
}

impl Spread {
    /// Hotels made elsewhere (`loadgen scale` seeds its own): (hotel, room type) pairs
    /// with inventory on the nights the spread books.
    pub fn of(hotels: Vec<(i64, i64)>) -> Self {
        Self { hotels }
    }
}

pub const SPREAD_FIRST_NIGHT: u64 = 10;
pub const SPREAD_NIGHTS: u64 = 60;

pub async fn create_spread(env: &Env, hotels: usize, conns: usize) -> anyhow::Result<Spread> {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..conns.max(1) {
        let next = next.clone();
        let mut conn = Conn::open(&env.target).await?;
        let env = Env {
            target: env.target.clone(),
            staff: env.staff.clone(),
            guest: env.guest.clone(),
            mode: env.mode.clone(),
            database_url: String::new(),
            shard_urls: Vec::new(),
            pids: env.pids.clone(),
            settle: env.settle,
            loads: env.loads.clone(),
        };
        workers.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= hotels as u64 {
                    break;
                }
                let (hotel_id, room_types) = create_hotel(
                    &mut conn,
                    &env,
                    &format!("Spread Hotel {i} ({})", env.mode),
                    1.0,
                    &["Double"],
                )
                .await?;
                put_inventory(
                    &mut conn,
                    &env,
                    hotel_id,
                    room_types[0],
                    day(SPREAD_FIRST_NIGHT),
                    day(SPREAD_FIRST_NIGHT + SPREAD_NIGHTS),
                    10_000,
                )
                .await?;
                // On an ordinary day the nights guests book are those they searched a
                // moment before, so Redis holds them (see the README's demand-only Redis):
                // the spread measures that steady state, not every night's first ask.
                conn.expect(
                    Method::POST,
                    &format!("/v1/hotels/{hotel_id}/inventory/warm"),
                    Some(&env.staff),
                    Some(
                        json!({
                            "from": day(SPREAD_FIRST_NIGHT),
                            "to": day(SPREAD_FIRST_NIGHT + SPREAD_NIGHTS),
                        })
                        .to_string(),
                    ),
                    200,
                )
                .await?;
                made.push((hotel_id, room_types[0]));
            }
            anyhow::Ok(made)
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok(Spread { hotels: all })
}

pub(super) fn random_stay(spread: &Spread, rng: &mut StdRng) -> (i64, i64, NaiveDate, u64) {
    let (hotel_id, room_type_id) = spread.hotels[rng.gen_range(0..spread.hotels.len())];
    let nights = rng.gen_range(1..=2);
    let check_in = day(SPREAD_FIRST_NIGHT + rng.gen_range(0..=SPREAD_NIGHTS - nights));
    (hotel_id, room_type_id, check_in, nights)
}
