//! innkeeper on a Redis Cluster of three primaries with a replica each, started by the
//! test itself. Each test gets a cluster of its own, since moving a slot or killing a
//! primary would disturb any other test whose hotels hash to the same slots.
//!
//! What the cluster connection must get right, each tested here: a script cache missing
//! on a node (NOSCRIPT), a slot moved to another primary (MOVED), a slot in the middle of
//! a move (ASK), a primary demoted by a failover, and a primary killed mid-load, with
//! and without the loss of deductions it had acknowledged.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use innkeeper::devservices::{Durability, RedisCluster, RedisServer};
use serde_json::json;
use uuid::Uuid;

use crate::faults::{assert_consistent, book_load, wait_for, NIGHTS, TOTAL};
use crate::helpers::{fresh_database, stay, wait_until, Options, TestApp};

/// A private cluster in a directory removed at the end.
pub struct Cluster {
    dir: PathBuf,
    redis: RedisCluster,
}

impl Cluster {
    pub async fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cluster-{}", Uuid::new_v4().simple()));
        let redis = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || RedisCluster::start(&dir, Durability::Throwaway, 3, 1)
        })
        .await
        .unwrap()
        .expect("starting a Redis Cluster");
        Self { dir, redis }
    }

    /// `INNKEEPER_REDIS_CLUSTER` for this cluster.
    pub fn seeds(&self) -> String {
        self.redis.seeds()
    }

    /// An innkeeper on this cluster. `shared` names a database and key prefix that
    /// another instance uses too.
    async fn app(&self, shared: Option<(String, String)>) -> TestApp {
        let (database_url, prefix) = shared.unzip();
        TestApp::spawn_with(Options {
            database_url,
            prefix,
            env: vec![("INNKEEPER_REDIS_CLUSTER", self.seeds())],
            ..Options::default()
        })
        .await
    }

    /// Two innkeeper instances sharing a database and a key prefix, as behind a load
    /// balancer.
    async fn two_instances(&self) -> [TestApp; 2] {
        let shared = (
            fresh_database().await,
            format!("test:{}:", Uuid::new_v4().simple()),
        );
        [
            self.app(Some(shared.clone())).await,
            self.app(Some(shared)).await,
        ]
    }

    fn node(&self, index: usize) -> &RedisServer {
        &self.redis.nodes()[index]
    }

    /// The index of the node that serves `key`'s slot as primary.
    fn primary_of(&self, key: &str) -> usize {
        let slot: i64 = self.query(self.live(), redis::cmd("CLUSTER").arg("KEYSLOT").arg(key));
        let id = self.primaries().into_iter().find_map(|(id, slots)| {
            slots
                .iter()
                .any(|(first, last)| (*first..=*last).contains(&slot))
                .then_some(id)
        });
        self.index_of(&id.expect("every slot is served"))
    }

    /// The replica of the primary at `index`.
    fn replica_of(&self, index: usize) -> usize {
        let primary = self.id_of(index);
        (0..self.redis.nodes().len())
            .find(|candidate| {
                self.nodes_line(*candidate)
                    .is_some_and(|fields| fields[2].contains("slave") && fields[3] == primary)
            })
            .expect("a replica")
    }

    /// The first node that answers: fault tests kill some.
    fn live(&self) -> usize {
        (0..self.redis.nodes().len())
            .find(|index| {
                self.try_query::<String>(*index, &redis::cmd("PING"))
                    .is_some()
            })
            .expect("a live node")
    }

    /// (node id, slot ranges) of every primary, as a live node sees the cluster.
    fn primaries(&self) -> Vec<(String, Vec<(i64, i64)>)> {
        let nodes: String = self.query(self.live(), redis::cmd("CLUSTER").arg("NODES"));
        nodes
            .lines()
            .map(|line| line.split(' ').collect::<Vec<_>>())
            .filter(|fields| fields[2].contains("master") && !fields[2].contains("fail"))
            .map(|fields| {
                let slots = fields[8..]
                    .iter()
                    .filter(|range| !range.starts_with('['))
                    .map(|range| match range.split_once('-') {
                        Some((first, last)) => (first.parse().unwrap(), last.parse().unwrap()),
                        None => (range.parse().unwrap(), range.parse().unwrap()),
                    })
                    .collect();
                (fields[0].to_owned(), slots)
            })
            .collect()
    }

    /// The `CLUSTER NODES` line a node gives about itself.
    fn nodes_line(&self, index: usize) -> Option<Vec<String>> {
        let nodes: String = self.try_query(index, redis::cmd("CLUSTER").arg("NODES"))?;
        nodes
            .lines()
            .find(|line| line.contains("myself"))
            .map(|line| line.split(' ').map(str::to_owned).collect())
    }

    fn id_of(&self, index: usize) -> String {
        self.query(index, redis::cmd("CLUSTER").arg("MYID"))
    }

    fn index_of(&self, id: &str) -> usize {
        (0..self.redis.nodes().len())
            .find(|index| {
                self.try_query::<String>(*index, redis::cmd("CLUSTER").arg("MYID"))
                    .is_some_and(|node| node == id)
            })
            .expect("a known node")
    }

    fn try_query<T: redis::FromRedisValue>(&self, index: usize, command: &redis::Cmd) -> Option<T> {
        let client = redis::Client::open(self.node(index).url()).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .ok()?;
        command.query(&mut connection).ok()
    }

    /// The command's name alone goes in the panic message: MIGRATE carries the password.
    fn query<T: redis::FromRedisValue>(&self, index: usize, command: &redis::Cmd) -> T {
        self.try_query(index, command).unwrap_or_else(|| {
            let name = command.args_iter().next().map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => String::new(),
            });
            panic!("node {index} does not answer {name:?}")
        })
    }

    /// Moves every key of `slot` from the primary at `from` to the one at `to`, leaving
    /// the slot in the middle of its move: `from` answers ASK for it from now on.
    fn start_moving(&self, slot: i64, from: usize, to: usize) {
        let (from_id, to_id) = (self.id_of(from), self.id_of(to));
        let _: () = self.query(
            to,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("IMPORTING")
                .arg(&from_id),
        );
        let _: () = self.query(
            from,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("MIGRATING")
                .arg(&to_id),
        );
        let keys: Vec<String> = self.query(
            from,
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(10_000),
        );
        assert!(!keys.is_empty(), "the slot holds the hotel's nights");
        let password = std::fs::read_to_string(self.dir.join("password")).unwrap();
        let _: String = self.query(
            from,
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.node(to).port())
                .arg("")
                .arg(0)
                .arg(5_000)
                .arg("AUTH")
                .arg(password.trim())
                .arg("KEYS")
                .arg(&keys),
        );
    }

    /// Ends a move: every primary learns that `to` serves the slot.
    fn finish_moving(&self, slot: i64, to: usize) {
        let to_id = self.id_of(to);
        for (id, _) in self.primaries() {
            let _: () = self.query(
                self.index_of(&id),
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id),
            );
        }
    }

    /// Waits until the node at `index` is a primary serving slots, as every live node
    /// sees it, and the cluster is whole again.
    async fn wait_until_primary(&self, index: usize) {
        let what = format!("node {index} was never promoted");
        wait_until(&what, Duration::from_secs(60), || async {
            let promoted = self
                .nodes_line(index)
                .is_some_and(|fields| fields[2].contains("master") && fields.len() > 8);
            promoted
                && self
                    .try_query::<String>(index, redis::cmd("CLUSTER").arg("INFO"))
                    .is_some_and(|info| info.contains("cluster_state:ok"))
        })
        .await;
    }

    /// `res` of a night as the node at `index` holds it, asked directly (with ASKING, so
    /// that a node importing the slot answers too).
    fn reserved_on(&self, index: usize, key: &str) -> Option<i64> {
        let client = redis::Client::open(self.node(index).url()).unwrap();
        let mut connection = client.get_connection().unwrap();
        let (reserved,): (Option<i64>,) = redis::pipe()
            .cmd("ASKING")
            .ignore()
            .cmd("HGET")
            .arg(key)
            .arg("res")
            .query(&mut connection)
            .unwrap_or_else(|error| panic!("node {index} holds {key}: {error}"));
        reserved
    }

    /// How many keys of `slot` the node at `index` holds.
    fn keys_in_slot(&self, index: usize, slot: i64) -> i64 {
        self.query(
            index,
            redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.redis.nodes().len() {
            let _ = self.redis.node_mut(index).stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates hotels until there is one on each of `primaries` distinct primaries; returns
/// (hotel, room type) per hotel, with `TOTAL` rooms on `NIGHTS` nights.
async fn hotels_on_distinct_primaries(
    cluster: &Cluster,
    app: &TestApp,
    primaries: usize,
) -> Vec<(i64, i64)> {
    let mut found: Vec<(usize, (i64, i64))> = Vec::new();
    while found.len() < primaries {
        let hotel = app
            .hotel_with_inventory(1.0, TOTAL, app.night(1), NIGHTS)
            .await;
        let primary = cluster.primary_of(&app.night_key(hotel.0, hotel.1, app.night(1)));
        if found.iter().all(|(other, _)| *other != primary) {
            found.push((primary, hotel));
        }
    }
    found.into_iter().map(|(_, hotel)| hotel).collect()
}

/// Books one room on the first night, and checks the deduction landed on the node at
/// `expected` (asked directly, behind the cluster client's back).
async fn book_one_on(cluster: &Cluster, app: &TestApp, hotel: (i64, i64), expected: usize) {
    let (check_in, check_out) = (app.night(1), app.night(2));
    let before = app.reserved_in_postgres(hotel.0, hotel.1, check_in).await;
    let body = stay(Uuid::new_v4(), hotel.0, hotel.1, check_in, check_out, 1);
    let (status, answer) = app.reserve("traveller", &body).await;
    assert_eq!(status, 201, "{answer}");
    let key = app.night_key(hotel.0, hotel.1, check_in);
    assert_eq!(
        cluster.reserved_on(expected, &key),
        Some(before + 1),
        "the deduction is on node {expected}"
    );
}

/// Postgres and Redis both count `rooms` reserved on the nights 1 and 2.
async fn assert_reserved(app: &TestApp, hotel: (i64, i64), rooms: i64) {
    for night in [app.night(1), app.night(2)] {
        assert_eq!(
            app.reserved_in_postgres(hotel.0, hotel.1, night).await,
            rooms,
            "Postgres, {night}"
        );
        assert_eq!(
            app.reserved_in_redis(hotel.0, hotel.1, night).await,
            Some(rooms),
            "Redis, {night}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rush_through_two_instances_sells_each_room_once() {
    let cluster = Cluster::start().await;
    let instances = cluster.two_instances().await;
    let hotels = hotels_on_distinct_primaries(&cluster, &instances[0], 3).await;
    // Every hotel: three times its rooms in guests, each booking the same two nights,
    // alternately through each instance.
    let attempts = hotels
        .iter()
        .flat_map(|hotel| (0..TOTAL * 3).map(move |n| (*hotel, n)));
    let answers = join_all(attempts.map(|(hotel, n)| {
        let app = &instances[n as usize % 2];
        async move {
            let body = stay(
                Uuid::new_v4(),
                hotel.0,
                hotel.1,
                app.night(1),
                app.night(3),
                1,
            );
            (hotel, app.reserve(&format!("g{n}"), &body).await.0)
        }
    }))
    .await;
    for hotel in &hotels {
        let created = answers
            .iter()
            .filter(|(of, status)| of == hotel && *status == 201)
            .count();
        assert_eq!(created as i64, TOTAL, "hotel {hotel:?}");
        assert_reserved(&instances[1], *hotel, TOTAL).await;
    }
    assert!(answers
        .iter()
        .all(|(_, status)| [201, 409].contains(status)));
    // A replay through the other instance finds the booking, and a pass finds no drift.
    let body = stay(
        Uuid::new_v4(),
        hotels[0].0,
        hotels[0].1,
        instances[0].night(3),
        instances[0].night(4),
        2,
    );
    assert_eq!(instances[0].reserve("replayer", &body).await.0, 201);
    let replay = instances[1].reserve("replayer", &body).await;
    assert_eq!(replay.0, 200, "{}", replay.1);
    assert_eq!(
        instances[1]
            .reserved_in_redis(hotels[0].0, hotels[0].1, instances[0].night(3))
            .await,
        Some(2)
    );
    let (status, report) = instances[0]
        .post("/v1/admin/reconcile", &instances[0].staff(), &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["drifted"], 0, "{report}");
}

/// Retry storms through both instances at once: every id is sent ten times, alternately to
/// each instance, for hotels on different primaries. Each id books once, every copy
/// answers with that booking (or asks to retry while it is in flight), and Redis, Postgres
/// and a reconcile pass agree afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_storms_through_two_instances_book_each_id_once() {
    let cluster = Cluster::start().await;
    let instances = cluster.two_instances().await;
    let hotels = hotels_on_distinct_primaries(&cluster, &instances[0], 3).await;
    let (check_in, check_out) = (instances[0].night(1), instances[0].night(3));
    let bodies: Vec<_> = (0..24)
        .map(|n| {
            let hotel = hotels[n % hotels.len()];
            stay(Uuid::new_v4(), hotel.0, hotel.1, check_in, check_out, 1)
        })
        .collect();
    let copies = bodies
        .iter()
        .flat_map(|body| (0..10).map(move |copy| (body, copy)));
    let answers = join_all(copies.map(|(body, copy)| {
        let app = &instances[copy % 2];
        let guest = format!("storm-{}", body["reservation_id"]);
        async move { (body, app.reserve(&guest, body).await) }
    }))
    .await;
    for body in &bodies {
        let mine: Vec<_> = answers.iter().filter(|(b, _)| *b == body).collect();
        let created = mine
            .iter()
            .filter(|(_, (status, _))| *status == 201)
            .count();
        assert_eq!(created, 1, "{body}");
        for (_, (status, answer)) in &mine {
            match status {
                201 | 200 => assert_eq!(answer["reservation_id"], body["reservation_id"]),
                409 => assert_eq!(answer["code"], "request_in_progress", "{answer}"),
                other => panic!("unexpected {other}: {answer}"),
            }
        }
    }
    assert_eq!(
        instances[1].count("reservations").await,
        bodies.len() as i64
    );
    for hotel in &hotels {
        let booked = bodies
            .iter()
            .filter(|body| body["hotel_id"] == hotel.0)
            .count() as i64;
        assert_reserved(&instances[1], *hotel, booked).await;
    }
    let (status, report) = instances[1]
        .post("/v1/admin/reconcile", &instances[1].staff(), &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["drifted"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_the_scripts_is_sent_them() {
    let cluster = Cluster::start().await;
    let app = cluster.app(None).await;
    let hotel = hotels_on_distinct_primaries(&cluster, &app, 1).await[0];
    let primary = cluster.primary_of(&app.night_key(hotel.0, hotel.1, app.night(1)));
    let reserve_sha = redis::Script::new(include_str!("../../lua/reserve.lua"))
        .get_hash()
        .to_owned();
    for index in 0..cluster.redis.nodes().len() {
        let _: () = cluster.query(index, redis::cmd("SCRIPT").arg("FLUSH"));
    }
    let cached = || -> Vec<bool> {
        cluster.query(
            primary,
            redis::cmd("SCRIPT").arg("EXISTS").arg(&reserve_sha),
        )
    };
    assert_eq!(cached(), [false]);
    book_one_on(&cluster, &app, hotel, primary).await;
    assert_eq!(
        cached(),
        [true],
        "EVAL cached the script on the slot's primary"
    );
}

/// A hotel's slot on its way from one primary to another.
struct Move {
    hotel: (i64, i64),
    /// The key of its first night.
    key: String,
    slot: i64,
    from: usize,
    to: usize,
}

/// Books a room at a new hotel, then moves every key of the hotel's slot to another
/// primary, leaving the slot itself in the middle of its move.
async fn start_moving_a_booked_hotel(cluster: &Cluster, app: &TestApp) -> Move {
    let hotel = hotels_on_distinct_primaries(cluster, app, 1).await[0];
    let key = app.night_key(hotel.0, hotel.1, app.night(1));
    let from = cluster.primary_of(&key);
    book_one_on(cluster, app, hotel, from).await;
    let to = cluster
        .primaries()
        .into_iter()
        .map(|(id, _)| cluster.index_of(&id))
        .find(|index| *index != from)
        .unwrap();
    let slot: i64 = cluster.query(0, redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key));
    cluster.start_moving(slot, from, to);
    Move {
        hotel,
        key,
        slot,
        from,
        to,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slot_moved_to_another_primary_is_followed() {
    let cluster = Cluster::start().await;
    let app = cluster.app(None).await;
    let Move {
        hotel,
        slot,
        from,
        to,
        ..
    } = start_moving_a_booked_hotel(&cluster, &app).await;
    cluster.finish_moving(slot, to);
    // The client still maps the slot to `from`, which now answers MOVED.
    book_one_on(&cluster, &app, hotel, to).await;
    assert_eq!(
        cluster.keys_in_slot(from, slot),
        0,
        "nothing was left behind"
    );
}

/// While a slot moves, Redis serves a key through ASK from whichever side holds it, but
/// refuses a script whose keys are split or partly absent (TRYAGAIN), and a booking's
/// script always names one absent key, its new deduction marker. So reads follow the
/// ASK redirect, and bookings go through Postgres alone until the move ends, with their
/// deductions left for the reconciler to repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slot_in_the_middle_of_a_move_is_followed() {
    let cluster = Cluster::start().await;
    let app = cluster.app(None).await;
    let Move {
        hotel,
        key,
        slot,
        from,
        to,
    } = start_moving_a_booked_hotel(&cluster, &app).await;
    let night = app.night(1);
    assert_eq!(cluster.keys_in_slot(from, slot), 0);
    // `from` still owns the slot but no longer holds its keys: a read is sent on to `to`.
    let cached = app.cache.read(hotel.0, &[hotel.1], &[night]).await.unwrap();
    assert_eq!(cached[0][0].map(|night| night.reserved), Some(1));
    let body = stay(Uuid::new_v4(), hotel.0, hotel.1, night, app.night(2), 1);
    let (status, answer) = app.reserve("mover", &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(app.reserved_in_postgres(hotel.0, hotel.1, night).await, 2);
    assert_eq!(
        cluster.reserved_on(to, &key),
        Some(1),
        "booked through Postgres"
    );
    cluster.finish_moving(slot, to);
    let body = stay(Uuid::new_v4(), hotel.0, hotel.1, night, app.night(2), 1);
    assert_eq!(app.reserve("mover", &body).await.0, 201);
    assert_eq!(
        cluster.reserved_on(to, &key),
        Some(2),
        "deducted on `to` again"
    );
    let (status, report) = app
        .post("/v1/admin/reconcile", &app.staff(), &json!({}))
        .await;
    assert_eq!(
        (status, report["repaired"].as_i64()),
        (200, Some(1)),
        "{report}"
    );
    assert_eq!(cluster.reserved_on(to, &key), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_demoted_by_a_failover_is_left_for_its_replica() {
    let cluster = Cluster::start().await;
    let app = cluster.app(None).await;
    let hotel = hotels_on_distinct_primaries(&cluster, &app, 1).await[0];
    let key = app.night_key(hotel.0, hotel.1, app.night(1));
    let primary = cluster.primary_of(&key);
    book_one_on(&cluster, &app, hotel, primary).await;
    let replica = cluster.replica_of(primary);
    let _: () = cluster.query(replica, redis::cmd("CLUSTER").arg("FAILOVER"));
    cluster.wait_until_primary(replica).await;
    wait_until("never demoted", Duration::from_secs(30), || async {
        cluster
            .query::<String>(primary, redis::cmd("INFO").arg("replication"))
            .contains("role:slave")
    })
    .await;
    // The client still sends the slot's writes to the old primary, now a replica.
    book_one_on(&cluster, &app, hotel, replica).await;
    assert_eq!(cluster.reserved_on(replica, &key), Some(2));
}

/// kill -9 of a primary in the middle of a booking load on its hotel: bookings carry on
/// (through Postgres while the slot has no primary), another primary's hotel is not
/// disturbed, and once the replica is promoted one reconcile pass agrees with Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_mid_load_loses_nothing_and_oversells_nothing() {
    let mut cluster = Cluster::start().await;
    let app = cluster.app(None).await;
    let hotels = hotels_on_distinct_primaries(&cluster, &app, 2).await;
    let (hit, spared) = (hotels[0], hotels[1]);
    let primary = cluster.primary_of(&app.night_key(hit.0, hit.1, app.night(1)));
    let replica = cluster.replica_of(primary);
    let progress = Arc::new(AtomicUsize::new(0));
    let spared_progress = Arc::new(AtomicUsize::new(0));
    let load = book_load(&app, hit.0, hit.1, 240, progress.clone());
    let other = book_load(&app, spared.0, spared.1, 120, spared_progress);
    let inject = async {
        wait_for(&progress, 60).await;
        cluster.redis.node_mut(primary).kill();
    };
    let ((created, statuses), (spared_created, spared_statuses), ()) =
        tokio::join!(load, other, inject);
    assert!(statuses.iter().all(|status| *status != 503), "{statuses:?}");
    assert!(spared_statuses
        .iter()
        .all(|status| [201, 409].contains(status)));
    cluster.wait_until_primary(replica).await;
    // The other primary's hotel never left Redis: every booking deducted there, so Redis
    // agrees with Postgres before any reconcile pass.
    for days in 1..=NIGHTS {
        let night = app.night(days);
        assert_eq!(
            app.reserved_in_redis(spared.0, spared.1, night).await,
            Some(app.reserved_in_postgres(spared.0, spared.1, night).await),
            "the spared hotel's night {night}"
        );
    }
    assert_consistent(&app, hit.0, hit.1, NIGHTS, &created, &statuses).await;
    assert_consistent(
        &app,
        spared.0,
        spared.1,
        NIGHTS,
        &spared_created,
        &spared_statuses,
    )
    .await;
    // The promoted replica serves the slot, scripts included (its script cache was empty).
    let key = app.night_key(hit.0, hit.1, app.night(1));
    assert_eq!(cluster.primary_of(&key), replica);
    book_one_on(&cluster, &app, hit, replica).await;
}

/// A failover that loses deductions already acknowledged: the replica is frozen and cut
/// off from its primary, so the bookings made meanwhile never reach it, then the primary
/// dies and the stale replica is promoted. Redis now shows rooms that are sold; Postgres' re-check refuses them, and
/// one reconcile pass puts the deductions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deductions_lost_in_a_failover_are_absorbed() {
    let mut cluster = Cluster::start().await;
    let app = cluster.app(None).await;
    let hotel = hotels_on_distinct_primaries(&cluster, &app, 1).await[0];
    let (first, last) = (app.night(1), app.night(1 + NIGHTS));
    let primary = cluster.primary_of(&app.night_key(hotel.0, hotel.1, first));
    let replica = cluster.replica_of(primary);
    // The night hashes the inventory PUT wrote must be on the replica before it freezes.
    let _: i64 = cluster.query(primary, redis::cmd("WAIT").arg(1).arg(5_000));
    let replica_pid = cluster.node(replica).pid() as i32;
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(replica_pid, libc::SIGSTOP) };
    // Cut now, so that no replication bytes wait in the frozen replica's socket buffer.
    let _: i64 = cluster.query(
        primary,
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
    );
    let sold = TOTAL / 2;
    for n in 0..sold {
        let body = stay(Uuid::new_v4(), hotel.0, hotel.1, first, last, 1);
        assert_eq!(app.reserve(&format!("early-{n}"), &body).await.0, 201);
    }
    cluster.redis.node_mut(primary).kill();
    // SAFETY: as above.
    unsafe { libc::kill(replica_pid, libc::SIGCONT) };
    cluster.wait_until_primary(replica).await;
    assert_eq!(
        app.reserved_in_redis(hotel.0, hotel.1, first).await,
        Some(0),
        "the promoted replica never saw the deductions"
    );
    // A rush for every room Redis believes free: Postgres sells only what is left.
    let answers = join_all((0..TOTAL).map(|n| {
        let body = stay(Uuid::new_v4(), hotel.0, hotel.1, first, last, 1);
        let app = &app;
        async move { app.reserve(&format!("late-{n}"), &body).await.0 }
    }))
    .await;
    let created = answers.iter().filter(|status| **status == 201).count() as i64;
    assert_eq!(created, TOTAL - sold, "{answers:?}");
    assert!(answers.iter().all(|status| [201, 409].contains(status)));
    for days in 1..=NIGHTS {
        let night = app.night(days);
        assert_eq!(
            app.reserved_in_postgres(hotel.0, hotel.1, night).await,
            TOTAL
        );
    }
    app.clock.advance(chrono::Duration::seconds(60));
    let (status, report) = app
        .post("/v1/admin/reconcile", &app.staff(), &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    for days in 1..=NIGHTS {
        let night = app.night(days);
        assert_eq!(
            app.reserved_in_redis(hotel.0, hotel.1, night).await,
            Some(TOTAL),
            "{report}"
        );
    }
}
