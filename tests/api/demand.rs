//! Costs that follow the change and the demand, not the inventory on sale: the reconciler
//! looks at the nights the journal names and a slice of its full round per pass, and Redis
//! holds the nights guests ask for (or an operator warms), until nobody has asked for a
//! while.

use std::time::Duration;

use chrono::NaiveDate;
use innkeeper::clock::Clock;
use innkeeper::config::InventoryMode;
use innkeeper::jobs::{ReconcileSchedule, Reconciler};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{assert_problem, stay, Options, TestApp};

/// The app's reconciler on a schedule whose full round takes `hotels` passes (one hotel a
/// pass), and that takes journal entries as soon as they are written (the service waits
/// a settle time first; `a_pass_leaves_entries_younger_than_the_settle_time` tests that).
fn one_hotel_a_pass(app: &TestApp, hotels: u64) -> Reconciler {
    app.state
        .jobs
        .reconciler
        .clone()
        .with_schedule(ReconcileSchedule {
            interval: Duration::from_secs(1),
            full_period: Duration::from_secs(hotels),
            settle: Duration::ZERO,
        })
}

/// [`one_hotel_a_pass`] with a round of a thousand hotels: the test's hotels take one.
fn passes(app: &TestApp) -> Reconciler {
    one_hotel_a_pass(app, 1000)
}

/// Puts the full round past every hotel, so the next pass looks at the journal alone (and
/// starts the round over).
async fn round_at_its_end(app: &TestApp) {
    app.db
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE reconcile_round SET next_hotel_id = 9223372036854775807",
            &[],
        )
        .await
        .unwrap();
}

/// Books `rooms` rooms from night `days.0` to the morning of night `days.1`, as guest g.
async fn book(app: &TestApp, hotel: (i64, i64), days: (u64, u64), rooms: i64) {
    let (status, answer) = try_to_book(app, hotel, days, rooms).await;
    assert_eq!(status, 201, "{answer}");
}

/// [`book`], refused: sold out.
async fn sold_out(app: &TestApp, hotel: (i64, i64), days: (u64, u64), rooms: i64) {
    assert_problem(&try_to_book(app, hotel, days, rooms).await, 409, "sold_out");
}

async fn try_to_book(
    app: &TestApp,
    (hotel, room_type): (i64, i64),
    days: (u64, u64),
    rooms: i64,
) -> (u16, serde_json::Value) {
    let body = stay(
        Uuid::new_v4(),
        hotel,
        room_type,
        app.night(days.0),
        app.night(days.1),
        rooms,
    );
    app.reserve("g", &body).await
}

async fn journal_entries(app: &TestApp) -> i64 {
    app.count("night_journal").await
}

