//! PostgreSQL split by hotel: a catalog and several shard databases
//! (`INNKEEPER_SHARD_URLS`), served by more than one innkeeper instance.
//!
//! What must hold whatever shard holds the data: each hotel lives on the shard the map
//! gives it, a reservation id books once across all shards, every read works through any
//! instance, each job runs once per shard, and a shard that is down fails only its own
//! hotels.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use futures::future::join_all;
use innkeeper::devservices::{Durability, PostgresServer};
use innkeeper::store::shards::logical_shard;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::helpers::{
    assert_problem, children_of, fresh_database, stay, wait_until, Options, TestApp,
};

/// A catalog and its shards, and the Redis key prefix their instances share.
struct Split {
    catalog: String,
    shards: Vec<String>,
    prefix: String,
}

impl Split {
    /// A catalog and `shards` shard databases, all fresh.
    async fn fresh(shards: usize) -> Self {
        let mut urls = Vec::new();
        for _ in 0..shards {
            urls.push(fresh_database().await);
        }
        Self::over(urls).await
    }

    /// A fresh catalog over the given shard databases.
    async fn over(shards: Vec<String>) -> Self {
        Self {
            catalog: fresh_database().await,
            shards,
            prefix: format!("test:{}:", Uuid::new_v4().simple()),
        }
    }

    /// The catalog as the first shard, `added` the second: a deployment that ran alone.
    fn catalog_first(catalog: &str, added: String) -> Self {
        Self {
            catalog: catalog.to_owned(),
            shards: vec![catalog.to_owned(), added],
            prefix: format!("test:{}:", Uuid::new_v4().simple()),
        }
    }

    /// One more innkeeper instance on these databases, with more settings in `env`.
    async fn app(&self, mut env: Vec<(&'static str, String)>) -> TestApp {
        env.push(("INNKEEPER_SHARD_URLS", self.shards.join(",")));
        TestApp::spawn_with(Options {
            database_url: Some(self.catalog.clone()),
            prefix: Some(self.prefix.clone()),
            env,
            ..Options::default()
        })
        .await
    }

    /// The shard a hotel should be on: the catalog's map, filled round-robin.
    fn expected_shard(&self, hotel: i64) -> usize {
        logical_shard(hotel as u64) % self.shards.len()
    }

    /// The shard a reservation id's directory entry should be on.
    fn home_of(&self, id: Uuid) -> usize {
        let (high, low) = id.as_u64_pair();
        logical_shard(high ^ low) % self.shards.len()
    }

    /// The shards whose `table` has a row where `column = value`.
    async fn holders(&self, table: &str, column: &str, value: &ToSqlSync) -> Vec<usize> {
        let mut holders = Vec::new();
        for (index, url) in self.shards.iter().enumerate() {
            let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
            if scalar(url, &sql, &[value]).await > 0 {
                holders.push(index);
            }
        }
        holders
    }

    /// Creates hotels until one lands on each shard; returns one hotel (with a room type
    /// and `total` rooms on the two nights from `first`) per shard, in shard order.
    async fn hotel_per_shard(
        &self,
        app: &TestApp,
        total: i64,
        first: NaiveDate,
    ) -> Vec<(i64, i64)> {
        let mut found: HashMap<usize, (i64, i64)> = HashMap::new();
        while found.len() < self.shards.len() {
            let hotel = app.hotel_with_inventory(1.0, total, first, 2).await;
            found.entry(self.expected_shard(hotel.0)).or_insert(hotel);
        }
        (0..self.shards.len()).map(|shard| found[&shard]).collect()
    }

    /// `total_reserved` of a night, read on the shard that holds the hotel.
    async fn reserved(&self, hotel: (i64, i64), night: NaiveDate) -> i64 {
        let url = &self.shards[self.expected_shard(hotel.0)];
        scalar(
            url,
            "SELECT total_reserved::bigint FROM room_type_inventory \
             WHERE hotel_id = $1 AND room_type_id = $2 AND date = $3",
            &[&hotel.0, &hotel.1, &night],
        )
        .await
    }
}

type ToSqlSync = dyn tokio_postgres::types::ToSql + Sync;

/// One number read from the database at `url`.
async fn scalar(url: &str, sql: &str, params: &[&ToSqlSync]) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to a test database");
    let connection = tokio::spawn(connection);
    let value = client.query_one(sql, params).await.expect(sql).get(0);
    drop(client);
    let _ = connection.await;
    value
}

