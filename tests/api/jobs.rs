//! The background jobs, driven one step at a time with an injected clock: the hold sweeper,
//! the archiver, the reconciler, and the TTLs of Redis keys.

use chrono::{Days, Duration, NaiveTime, Utc};
use futures::future::join_all;
use innkeeper::clock::Clock;
use innkeeper::config::InventoryMode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{assert_problem, stay, Options, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_holds_are_released_exactly_once_by_concurrent_sweepers() {
    for mode in [InventoryMode::Redis, InventoryMode::Db] {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 40, app.night(1), 2).await;
        for n in 0..30 {
            let (status, _) = app
                .reserve(
                    &format!("g{n}"),
                    &stay(
                        Uuid::new_v4(),
                        hotel,
                        room_type,
                        app.night(1),
                        app.night(3),
                        1,
                    ),
                )
                .await;
            assert_eq!(status, 201);
        }
        let night = app.night(1);
        assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 30);
        assert_eq!(
            app.state.jobs.sweeper.run_once().await.unwrap(),
            0,
            "nothing is due yet"
        );

        app.clock.advance(Duration::seconds(901));
        // Four sweepers at once, as four processes would: each hold expires once.
        let swept = join_all((0..4).map(|_| app.state.jobs.sweeper.run_once())).await;
        let total: u64 = swept.into_iter().map(Result::unwrap).sum();
        assert_eq!(total, 30, "{mode:?}");
        assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 0);
        if mode == InventoryMode::Redis {
            assert_eq!(
                app.reserved_in_redis(hotel, room_type, night).await,
                Some(0)
            );
        }
        let client = app.db.get().await.unwrap();
        let expired: i64 = client
            .query_one(
                "SELECT count(*) FROM reservations WHERE status = 'expired'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(expired, 30);
        assert_eq!(app.state.jobs.sweeper.run_once().await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_racing_the_expiry_either_wins_or_is_refused() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 40, app.night(1), 1).await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let id = Uuid::new_v4();
        let (status, _) = app
            .reserve(
                &format!("g{n}"),
                &stay(id, hotel, room_type, app.night(1), app.night(2), 1),
            )
            .await;
        assert_eq!(status, 201);
        ids.push(id);
    }
    // Exactly at the deadline a hold is due: confirms lose, the sweeper wins.
    app.clock.advance(Duration::seconds(900));
    let staff = app.staff();
    let confirms = ids.iter().map(|id| {
        let app = &app;
        let staff = staff.clone();
        async move {
            app.post(
                &format!("/v1/reservations/{id}/confirm"),
                &staff,
                &json!({}),
            )
            .await
        }
    });
    let (answers, swept) = tokio::join!(join_all(confirms), app.state.jobs.sweeper.run_once());
    let swept = swept.unwrap();
    for answer in &answers {
        assert_problem(answer, 409, "conflict");
    }
    let client = app.db.get().await.unwrap();
    let statuses: Vec<String> = client
        .query("SELECT status FROM reservations", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(statuses.iter().all(|s| s == "expired"), "{statuses:?}");
    assert!(swept <= 20);
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night_at_start(1))
            .await,
        0
    );
    // The inventory CHECK would have refused a second give-back of any of them.
}

#[tokio::test]
async fn a_confirm_before_the_deadline_beats_the_sweeper() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 4, app.night(1), 1).await;
    let id = Uuid::new_v4();
    assert_eq!(
        app.reserve(
            "g",
            &stay(id, hotel, room_type, app.night(1), app.night(2), 2)
        )
        .await
        .0,
        201
    );
    app.clock.advance(Duration::seconds(899));
    let (status, confirmed) = app
        .post(
            &format!("/v1/reservations/{id}/confirm"),
            &app.staff(),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, confirmed["status"].as_str()),
        (200, Some("confirmed"))
    );
    app.clock.advance(Duration::seconds(3600));
    assert_eq!(app.state.jobs.sweeper.run_once().await.unwrap(), 0);
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night_at_start(1))
            .await,
        2
    );
}