async fn availability(app: &TestApp, hotel: i64, check_in: NaiveDate, check_out: NaiveDate) {
    let (status, body) = app
        .get(&format!(
            "/v1/hotels/{hotel}/availability?check_in={check_in}&check_out={check_out}&rooms=1"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_change_to_a_night_is_journaled_with_it_and_a_refused_one_is_not() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 2, app.night(1), 3).await;
    assert!(journal_entries(&app).await > 0, "the inventory write");
    passes(&app).pass_once().await.unwrap();
    assert_eq!(journal_entries(&app).await, 0, "a pass takes the entries");

    book(&app, (hotel, room_type), (1, 3), 2).await;
    let journaled = || async {
        let rows = app
            .db
            .get()
            .await
            .unwrap()
            .query(
                "SELECT hotel_id, room_type_id, first_night, last_night FROM night_journal",
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                (
                    row.get::<_, i64>(0),
                    row.get::<_, i64>(1),
                    row.get::<_, NaiveDate>(2),
                    row.get::<_, NaiveDate>(3),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        journaled().await,
        [(hotel, room_type, app.night(1), app.night(2))]
    );
    passes(&app).pass_once().await.unwrap();

    // Capacity below the rooms reserved: refused, nothing changed, nothing journaled.
    let (status, body) = app
        .put(
            &format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory"),
            &app.staff(),
            &json!({"from": app.night(1), "to": app.night(2), "total_inventory": 1}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // A sold-out booking is refused by Redis, and never reaches Postgres.
    sold_out(&app, (hotel, room_type), (1, 2), 1).await;
    assert_eq!(journaled().await, []);

    // A restriction on a date changes the night before it too (its stays check out then).
    let (status, body) = app
        .put(
            &format!("/v1/hotels/{hotel}/room-types/{room_type}/restrictions"),
            &app.staff(),
            &json!({"from": app.night(3), "to": app.night(4), "closed_to_departure": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        journaled().await,
        [(hotel, room_type, app.night(2), app.night(3))]
    );
}

#[tokio::test]
async fn drift_on_a_touched_night_is_repaired_by_the_next_pass_and_the_pass_looks_at_no_more() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 6).await;
    let reconciler = &passes(&app);
    reconciler.pass_once().await.unwrap();
    // A booking on nights 1 and 2, then Redis loses its deduction on night 1 (a failover)
    // and night 5, which nobody touched, drifts too.
    book(&app, (hotel, room_type), (1, 3), 1).await;
    app.set_reserved_in_redis(hotel, room_type, app.night(1), 0)
        .await;
    app.set_reserved_in_redis(hotel, room_type, app.night(5), 3)
        .await;

    round_at_its_end(&app).await;
    let report = reconciler.pass_once().await.unwrap();
    assert_eq!(
        (report.checked, report.drifted, report.repaired),
        (2, 1, 1),
        "only the booked nights are looked at: {report:?}"
    );
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(1)
    );
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(5)).await,
        Some(3),
        "an untouched night waits for the full round"
    );
    // The round started over, and this hotel is all of it.
    let report = reconciler.pass_once().await.unwrap();
    assert_eq!((report.checked, report.repaired), (6, 1), "{report:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(5)).await,
        Some(0)
    );
}

#[tokio::test]
async fn drift_on_an_untouched_night_is_repaired_within_one_full_round() {
    let app = TestApp::spawn().await;
    let mut hotels = Vec::new();
    for _ in 0..4 {
        hotels.push(app.hotel_with_inventory(1.0, 5, app.night(1), 3).await);
    }
    let reconciler = one_hotel_a_pass(&app, 4);
    // One round, to take what the set-up journaled and start from a clean one.
    round_at_its_end(&app).await;
    for _ in 0..4 {
        reconciler.pass_once().await.unwrap();
    }
    assert_eq!(journal_entries(&app).await, 0);

    let (hotel, room_type) = hotels[2];
    app.set_reserved_in_redis(hotel, room_type, app.night(2), 4)
        .await;
    let mut repaired_at = None;
    for pass in 1..=4 {
        let report = reconciler.pass_once().await.unwrap();
        assert!(
            report.checked <= 3,
            "one hotel of three nights a pass: {report:?}"
        );
        if report.repaired > 0 {
            repaired_at = Some(pass);
        }
    }
    assert!(repaired_at.is_some(), "not repaired within a round");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(2)).await,
        Some(0)
    );
}

/// Bookings race background passes (journal passes and full ones) on the same nights. A
/// pass that erased a deduction still in flight would leave Redis short of it for good
/// once the booking commits (no later pass runs here to repair it), so after the load
/// Redis must equal Postgres on every night.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pass_erases_a_deduction_in_flight_under_concurrent_bookings() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 1000, app.night(1), 6).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let passes = {
        let (reconciler, stop) = (app.state.jobs.reconciler.clone(), stop.clone());
        let round = one_hotel_a_pass(&app, 1);
        tokio::spawn(async move {
            let mut passes = 0;
            loop {
                round.pass_once().await.unwrap();
                if passes % 3 == 0 {
                    reconciler.run_once().await.unwrap();
                }
                passes += 1;
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break passes;
                }
            }
        })
    };
    let bookings = (0..8).map(|worker| {
        let app = &app;
        async move {
            for n in 0..25u64 {
                let first = 1 + (worker + n) % 4;
                let nights = 1 + n % 3;
                let answer = app
                    .reserve(
                        &format!("g{worker}"),
                        &stay(
                            Uuid::new_v4(),
                            hotel,
                            room_type,
                            app.night(first),
                            app.night((first + nights).min(7)),
                            1,
                        ),
                    )
                    .await;
                assert_eq!(answer.0, 201, "{}", answer.1);
            }
        }
    });
    futures::future::join_all(bookings).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = passes.await.unwrap();
    assert!(passes >= 1, "{passes}");
    // Every commit has been marked in Redis once the bookings are answered.
    for day in 1..7 {
        let night = app.night(day);
        assert_eq!(
            app.reserved_in_redis(hotel, room_type, night).await,
            Some(app.reserved_in_postgres(hotel, room_type, night).await),
            "night {day}"
        );
    }
}