/// Every item of a paginated list, walked `limit` at a time.
async fn walk(app: &TestApp, path: &str, token: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let (status, page) = app
            .get_as(
                &format!("{path}{separator}limit={limit}&cursor={cursor}"),
                token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= limit);
        items.extend(page_items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return items,
        }
    }
}

/// Three shards behind two instances on a Redis Cluster: hotels land where the map says,
/// a rush on one hotel per shard sells exactly its rooms, and every read, list and cancel
/// works through the instance that did not book.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_hotel_lives_on_its_shard_and_reads_work_through_any_instance() {
    let cluster = Cluster::start().await;
    let split = Split::fresh(3).await;
    let redis = || vec![("INNKEEPER_REDIS_CLUSTER", cluster.seeds())];
    let a = split.app(redis()).await;
    let b = split.app(redis()).await;
    let first = a.night(1);
    let hotels = split.hotel_per_shard(&a, 5, first).await;

    // Each hotel made so far is on exactly its shard, and the catalog holds none.
    let (status, all) = a.get_as("/v1/hotels?limit=200", &a.staff()).await;
    assert_eq!(status, 200, "{all}");
    let all: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hotel| hotel["id"].as_i64().unwrap())
        .collect();
    assert!(
        all.len() >= 3 && all.windows(2).all(|pair| pair[0] < pair[1]),
        "{all:?}"
    );
    for hotel in &all {
        assert_eq!(
            split.holders("hotels", "hotel_id", hotel).await,
            [split.expected_shard(*hotel)],
            "hotel {hotel}"
        );
    }
    assert_eq!(
        scalar(&split.catalog, "SELECT count(*) FROM hotels", &[]).await,
        0
    );
    // Walking the merged list a page at a time visits every hotel once, in id order.
    let walked: Vec<i64> = walk(&b, "/v1/hotels", &b.staff(), 2)
        .await
        .iter()
        .map(|hotel| hotel["id"].as_i64().unwrap())
        .collect();
    assert_eq!(walked, all);

    // A rush on every shard's hotel at once, through both instances.
    let rush = hotels
        .iter()
        .flat_map(|hotel| (0..20).map(move |n| (n, *hotel, Uuid::new_v4())));
    let answers = join_all(rush.map(|(n, hotel, id)| {
        let app = if n % 2 == 0 { &a } else { &b };
        let body = stay(id, hotel.0, hotel.1, first, a.night(3), 1);
        async move { (hotel, id, app.reserve("rusher", &body).await.0) }
    }))
    .await;
    for hotel in &hotels {
        let created: Vec<Uuid> = answers
            .iter()
            .filter(|(at, _, status)| at == hotel && *status == 201)
            .map(|(_, id, _)| *id)
            .collect();
        assert_eq!(created.len(), 5, "{answers:?}");
        for night in [first, a.night(2)] {
            assert_eq!(split.reserved(*hotel, night).await, 5);
            assert_eq!(a.reserved_in_redis(hotel.0, hotel.1, night).await, Some(5));
        }
        for id in created {
            assert_eq!(
                split.holders("reservations", "reservation_id", &id).await,
                [split.expected_shard(hotel.0)]
            );
            assert_eq!(
                split
                    .holders("reservation_claims", "reservation_id", &id)
                    .await,
                [split.home_of(id)]
            );
        }
    }
    assert!(answers
        .iter()
        .all(|(_, _, status)| [201, 409].contains(status)));

    // One guest's stays on every shard: booked through b, read through a.
    let mut booked = Vec::new();
    for (n, hotel) in hotels.iter().enumerate() {
        let id = Uuid::new_v4();
        let body = stay(id, hotel.0, hotel.1, a.night(5), a.night(6), 1);
        let put = b
            .put(
                &format!("/v1/hotels/{}/room-types/{}/inventory", hotel.0, hotel.1),
                &b.staff(),
                &json!({"from": a.night(5), "to": a.night(6), "total_inventory": 1, "rate_cents": 100}),
            )
            .await;
        assert_eq!(put.0, 200, "{}", put.1);
        let (status, created) = b.reserve("traveller", &body).await;
        assert_eq!(status, 201, "{created}");
        booked.push((id, *hotel, created));
        // Distinct creation times, so the newest-first order below is the booking order.
        a.clock
            .advance(chrono::Duration::milliseconds(10 * (n as i64 + 1)));
        b.clock
            .advance(chrono::Duration::milliseconds(10 * (n as i64 + 1)));
    }
    let guest = a.guest("traveller");
    for (id, _, created) in &booked {
        let (status, read) = a.get_as(&format!("/v1/reservations/{id}"), &guest).await;
        assert_eq!((status, &read), (200, created));
        let someone_else = a.guest("someone-else");
        let answer = a
            .get_as(&format!("/v1/reservations/{id}"), &someone_else)
            .await;
        assert_problem(&answer, 404, "not_found");
    }
    let listed: Vec<Value> = walk(&a, "/v1/reservations", &guest, 1).await;
    let newest_first: Vec<&Value> = booked.iter().rev().map(|(_, _, created)| created).collect();
    assert_eq!(listed.iter().collect::<Vec<_>>(), newest_first);
    let (id, hotel, _) = &booked[1];
    let (status, page) = a
        .get_as(
            &format!("/v1/reservations?hotel_id={}", hotel.0),
            &a.staff(),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|item| item["reservation_id"] == id.to_string()));

    // A cancel through the other instance gives the night back on the right shard.
    let (status, canceled) = a
        .post(&format!("/v1/reservations/{id}/cancel"), &guest, &json!({}))
        .await;
    assert_eq!(
        (status, canceled["status"].as_str()),
        (200, Some("canceled"))
    );
    assert_eq!(split.reserved(*hotel, a.night(5)).await, 0);
    assert_eq!(
        a.reserved_in_redis(hotel.0, hotel.1, a.night(5)).await,
        Some(0)
    );
}