#[tokio::test]
async fn finished_stays_are_archived_and_past_nights_deleted() {
    // Start at noon so day arithmetic stays on whole days.
    let start = Utc::now()
        .date_naive()
        .and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap())
        .and_utc();
    let app = TestApp::spawn_with(Options {
        now: start,
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(0), 3).await;
    let kept_id = Uuid::new_v4();
    let archived_id = Uuid::new_v4();
    assert_eq!(
        app.reserve(
            "old",
            &stay(archived_id, hotel, room_type, app.night(0), app.night(1), 1)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        app.reserve(
            "new",
            &stay(kept_id, hotel, room_type, app.night(1), app.night(3), 1)
        )
        .await
        .0,
        201
    );

    // 30 days after the first check-out nothing moves yet; 31 days after, it does.
    app.clock.set(start + Duration::days(1 + 30));
    let report = app.state.jobs.archiver.run_once().await.unwrap();
    assert_eq!(report.reservations_archived, 0);
    assert_eq!(
        report.nights_deleted, 3,
        "every night is more than a day in the past"
    );
    assert_eq!(app.count("room_type_inventory").await, 0);

    app.clock.set(start + Duration::days(1 + 31));
    let report = app.state.jobs.archiver.run_once().await.unwrap();
    assert_eq!(report.reservations_archived, 1);
    let client = app.db.get().await.unwrap();
    let archived: Vec<uuid::Uuid> = client
        .query("SELECT reservation_id FROM reservations_archive", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(archived, vec![archived_id]);
    let hot: Vec<uuid::Uuid> = client
        .query("SELECT reservation_id FROM reservations", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(hot, vec![kept_id]);
}

/// A night loaded into Redis leaves after the idle TTL, or once it has passed everywhere
/// if that comes sooner: never later. Yesterday's night, with a day's idle TTL, is capped
/// by its own end before noon UTC and by the idle TTL after; the rule holds either way.
#[tokio::test]
async fn a_night_key_expires_when_idle_and_never_after_its_night() {
    const IDLE: i64 = 86_400;
    let app = TestApp::spawn_with(Options {
        env: vec![("INNKEEPER_NIGHT_IDLE_TTL", IDLE.to_string())],
        ..Options::default()
    })
    .await;
    let yesterday = app.night(0) - Days::new(1);
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, yesterday, 5).await;
    let mut connection = app.redis.connection().await.unwrap().handle();
    let (now, _): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut connection)
        .await
        .unwrap();
    for night in [yesterday, app.night(3)] {
        let expires_at: i64 = redis::cmd("EXPIRETIME")
            .arg(app.night_key(hotel, room_type, night))
            .query_async(&mut connection)
            .await
            .unwrap();
        let end = innkeeper::inventory::keys::night_expires_at(night);
        let expected = (now + IDLE).min(end);
        assert!(
            (expected - 60..=expected).contains(&expires_at),
            "{night}: {expires_at}, expected {expected}"
        );
    }
    // The night's own end is a day after it has ended everywhere: its morning after is at
    // the latest noon UTC of the next day (in UTC-12). The rule is unit-tested beside it.
    let night = app.night(3);
    let last_morning_after = (night + Days::new(1))
        .and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap())
        .and_utc();
    assert!(
        innkeeper::inventory::keys::night_expires_at(night)
            <= (last_morning_after + Duration::days(2)).timestamp()
    );
}

#[tokio::test]
async fn the_reconciler_repairs_redis_in_both_directions() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 3).await;
    for n in 0..2 {
        assert_eq!(
            app.reserve(
                &format!("g{n}"),
                &stay(
                    Uuid::new_v4(),
                    hotel,
                    room_type,
                    app.night(1),
                    app.night(4),
                    1
                )
            )
            .await
            .0,
            201
        );
    }
    let mut connection = app.redis.connection().await.unwrap().handle();
    // Night 1 lost its deductions (as after a restart), night 2 kept one that never
    // committed, night 3 vanished.
    app.set_reserved_in_redis(hotel, room_type, app.night(1), 0)
        .await;
    app.set_reserved_in_redis(hotel, room_type, app.night(2), 4)
        .await;
    redis::cmd("DEL")
        .arg(app.night_key(hotel, room_type, app.night(3)))
        .query_async::<()>(&mut connection)
        .await
        .unwrap();

    let staff = app.staff();
    assert_problem(
        &app.post("/v1/admin/reconcile", &app.guest("g0"), &json!({}))
            .await,
        403,
        "forbidden",
    );
    let (status, report) = app.post("/v1/admin/reconcile", &staff, &json!({})).await;
    assert_eq!(status, 200, "{report}");
    // Night 3 is not drift: Redis holds what guests ask for, and loads it when they do.
    assert_eq!(report, json!({"checked": 2, "drifted": 2, "repaired": 2}));
    for day in 1..3 {
        assert_eq!(
            app.reserved_in_redis(hotel, room_type, app.night(day))
                .await,
            Some(2),
            "night {day}"
        );
    }
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(3)).await,
        None
    );
    let (_, again) = app.post("/v1/admin/reconcile", &staff, &json!({})).await;
    assert_eq!(again, json!({"checked": 2, "drifted": 0, "repaired": 0}));
    let (status, availability) = app
        .get(&format!(
            "/v1/hotels/{hotel}/availability?check_in={}&check_out={}&rooms=1",
            app.night(3),
            app.night(4)
        ))
        .await;
    assert_eq!(status, 200, "{availability}");
    assert_eq!(availability["room_types"][0]["available"], 3);
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(3)).await,
        Some(2)
    );
}