/// Seconds until a key expires (`-2` once it has).
async fn ttl(app: &TestApp, key: String) -> i64 {
    let mut connection = app.redis_connection().await;
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// Sets a key's TTL, as if it had sat idle until then.
async fn expire_in(app: &TestApp, key: String, seconds: i64) {
    let mut connection = app.redis_connection().await;
    redis::cmd("EXPIRE")
        .arg(key)
        .arg(seconds)
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cold_night_is_loaded_when_asked_for_and_an_idle_one_leaves() {
    const IDLE: i64 = 3600;
    let app = TestApp::spawn_with(Options {
        env: vec![("INNKEEPER_NIGHT_IDLE_TTL", IDLE.to_string())],
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = app.cold_hotel_with_inventory(1.0, 5, app.night(1), 4).await;
    let key = |day: u64| app.night_key(hotel, room_type, app.night(day));
    for day in 1..5 {
        assert_eq!(
            app.reserved_in_redis(hotel, room_type, app.night(day))
                .await,
            None,
            "an inventory write loads nothing"
        );
    }
    // An availability read loads the nights it asks for, and no others, for the idle TTL.
    availability(&app, hotel, app.night(1), app.night(2)).await;
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(0)
    );
    assert!((IDLE - 60..=IDLE).contains(&ttl(&app, key(1)).await));
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(2)).await,
        None
    );
    // So does a booking.
    book(&app, (hotel, room_type), (3, 4), 1).await;
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(3)).await,
        Some(1)
    );
    // An inventory change updates the nights Redis holds and loads no other.
    let (status, body) = app
        .put(
            &format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory"),
            &app.staff(),
            &json!({"from": app.night(1), "to": app.night(5), "total_inventory": 4}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let capacity = |day: u64| {
        let key = key(day);
        let app = &app;
        async move {
            let mut connection = app.redis_connection().await;
            redis::cmd("HGET")
                .arg(key)
                .arg("cap")
                .query_async::<Option<i64>>(&mut connection)
                .await
                .unwrap()
        }
    };
    assert_eq!(capacity(1).await, Some(4));
    assert_eq!(capacity(2).await, None);
    assert_eq!(capacity(3).await, Some(4));

    // Both nights have sat idle for all but 100 s of their TTL. Night 1 is read again,
    // and a booking asks for night 3 (sold out, but asked for): both get the whole idle
    // TTL again. Night 4, loaded by a read and not asked for since, is left to expire.
    availability(&app, hotel, app.night(4), app.night(5)).await;
    for day in [1, 3, 4] {
        expire_in(&app, key(day), 100).await;
    }
    availability(&app, hotel, app.night(1), app.night(2)).await;
    sold_out(&app, (hotel, room_type), (3, 4), 4).await;
    for day in [1, 3] {
        assert!(
            (IDLE - 60..=IDLE).contains(&ttl(&app, key(day)).await),
            "night {day}"
        );
    }
    assert!(ttl(&app, key(4)).await <= 100);

    // Night 3 leaves (its idle time runs out); a pass neither counts it as drift nor
    // loads it, and the next ask brings it back from Postgres with its booking.
    expire_in(&app, key(3), 1).await;
    crate::helpers::wait_until("night 3 never left", Duration::from_secs(30), || async {
        ttl(&app, key(3)).await == -2
    })
    .await;
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!((report.checked, report.drifted), (2, 0), "{report:?}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(3)).await,
        None
    );
    availability(&app, hotel, app.night(3), app.night(4)).await;
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(3)).await,
        Some(1)
    );
}

/// A night held since before nights came on demand (kept until it had passed) is cut to
/// the idle TTL by the next pass that looks at it; one within it keeps its own.
#[tokio::test]
async fn a_pass_cuts_a_night_held_past_its_idle_ttl_down_to_it() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
    let key = |day: u64| app.night_key(hotel, room_type, app.night(day));
    expire_in(&app, key(1), 200 * 86_400).await;
    expire_in(&app, key(2), 100).await;
    app.state.jobs.reconciler.run_once().await.unwrap();
    let idle = 6 * 3600;
    assert!((idle - 60..=idle).contains(&ttl(&app, key(1)).await));
    assert!(ttl(&app, key(2)).await <= 100);
}