/// The same reservation id sent to hotels on two shards is booked once: after, at once,
/// through two instances, in both inventory modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_id_is_booked_once_across_shards() {
    for mode in ["redis", "db"] {
        let split = Split::fresh(2).await;
        let env = || vec![("INNKEEPER_INVENTORY_MODE", mode.to_owned())];
        let a = split.app(env()).await;
        let b = split.app(env()).await;
        let (first, last) = (a.night(1), a.night(3));
        let hotels = split.hotel_per_shard(&a, 100, first).await;
        let (one, two) = (hotels[0], hotels[1]);

        // One after the other: the second hotel's request is a different body.
        let id = Uuid::new_v4();
        let at_one = stay(id, one.0, one.1, first, last, 1);
        assert_eq!(a.reserve("g", &at_one).await.0, 201, "{mode}");
        let answer = b
            .reserve("g", &stay(id, two.0, two.1, first, last, 1))
            .await;
        assert_problem(&answer, 422, "idempotency_conflict");
        assert_eq!(b.reserve("g", &at_one).await.0, 200, "{mode}: a replay");
        assert_eq!(split.reserved(two, first).await, 0, "{mode}");

        // At once, through both instances: one 201 per id, and one reservation.
        let ids: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
        let answers = join_all(ids.iter().map(|id| {
            let (a, b) = (&a, &b);
            async move {
                let (at_one, at_two) = (
                    stay(*id, one.0, one.1, first, last, 1),
                    stay(*id, two.0, two.1, first, last, 1),
                );
                let (left, right) = tokio::join!(a.reserve("g", &at_one), b.reserve("g", &at_two));
                (*id, left, right)
            }
        }))
        .await;
        let mut created = [0, 0];
        for (id, left, right) in &answers {
            let statuses = [left.0, right.0];
            let winners = statuses.iter().filter(|status| **status == 201).count();
            assert_eq!(winners, 1, "{mode}: {left:?} {right:?}");
            let loser = if left.0 == 201 { right } else { left };
            assert!(
                [(422, "idempotency_conflict"), (409, "request_in_progress")]
                    .contains(&(loser.0, loser.1["code"].as_str().unwrap_or_default())),
                "{mode}: {loser:?}"
            );
            let winner = usize::from(left.0 != 201);
            created[winner] += 1;
            assert_eq!(
                split.holders("reservations", "reservation_id", id).await,
                [split.expected_shard(hotels[winner].0)],
                "{mode}"
            );
        }
        assert_eq!(split.reserved(one, first).await, 1 + created[0], "{mode}");
        assert_eq!(split.reserved(two, first).await, created[1], "{mode}");

        // A refusal that stored nothing leaves the id free for another hotel. In the redis
        // mode the refusal must come from Postgres' re-check (Redis alone turns a booking
        // away before it claims anything), so Redis is made to think the night is free.
        let (night, next) = (a.night(10), a.night(11));
        let put = a
            .put(
                &format!("/v1/hotels/{}/room-types/{}/inventory", one.0, one.1),
                &a.staff(),
                &json!({"from": night, "to": next, "total_inventory": 1, "rate_cents": 100}),
            )
            .await;
        assert_eq!(put.0, 200, "{}", put.1);
        let taker = stay(Uuid::new_v4(), one.0, one.1, night, next, 1);
        assert_eq!(a.reserve("g", &taker).await.0, 201, "{mode}");
        if mode == "redis" {
            a.set_reserved_in_redis(one.0, one.1, night, 0).await;
        }
        let free = Uuid::new_v4();
        let sold_out = a
            .reserve("g", &stay(free, one.0, one.1, night, next, 1))
            .await;
        assert_problem(&sold_out, 409, "sold_out");
        let elsewhere = b
            .reserve("g", &stay(free, two.0, two.1, first, last, 1))
            .await;
        assert_eq!(elsewhere.0, 201, "{mode}: {}", elsewhere.1);
    }
}