/// A deduction made after a pass read the in-flight hash, and committed and marked after
/// the pass's Postgres snapshot but before its script ran, leaves a settled entry behind:
/// the script defers its nights instead of erasing the deduction from a snapshot that
/// predates its commit. The next pass finds everything equal and removes the entry.
#[tokio::test]
async fn a_deduction_committed_in_the_middle_of_a_pass_is_not_erased() {
    let app = TestApp::spawn().await;
    let night = app.night(1);
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, night, 1).await;
    // Step 1 and 2 of a pass: the in-flight hash (empty) and the Postgres snapshot.
    let seen_in_flight = app.cache.in_flight(hotel).await.unwrap();
    assert!(seen_in_flight.is_empty());
    let snapshot_at = app.clock.now().timestamp();
    let read_at = app.cache.server_time(hotel).await.unwrap();
    let snapshot = {
        let db = app.db.get().await.unwrap();
        innkeeper::store::inventory::get_nights(&db, hotel, room_type, night, app.night(2))
            .await
            .unwrap()
    };
    assert_eq!(snapshot[0].total_reserved, 0);
    // Meanwhile a booking deducts, commits and is marked.
    let id = Uuid::new_v4();
    assert_eq!(
        app.reserve("g", &stay(id, hotel, room_type, night, app.night(2), 1))
            .await
            .0,
        201
    );
    let marker =
        innkeeper::inventory::keys::KeyLayout::new(&app.prefix).deduction(hotel, id.into());
    let mut connection = app.redis_connection().await;
    for _ in 0..500 {
        let marked: Option<String> = redis::cmd("GET")
            .arg(&marker)
            .query_async(&mut connection)
            .await
            .unwrap();
        if marked.as_deref() == Some("c") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Step 3 of the pass, with what steps 1 and 2 saw.
    let outcome = app
        .cache
        .reconcile(hotel, room_type, &snapshot, (snapshot_at, read_at), &[])
        .await
        .unwrap();
    assert_eq!(
        (outcome.counts.repaired, outcome.counts.deferred),
        (0, 1),
        "{outcome:?}"
    );
    // ...and the next pass is told to look at it again.
    assert_eq!(outcome.revisit, vec![0], "{outcome:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(1)
    );

    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.drifted, report.repaired), (0, 0), "{report:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(1)
    );
    assert!(app.cache.in_flight(hotel).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_reconciler_keeps_a_deduction_still_in_flight() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 1).await;
    let night = app.night(1);
    assert_eq!(
        app.reserve(
            "g",
            &stay(Uuid::new_v4(), hotel, room_type, night, app.night(2), 1)
        )
        .await
        .0,
        201
    );
    // A deduction made in Redis whose Postgres commit has not happened yet, as the booking
    // path leaves it between its two stages.
    let cache = app.cache.clone();
    let in_flight = innkeeper::domain::Stay {
        reservation_id: Uuid::new_v4().into(),
        hotel_id: hotel,
        room_type_id: room_type,
        check_in: night,
        check_out: app.night(2),
        rooms: 2,
    };
    let deadline = app.clock.now().timestamp() + 30;
    assert_eq!(
        cache.reserve(&in_flight, deadline, false).await.unwrap(),
        innkeeper::inventory::PreDeduct::Deducted
    );
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(3)
    );

    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.drifted, report.repaired), (0, 0));
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(3),
        "the in-flight rooms were erased"
    );

    // Past its deadline the transaction has surely ended without committing: repaired.
    app.clock.advance(Duration::seconds(31));
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.drifted, report.repaired), (1, 1));
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(1)
    );
}