/// A deduction whose booking died before Postgres heard of it changes nothing Postgres
/// journals. A pass that looks at its hotel for another change drops its in-flight entry
/// once past its deadline, and journals its nights, which the next pass repairs.
#[tokio::test]
async fn a_deduction_left_past_its_deadline_is_repaired_by_the_pass_after_it_is_dropped() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 6).await;
    let reconciler = passes(&app);
    reconciler.pass_once().await.unwrap();
    let stranded = innkeeper::domain::Stay {
        reservation_id: Uuid::new_v4().into(),
        hotel_id: hotel,
        room_type_id: room_type,
        check_in: app.night(1),
        check_out: app.night(3),
        rooms: 2,
    };
    let deadline = app.clock.now().timestamp() + 30;
    assert_eq!(
        app.cache.reserve(&stranded, deadline, false).await.unwrap(),
        innkeeper::inventory::PreDeduct::Deducted
    );
    app.clock.advance(chrono::Duration::seconds(60));
    book(&app, (hotel, room_type), (5, 6), 1).await;

    round_at_its_end(&app).await;
    let report = reconciler.pass_once().await.unwrap();
    assert_eq!(report.checked, 1, "night 5 alone: {report:?}");
    let stranded_id = stranded.reservation_id.to_string();
    assert!(
        !app.cache
            .in_flight(hotel)
            .await
            .unwrap()
            .iter()
            .any(|(id, _)| *id == stranded_id),
        "dropped past its deadline"
    );
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(2),
        "not looked at yet"
    );
    round_at_its_end(&app).await;
    let report = reconciler.pass_once().await.unwrap();
    // Nights 1 and 2, and night 5 again if its booking's entry was still unsettled.
    assert!(report.checked >= 2, "{report:?}");
    assert_eq!(report.repaired, 2, "{report:?}");
    for day in 1..3 {
        assert_eq!(
            app.reserved_in_redis(hotel, room_type, app.night(day))
                .await,
            Some(0)
        );
    }
}

/// The service's own schedule: a pass leaves an entry until it is old enough that any
/// Redis write based on a read from before its change has landed.
#[tokio::test]
async fn a_pass_leaves_entries_younger_than_the_settle_time() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
    passes(&app).pass_once().await.unwrap();
    book(&app, (hotel, room_type), (1, 2), 1).await;
    round_at_its_end(&app).await;
    let report = app.state.jobs.reconciler.pass_once().await.unwrap();
    assert_eq!(report.checked, 0, "{report:?}");
    assert_eq!(journal_entries(&app).await, 1);
}

#[tokio::test]
async fn the_db_mode_books_and_answers_availability_without_loading_redis() {
    let app = TestApp::spawn_with_mode(InventoryMode::Db).await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
    availability(&app, hotel, app.night(1), app.night(3)).await;
    book(&app, (hotel, room_type), (1, 3), 1).await;
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        None
    );
    // Its passes only empty the journal.
    assert!(journal_entries(&app).await > 0);
    let report = passes(&app).pass_once().await.unwrap();
    assert_eq!(report.checked, 0);
    assert_eq!(journal_entries(&app).await, 0);
}

#[tokio::test]
async fn staff_warm_a_hotel_before_a_sale() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.cold_hotel_with_inventory(1.0, 5, app.night(1), 3).await;
    let path = format!("/v1/hotels/{hotel}/inventory/warm");
    let body = json!({"from": app.night(0), "to": app.night(5)});
    assert_problem(
        &app.post(&path, &app.guest("g"), &body).await,
        403,
        "forbidden",
    );
    assert_problem(
        &app.post("/v1/hotels/999999999/inventory/warm", &app.staff(), &body)
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.post(
            &path,
            &app.staff(),
            &json!({"from": app.night(5), "to": app.night(1)}),
        )
        .await,
        422,
        "validation_failed",
    );
    assert_problem(
        &app.post(
            &path,
            &app.staff(),
            &json!({"from": app.night(1), "to": "262143-01-01"}),
        )
        .await,
        422,
        "validation_failed",
    );
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        None
    );

    let (status, warmed) = app.post(&path, &app.staff(), &body).await;
    assert_eq!(status, 200, "{warmed}");
    assert_eq!(
        warmed,
        json!({"hotel_id": hotel, "from": app.night(0), "to": app.night(5), "loaded": 3})
    );
    for day in 1..4 {
        assert_eq!(
            app.reserved_in_redis(hotel, room_type, app.night(day))
                .await,
            Some(0)
        );
    }
    // Nights Redis holds are kept as they are (they may carry deductions in flight).
    app.set_reserved_in_redis(hotel, room_type, app.night(1), 2)
        .await;
    let (_, again) = app.post(&path, &app.staff(), &body).await;
    assert_eq!(again["loaded"], 0);
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(2)
    );
}