/// A claim left behind by a booking that never finished (its process died between the
/// claim and the commit, or its shard froze) keeps the id for its hotel: 409 while a
/// booking under it could still be in flight, 422 after. It is never handed to another
/// hotel, since a booking under it sent to a frozen shard may still commit.
#[tokio::test]
async fn a_claim_for_another_hotel_keeps_the_id() {
    let split = Split::fresh(2).await;
    let app = split.app(Vec::new()).await;
    let (first, last) = (app.night(1), app.night(3));
    let hotels = split.hotel_per_shard(&app, 10, first).await;
    let abandon = |id: Uuid, hotel: i64, ago_secs: f64| {
        let url = split.shards[split.home_of(id)].clone();
        async move {
            scalar(
                &url,
                "WITH claimed AS (INSERT INTO reservation_claims (reservation_id, hotel_id, claimed_at) \
                 VALUES ($1, $2, clock_timestamp() - make_interval(secs => $3)) RETURNING 1) \
                 SELECT count(*) FROM claimed",
                &[&id, &hotel, &ago_secs],
            )
            .await
        }
    };
    let owner = |id: Uuid| {
        let url = split.shards[split.home_of(id)].clone();
        async move {
            scalar(
                &url,
                "SELECT hotel_id FROM reservation_claims WHERE reservation_id = $1",
                &[&id],
            )
            .await
        }
    };
    let recent = Uuid::new_v4();
    abandon(recent, hotels[0].0, 0.0).await;
    let answer = app
        .reserve("g", &stay(recent, hotels[1].0, hotels[1].1, first, last, 1))
        .await;
    assert_problem(&answer, 409, "request_in_progress");

    let old = Uuid::new_v4();
    abandon(old, hotels[0].0, 3600.0).await;
    let answer = app
        .reserve("g", &stay(old, hotels[1].0, hotels[1].1, first, last, 1))
        .await;
    assert_problem(&answer, 422, "idempotency_conflict");
    assert_eq!(split.reserved(hotels[1], first).await, 0);
    assert_eq!(owner(old).await, hotels[0].0);
    // The same request for the claim's own hotel joins the claim and books.
    let answer = app
        .reserve("g", &stay(old, hotels[0].0, hotels[0].1, first, last, 1))
        .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    assert_eq!(split.reserved(hotels[0], first).await, 1);
}