#[tokio::test]
async fn the_reconciler_never_counts_a_committed_deduction_twice() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 1).await;
    let night = app.night(1);
    let cache = app.cache.clone();
    // Deducted in Redis and committed in Postgres, but not yet marked committed in Redis:
    // the in-flight entry is still there while Postgres already counts the rooms.
    let id = Uuid::new_v4();
    let hold = innkeeper::domain::Stay {
        reservation_id: id.into(),
        hotel_id: hotel,
        room_type_id: room_type,
        check_in: night,
        check_out: app.night(2),
        rooms: 2,
    };
    assert_eq!(
        cache
            .reserve(&hold, app.clock.now().timestamp() + 30, false)
            .await
            .unwrap(),
        innkeeper::inventory::PreDeduct::Deducted
    );
    let client = app.db.get().await.unwrap();
    let now = app.clock.now();
    client
        .query(
            "SELECT * FROM book_stay($1, $2, $3, 'g', $4, $5, 2, $6, $7, NULL, false)",
            &[
                &id,
                &hotel,
                &room_type,
                &night,
                &app.night(2),
                &now,
                &(now + Duration::minutes(15)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 2);
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!(report.drifted, 0);
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(2)
    );
}

/// The sweeper registers each expiry's give-back in Redis before Postgres ends the stay,
/// as a cancel does, so a reconciler pass meanwhile leaves the stay's nights alone; the
/// release removes the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expiry_is_registered_as_a_give_back_before_postgres_ends_the_stay() {
    let app = TestApp::spawn().await;
    let night = app.night(1);
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, night, 1).await;
    let id = Uuid::new_v4();
    assert_eq!(
        app.reserve("g", &stay(id, hotel, room_type, night, app.night(2), 2))
            .await
            .0,
        201
    );
    app.clock.advance(Duration::seconds(900));
    // Holding the night's inventory row stops the expiry inside its transaction.
    let mut blocker = app.db.get().await.unwrap();
    let lock = blocker.transaction().await.unwrap();
    lock.execute(
        "SELECT 1 FROM room_type_inventory WHERE hotel_id = $1 AND room_type_id = $2 AND date = $3 FOR UPDATE",
        &[&hotel, &room_type, &night],
    )
    .await
    .unwrap();
    let sweeper = app.state.jobs.sweeper.clone();
    let sweep = tokio::spawn(async move { sweeper.run_once().await });

    let registered = loop {
        // The booking's own entry stays, settled ('='), until a pass: wait for the
        // give-back's ('-').
        let entries = app.cache.in_flight(hotel).await.unwrap();
        let entry = entries.iter().find(|(key, _)| *key == id.to_string());
        if let Some((_, entry)) = entry.filter(|(_, entry)| !entry.starts_with('=')) {
            break entry.clone();
        }
        assert!(
            !sweep.is_finished(),
            "the sweeper ended without registering"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(
        registered.starts_with('-'),
        "a give-back, not a deduction: {registered}"
    );
    // Drift the night: with the give-back registered, the pass must not touch it, since
    // its snapshot cannot tell whether the expiry has happened.
    app.set_reserved_in_redis(hotel, room_type, night, 1).await;
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.drifted, report.repaired), (1, 0), "{report:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(1)
    );

    lock.commit().await.unwrap();
    assert_eq!(sweep.await.unwrap().unwrap(), 1);
    assert!(app.cache.in_flight(hotel).await.unwrap().is_empty());
    assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 0);
    // The release gave the two rooms back on top of the drift; the next pass repairs it.
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(-1)
    );
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.drifted, report.repaired), (1, 1), "{report:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(0)
    );
}

/// A give-back in flight (a cancel registered in Redis before Postgres ends the stay, as
/// `Booker::cancel` does) makes the reconciler leave the stay's nights alone: it cannot
/// tell whether its snapshot predates the ending, nor whether Redis has had the rooms
/// back. Past the entry's deadline, Postgres is the truth again.
#[tokio::test]
async fn the_reconciler_leaves_the_nights_of_a_give_back_in_flight_alone() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 1).await;
    let night = app.night(1);
    let id = Uuid::new_v4();
    assert_eq!(
        app.reserve("g", &stay(id, hotel, room_type, night, app.night(2), 1))
            .await
            .0,
        201
    );
    // The booking's own in-flight entry is settled first, so only the give-back is in flight.
    app.state.jobs.reconciler.run_once().await.unwrap();
    let cancel = innkeeper::domain::Stay {
        reservation_id: id.into(),
        hotel_id: hotel,
        room_type_id: room_type,
        check_in: night,
        check_out: app.night(2),
        rooms: 1,
    };
    app.cache
        .begin_give_back(&cancel, app.clock.now().timestamp() + 30)
        .await
        .unwrap();
    // Redis has had the room back; Postgres has not ended the stay yet.
    app.set_reserved_in_redis(hotel, room_type, night, 0).await;
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.drifted, report.repaired), (1, 0), "{report:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(0)
    );

    app.clock.advance(Duration::seconds(31));
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.drifted, report.repaired), (1, 1), "{report:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(1)
    );
}

/// Which pid holds each job's lease, read from `job_leases`.
async fn lease_holders(database_url: &str) -> Vec<(String, u32)> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT job, holder FROM job_leases WHERE expires_at > now() ORDER BY job",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let holder: String = row.get(1);
            let pid = holder
                .strip_prefix("pid ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|pid| pid.parse().ok())
                .unwrap_or_else(|| panic!("a holder names its pid: {holder}"));
            (row.get(0), pid)
        })
        .collect()
}

/// `innkeeper_reconciler_runs_total` of one instance.
async fn reconcile_runs(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("innkeeper_reconciler_runs_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the counter is exported")
}

/// Two real instances on one database, every job at 1 s: each job runs on the instance
/// holding its lease and nowhere else, and when that instance is killed -9 the other
/// takes its jobs over once the leases lapse (two intervals plus the grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_runs_on_one_instance_and_moves_when_it_dies() {
    use crate::faults::{Innkeeper, Servers};
    use crate::helpers::wait_until;
    const SECONDS_30: std::time::Duration = std::time::Duration::from_secs(30);

    let servers = Servers::start("leases");
    let env = [
        ("INNKEEPER_RECONCILE_INTERVAL_SECS", "1"),
        ("INNKEEPER_SWEEP_INTERVAL_SECS", "1"),
        ("INNKEEPER_ARCHIVE_INTERVAL_SECS", "1"),
        ("INNKEEPER_WEBHOOK_INTERVAL_MS", "1000"),
    ];
    let prefix = format!("test:{}:", Uuid::new_v4().simple());
    let mut instances = [
        Innkeeper::start_with(&servers, &prefix, None, &env).await,
        Innkeeper::start_with(&servers, &prefix, None, &env).await,
    ];
    let database_url = servers.database_url();
    let started = std::time::Instant::now();
    let holders = loop {
        let holders = lease_holders(&database_url).await;
        if holders.len() == 4 {
            break holders;
        }
        assert!(started.elapsed().as_secs() < 30, "leases: {holders:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let pids: Vec<u32> = instances.iter().map(|i| i.child.id()).collect();
    assert!(
        holders.iter().all(|(_, pid)| pids.contains(pid)),
        "{holders:?}"
    );
    let reconciler = holders
        .iter()
        .find(|(job, _)| job == "reconciler")
        .map(|(_, pid)| *pid)
        .unwrap();
    let (holder, other) = if reconciler == pids[0] {
        (0, 1)
    } else {
        (1, 0)
    };
    let base = instances[holder].base.clone();
    wait_until("the holder never reconciled", SECONDS_30, || async {
        reconcile_runs(&base).await >= 2.0
    })
    .await;
    assert_eq!(reconcile_runs(&instances[other].base).await, 0.0);

    instances[holder].child.kill().unwrap();
    instances[holder].child.wait().unwrap();
    let killed = std::time::Instant::now();
    wait_until("the jobs never moved", SECONDS_30 * 2, || async {
        let holders = lease_holders(&database_url).await;
        holders.len() == 4 && holders.iter().all(|(_, pid)| *pid == pids[other])
    })
    .await;
    // The last renewal came at most one interval before the kill, and the lease lasts two
    // intervals plus the 5 s grace: it lapses 6 to 7 s after the kill, and the other
    // instance takes it at its next step.
    let moved_after = killed.elapsed();
    assert!(
        moved_after >= std::time::Duration::from_secs(5),
        "a live lease was taken after {moved_after:?}"
    );
    let base = instances[other].base.clone();
    wait_until("the new holder never reconciled", SECONDS_30, || async {
        reconcile_runs(&base).await >= 1.0
    })
    .await;

    // Stopped cleanly (SIGTERM), an instance gives its leases up at once.
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(pids[other] as i32, libc::SIGTERM) };
    instances[other].child.wait().unwrap();
    assert_eq!(lease_holders(&database_url).await, []);
}