/// A frozen shard (SIGSTOP) answers 503 for its own hotels, and for the ids whose
/// directory entry it holds, while every other hotel books and the service stays ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_shard_fails_only_its_own_hotels() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("shard-{}", Uuid::new_v4().simple()));
    let private = PostgresServer::start(&dir, Durability::Throwaway).unwrap();
    let split = Split::over(vec![fresh_database().await, private.url()]).await;
    let app = split
        .app(vec![
            ("INNKEEPER_DB_STATEMENT_TIMEOUT_MS", "1000".into()),
            ("INNKEEPER_IN_FLIGHT_TTL", "8".into()),
        ])
        .await;
    let (first, last) = (app.night(1), app.night(3));
    let hotels = split.hotel_per_shard(&app, 10, first).await;
    let (alive, frozen) = (hotels[0], hotels[1]);
    let id_homed_on = |shard: usize| loop {
        let id = Uuid::new_v4();
        if split.home_of(id) == shard {
            return id;
        }
    };
    let signal = |signal: i32| {
        let postmaster = private.pid();
        for pid in std::iter::once(postmaster).chain(children_of(postmaster)) {
            // SAFETY: kill(2) on a server process of this test with a valid signal.
            unsafe { libc::kill(pid as i32, signal) };
        }
    };
    let before = split.reserved(alive, first).await;
    // A reservation whose directory entry is on the shard about to freeze.
    let kept = id_homed_on(1);
    let booked = stay(kept, alive.0, alive.1, first, last, 1);
    assert_eq!(app.reserve("g", &booked).await.0, 201);
    // A booking a moment before the freeze: the instance knows the frozen hotel, so the
    // next booking gets past the hotel directory and Redis, claims its id on the living
    // shard, and is caught committing on the frozen one.
    let warm = stay(id_homed_on(0), frozen.0, frozen.1, first, last, 1);
    assert_eq!(app.reserve("g", &warm).await.0, 201);

    signal(libc::SIGSTOP);
    let staff = app.staff();
    let caught = stay(id_homed_on(0), frozen.0, frozen.1, first, last, 1);
    assert_problem(&app.reserve("g", &caught).await, 503, "unavailable");
    let guest = app.guest("g");
    let read = app
        .get_as(&format!("/v1/reservations/{kept}"), &guest)
        .await;
    assert_problem(&read, 503, "unavailable");
    assert_problem(
        &app.get_as(&format!("/v1/hotels/{}", frozen.0), &staff)
            .await,
        503,
        "unavailable",
    );
    assert_problem(&app.get_as("/v1/hotels", &staff).await, 503, "unavailable");
    // The other shard's hotel books, reads and answers as ever.
    let answer = app
        .reserve("g", &stay(id_homed_on(0), alive.0, alive.1, first, last, 1))
        .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    assert_eq!(
        app.get_as(&format!("/v1/hotels/{}", alive.0), &staff)
            .await
            .0,
        200
    );
    // An id whose directory entry is on the frozen shard cannot be claimed.
    let answer = app
        .reserve("g", &stay(id_homed_on(1), alive.0, alive.1, first, last, 1))
        .await;
    assert_problem(&answer, 503, "unavailable");
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");

    signal(libc::SIGCONT);
    // A 503 leaves the outcome open: the guest retries the same request after the thaw,
    // and it is booked once.
    wait_until(
        "the thawed shard books",
        std::time::Duration::from_secs(30),
        || async { [200, 201].contains(&app.reserve("g", &caught).await.0) },
    )
    .await;
    assert_eq!(split.reserved(alive, first).await, before + 2);
    assert_eq!(split.reserved(frozen, first).await, 2);
    let read = app
        .get_as(&format!("/v1/reservations/{kept}"), &guest)
        .await;
    assert_eq!(read.0, 200, "{}", read.1);
    // Whatever the refused bookings deducted in Redis is repaired from Postgres, once
    // their in-flight entries have lapsed.
    app.clock.advance(chrono::Duration::seconds(60));
    let (status, report) = app.post("/v1/admin/reconcile", &staff, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    for hotel in [alive, frozen] {
        assert_eq!(
            app.reserved_in_redis(hotel.0, hotel.1, first).await,
            Some(split.reserved(hotel, first).await)
        );
    }
    drop(app);
    let mut private = private;
    let _ = private.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each job runs once per shard, on whichever instance holds that shard's lease, and each
/// shard's jobs loop on their own: with one shard frozen, the other's holds still expire;
/// after the thaw, the frozen shard's do too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_shard_runs_its_own_jobs() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("shard-jobs-{}", Uuid::new_v4().simple()));
    let private = PostgresServer::start(&dir, Durability::Throwaway).unwrap();
    let split = Split::over(vec![fresh_database().await, private.url()]).await;
    let every_second = || {
        [
            "INNKEEPER_RECONCILE_INTERVAL_SECS",
            "INNKEEPER_SWEEP_INTERVAL_SECS",
            "INNKEEPER_ARCHIVE_INTERVAL_SECS",
        ]
        .map(|name| (name, "1".to_owned()))
        .into_iter()
        .chain([("INNKEEPER_DB_STATEMENT_TIMEOUT_MS", "1000".to_owned())])
        .chain([("INNKEEPER_IN_FLIGHT_TTL", "8".to_owned())])
        .collect::<Vec<_>>()
    };
    // Started together: both migrate the private shard's fresh database at once.
    let (a, b) = tokio::join!(split.app(every_second()), split.app(every_second()));
    let (first, last) = (a.night(1), a.night(3));
    let hotels = split.hotel_per_shard(&a, 10, first).await;
    let mut ids = Vec::new();
    for hotel in &hotels {
        let id = Uuid::new_v4();
        assert_eq!(
            a.reserve("g", &stay(id, hotel.0, hotel.1, first, last, 1))
                .await
                .0,
            201
        );
        ids.push(id);
    }
    // Each shard's three jobs are leased in that shard's own database.
    for url in &split.shards {
        wait_until(
            "every job leased",
            std::time::Duration::from_secs(30),
            || async {
                scalar(
                    url,
                    "SELECT count(*) FROM job_leases WHERE expires_at > now()",
                    &[],
                )
                .await
                    == 3
            },
        )
        .await;
    }
    let signal = |signal: i32| {
        let postmaster = private.pid();
        for pid in std::iter::once(postmaster).chain(children_of(postmaster)) {
            // SAFETY: kill(2) on a server process of this test with a valid signal.
            unsafe { libc::kill(pid as i32, signal) };
        }
    };
    signal(libc::SIGSTOP);
    for app in [&a, &b] {
        app.clock.advance(chrono::Duration::hours(1));
    }
    // The living shard's sweeper expires its hold, frozen neighbour or not.
    let live_shard = &split.shards[0];
    wait_until(
        "the living shard's hold expires",
        std::time::Duration::from_secs(30),
        || async {
            scalar(
            live_shard,
            "SELECT count(*) FROM reservations WHERE reservation_id = $1 AND status = 'expired'",
            &[&ids[0]],
        )
        .await
            == 1
        },
    )
    .await;
    signal(libc::SIGCONT);
    let guest = a.guest("g");
    wait_until(
        "the thawed shard's hold expires",
        std::time::Duration::from_secs(60),
        || async {
            let (_, read) = b
                .get_as(&format!("/v1/reservations/{}", ids[1]), &guest)
                .await;
            read["status"] == "expired"
        },
    )
    .await;
    for hotel in &hotels {
        assert_eq!(split.reserved(*hotel, first).await, 0);
    }
    drop((a, b));
    let mut private = private;
    let _ = private.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `innkeeper migrate` against `catalog` with `shards` as `INNKEEPER_SHARD_URLS` (none:
/// unset): whether it succeeded, and what it printed on stderr.
fn migrate(catalog: &str, shards: Option<&[String]>) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_innkeeper"));
    command
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", catalog)
        .env("REDIS_URL", "redis://127.0.0.1:1/");
    if let Some(shards) = shards {
        command.env("INNKEEPER_SHARD_URLS", shards.join(","));
    }
    let ran = command.output().expect("running innkeeper migrate");
    (
        ran.status.success(),
        String::from_utf8_lossy(&ran.stderr).into_owned(),
    )
}

/// Asserts that `innkeeper migrate` refuses the list, saying `why`.
#[track_caller]
fn assert_refused(catalog: &str, shards: Option<&[String]>, why: &str) {
    let (succeeded, stderr) = migrate(catalog, shards);
    assert!(!succeeded && stderr.contains(why), "{shards:?}: {stderr}");
}

/// A hotel and a reservation made by an instance on `catalog` alone.
async fn booked_alone(catalog: &str) -> (Uuid, Value) {
    let alone = TestApp::spawn_with(Options {
        database_url: Some(catalog.to_owned()),
        ..Options::default()
    })
    .await;
    let hotel = alone.hotel_with_inventory(1.0, 5, alone.night(1), 2).await;
    let id = Uuid::new_v4();
    let booked = stay(id, hotel.0, hotel.1, alone.night(1), alone.night(3), 1);
    assert_eq!(alone.reserve("g", &booked).await.0, 201);
    (id, booked)
}

/// A deployment that ran on one database splits: the catalog stays the first shard, its
/// reservations get their directory entries, and an id it holds stays unique. Leaving the
/// catalog out of the list, moving it, listing a database twice, or starting without the
/// list once split, is refused.
#[tokio::test]
async fn a_catalog_that_served_alone_splits_with_its_reservations() {
    let catalog = fresh_database().await;
    let (id, booked) = booked_alone(&catalog).await;
    let new_shard = fresh_database().await;
    assert_refused(
        &catalog,
        Some(&[new_shard.clone(), catalog.clone()]),
        "must stay entry 1",
    );
    assert_refused(
        &catalog,
        Some(&[catalog.clone(), catalog.clone()]),
        "same database",
    );

    let split = Split::catalog_first(&catalog, new_shard);
    let app = split.app(Vec::new()).await;
    let guest = app.guest("g");
    let (status, read) = app.get_as(&format!("/v1/reservations/{id}"), &guest).await;
    assert_eq!(
        (status, &read["reservation_id"]),
        (200, &json!(id)),
        "{read}"
    );
    // Every logical shard stayed on the catalog: nothing moved by itself.
    let on_catalog = "SELECT count(*) FROM shard_map WHERE shard = 0";
    assert_eq!(scalar(&catalog, on_catalog, &[]).await, 256);
    let other = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
    let answer = app
        .reserve(
            "g",
            &stay(id, other.0, other.1, app.night(1), app.night(3), 1),
        )
        .await;
    assert_problem(&answer, 422, "idempotency_conflict");
    assert_eq!(app.reserve("g", &booked).await.0, 200);
    // Once split, an instance without the list would book without the directory.
    assert_refused(&catalog, None, "this deployment has 2 shards");
}

/// A database whose hotels predate the shard map (as one migrated to this version) keeps
/// them: it may only become the first shard, and every logical shard stays on it.
#[tokio::test]
async fn a_database_from_before_shards_keeps_its_hotels() {
    let catalog = fresh_database().await;
    let (id, _) = booked_alone(&catalog).await;
    scalar(
        &catalog,
        "WITH places AS (DELETE FROM shard_places RETURNING 1), \
              map AS (DELETE FROM shard_map RETURNING 1) \
         SELECT (SELECT count(*) FROM places) + (SELECT count(*) FROM map)",
        &[],
    )
    .await;
    let new_shard = fresh_database().await;
    assert_refused(
        &catalog,
        Some(&[new_shard.clone(), catalog.clone()]),
        "already holds hotels",
    );
    assert_refused(
        &catalog,
        Some(std::slice::from_ref(&new_shard)),
        "catalog (DATABASE_URL) holds hotels",
    );
    let split = Split::catalog_first(&catalog, new_shard);
    let app = split.app(Vec::new()).await;
    let on_catalog = "SELECT count(*) FROM shard_map WHERE shard = 0";
    assert_eq!(scalar(&catalog, on_catalog, &[]).await, 256);
    let (status, read) = app
        .get_as(&format!("/v1/reservations/{id}"), &app.guest("g"))
        .await;
    assert_eq!(status, 200, "{read}");
}

/// `innkeeper migrate` migrates the catalog and every shard, records their places and
/// fills the shard map round-robin; a list reordered, shorter, or with another database
/// at a known place is refused.
#[tokio::test]
async fn migrate_fills_the_map_and_refuses_a_reordered_list() {
    let split = Split::fresh(3).await;
    let (succeeded, stderr) = migrate(&split.catalog, Some(&split.shards));
    assert!(succeeded, "{stderr}");
    let places = "SELECT count(*) FROM shard_places";
    assert_eq!(scalar(&split.catalog, places, &[]).await, 3);
    let round_robin = "SELECT count(*) FROM shard_map WHERE shard = logical_shard % 3";
    assert_eq!(scalar(&split.catalog, round_robin, &[]).await, 256);
    let reordered = [
        split.shards[1].clone(),
        split.shards[0].clone(),
        split.shards[2].clone(),
    ];
    assert_refused(&split.catalog, Some(&reordered), "must keep its order");
    assert_refused(
        &split.catalog,
        Some(&split.shards[..2]),
        "INNKEEPER_SHARD_URLS lists 2",
    );
    let swapped = [
        split.shards[0].clone(),
        split.shards[1].clone(),
        fresh_database().await,
    ];
    assert_refused(&split.catalog, Some(&swapped), "must keep its order");
}
