//! Stay restrictions: set and read through the API, enforced by reserve.lua and by
//! `book_stay()` in both inventory modes, each at its boundary nights, shown by
//! availability, and repaired by the reconciler.

use std::time::Duration;

use chrono::{Days, NaiveDate};
use futures::future::join_all;
use innkeeper::clock::Clock;
use innkeeper::config::InventoryMode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{assert_problem, stay, TestApp};

const MODES: [InventoryMode; 2] = [InventoryMode::Redis, InventoryMode::Db];

fn restrictions_path(hotel: i64, room_type: i64) -> String {
    format!("/v1/hotels/{hotel}/room-types/{room_type}/restrictions")
}

/// Sets restrictions on `[from, to)` as staff.
async fn restrict(app: &TestApp, hotel: (i64, i64), from: NaiveDate, to: NaiveDate, set: Value) {
    let mut body = json!({"from": from, "to": to});
    body.as_object_mut()
        .unwrap()
        .extend(set.as_object().unwrap().clone());
    let (status, days) = app
        .put(&restrictions_path(hotel.0, hotel.1), &app.staff(), &body)
        .await;
    assert_eq!(status, 200, "{days}");
}

/// Books `[check_in, check_out)` as a guest and returns the answer.
async fn book(
    app: &TestApp,
    hotel: (i64, i64),
    check_in: NaiveDate,
    check_out: NaiveDate,
) -> (u16, Value) {
    let body = stay(Uuid::new_v4(), hotel.0, hotel.1, check_in, check_out, 1);
    app.reserve("wanderer", &body).await
}

/// Asserts a 422 `restriction_violated` naming `restriction` and `night`, and that the
/// refused stay reserved nothing in Postgres (or Redis).
#[track_caller]
fn assert_breaks(answer: &(u16, Value), restriction: &str, night: NaiveDate) {
    assert_problem(answer, 422, "restriction_violated");
    assert_eq!(answer.1["field"], restriction, "{}", answer.1);
    let detail = answer.1["detail"].as_str().unwrap();
    assert!(detail.contains(&night.to_string()), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restrictions_are_set_per_field_and_read_back_per_date() {
    let app = TestApp::spawn().await;
    let hotel = app.hotel_with_inventory(1.0, 5, app.night(1), 10).await;
    let path = restrictions_path(hotel.0, hotel.1);
    let (d1, d3) = (app.night(1), app.night(3));
    restrict(
        &app,
        hotel,
        d1,
        d3,
        json!({"min_stay": 3, "stop_sell": true}),
    )
    .await;
    // Another field alone keeps the first two; null clears one.
    restrict(
        &app,
        hotel,
        d1,
        d3,
        json!({"closed_to_arrival": true, "stop_sell": null}),
    )
    .await;
    let (status, days) = app
        .get_as(
            &format!("{path}?from={d1}&to={}", app.night(4)),
            &app.staff(),
        )
        .await;
    assert_eq!(status, 200, "{days}");
    let expected_set = json!({
        "min_stay": 3, "max_stay": null, "closed_to_arrival": true,
        "closed_to_departure": false, "stop_sell": false,
    });
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 3, "every date of the range");
    for (day, date) in days.iter().zip([d1, app.night(2)]) {
        let mut expected = expected_set.clone();
        expected["date"] = json!(date);
        assert_eq!(day, &expected);
    }
    assert_eq!(days[2]["min_stay"], Value::Null);
    assert_eq!(days[2]["closed_to_arrival"], false);

    // The answer is the range as it now stands; null clears a stay limit.
    let (status, days) = app
        .put(
            &path,
            &app.staff(),
            &json!({"from": d1, "to": app.night(2), "min_stay": null}),
        )
        .await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(days.as_array().unwrap().len(), 1);
    assert_eq!(days[0]["min_stay"], Value::Null);
    assert_eq!(days[0]["closed_to_arrival"], true);

    let guest = app.guest("g");
    let body = json!({"from": d1, "to": d3, "min_stay": 2});
    assert_problem(&app.put(&path, &guest, &body).await, 403, "forbidden");
    for (bad, field) in [
        (json!({"from": d1, "to": d3, "min_stay": 0}), "min_stay"),
        (json!({"from": d1, "to": d3, "max_stay": 1001}), "max_stay"),
        (
            json!({"from": d1, "to": d3, "min_stay": 4, "max_stay": 2}),
            "max_stay",
        ),
        (json!({"from": d3, "to": d1, "stop_sell": true}), "to"),
        (
            json!({"from": d1, "to": d3, "min_stay": 3_000_000_000i64}),
            "min_stay",
        ),
        (
            json!({"from": d1, "to": d3, "stop_sell": "yes"}),
            "stop_sell",
        ),
    ] {
        let answer = app.put(&path, &app.staff(), &bad).await;
        assert_problem(&answer, 422, "validation_failed");
        assert_eq!(answer.1["field"], field, "{bad}");
    }
    let unknown = restrictions_path(hotel.0, hotel.1 + 1000);
    assert_problem(
        &app.put(
            &unknown,
            &app.staff(),
            &json!({"from": d1, "to": d3, "stop_sell": true}),
        )
        .await,
        404,
        "not_found",
    );
}

/// Every restriction at the nights on either side of where it binds, in both modes. Each
/// refused stay leaves Postgres' counts (and, in redis mode, Redis') as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_restriction_binds_exactly_where_it_is_set() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let hotel = app.hotel_with_inventory(1.0, 20, app.night(1), 20).await;
        let d = |days: u64| app.night(days);
        restrict(&app, hotel, d(3), d(4), json!({"min_stay": 3})).await;
        restrict(&app, hotel, d(6), d(7), json!({"max_stay": 2})).await;
        restrict(
            &app,
            hotel,
            d(9),
            d(10),
            json!({"closed_to_departure": true}),
        )
        .await;
        restrict(&app, hotel, d(12), d(13), json!({"stop_sell": true})).await;
        restrict(
            &app,
            hotel,
            d(15),
            d(16),
            json!({"closed_to_arrival": true}),
        )
        .await;
        // Warm every night in Redis first, so the script is what judges in redis mode.
        let (status, _) = app
            .get(&format!(
                "/v1/hotels/{}/availability?check_in={}&check_out={}",
                hotel.0,
                d(1),
                d(19)
            ))
            .await;
        assert_eq!(status, 200);
        let refused = [
            (d(3), d(5), "min_stay", d(3)),
            (d(6), d(9), "max_stay", d(6)),
            (d(7), d(9), "closed_to_departure", d(9)),
            (d(11), d(14), "stop_sell", d(12)),
            (d(12), d(13), "stop_sell", d(12)),
            (d(15), d(16), "closed_to_arrival", d(15)),
        ];
        if mode == InventoryMode::Redis {
            // The nights carry what reserve.lua judges by, the closed departure on the
            // night before its date.
            let mut connection = app.redis_connection().await;
            for (days, field, value) in [
                (3, "mins", "3"),
                (6, "maxs", "2"),
                (8, "ctdn", "1"),
                (9, "ctdn", "0"),
                (12, "ss", "1"),
                (15, "cta", "1"),
            ] {
                let held: Option<String> = redis::cmd("HGET")
                    .arg(app.night_key(hotel.0, hotel.1, d(days)))
                    .arg(field)
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                assert_eq!(held.as_deref(), Some(value), "night {days} {field}");
            }
        }
        for (check_in, check_out, restriction, night) in refused {
            let answer = book(&app, hotel, check_in, check_out).await;
            assert_breaks(&answer, restriction, night);
            for days in 1..20 {
                assert_eq!(app.reserved_in_postgres(hotel.0, hotel.1, d(days)).await, 0);
                if mode == InventoryMode::Redis {
                    assert_eq!(
                        app.reserved_in_redis(hotel.0, hotel.1, d(days)).await,
                        Some(0)
                    );
                }
            }
        }
        let allowed = [
            (d(3), d(6)),   // three nights from the minimum's night
            (d(2), d(4)),   // arriving the night before it
            (d(6), d(8)),   // the maximum exactly
            (d(5), d(8)),   // three nights, arriving the night before it
            (d(7), d(10)),  // the closed date as a night of the stay
            (d(10), d(12)), // checking out on the stop-sell date
            (d(14), d(16)), // through the closed-to-arrival night
        ];
        for (check_in, check_out) in allowed {
            let answer = book(&app, hotel, check_in, check_out).await;
            assert_eq!(
                answer.0, 201,
                "{mode:?} {check_in}..{check_out}: {}",
                answer.1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_may_override_restrictions_and_guests_may_not() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let hotel = app.hotel_with_inventory(1.0, 5, app.night(1), 5).await;
        restrict(
            &app,
            hotel,
            app.night(1),
            app.night(2),
            json!({"min_stay": 3}),
        )
        .await;
        let mut body = stay(
            Uuid::new_v4(),
            hotel.0,
            hotel.1,
            app.night(1),
            app.night(2),
            1,
        );
        body["override_restrictions"] = json!(true);
        assert_problem(&app.reserve("sneaky", &body).await, 403, "forbidden");
        assert_eq!(
            app.reserved_in_postgres(hotel.0, hotel.1, app.night(1))
                .await,
            0
        );
        body["override_restrictions"] = json!(false);
        assert_breaks(
            &app.post("/v1/reservations", &app.staff(), &body).await,
            "min_stay",
            app.night(1),
        );
        body["override_restrictions"] = json!(true);
        let (status, booked) = app.post("/v1/reservations", &app.staff(), &body).await;
        assert_eq!(status, 201, "{mode:?}: {booked}");
        assert_eq!(
            app.reserved_in_postgres(hotel.0, hotel.1, app.night(1))
                .await,
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn availability_names_what_the_stay_breaks() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let hotel = app.hotel_with_inventory(1.0, 5, app.night(1), 6).await;
        restrict(
            &app,
            hotel,
            app.night(1),
            app.night(2),
            json!({"min_stay": 3, "closed_to_arrival": true}),
        )
        .await;
        let ask = |nights: u64| {
            format!(
                "/v1/hotels/{}/availability?check_in={}&check_out={}",
                hotel.0,
                app.night(1),
                app.night(1) + Days::new(nights)
            )
        };
        let (status, short) = app.get(&ask(2)).await;
        assert_eq!(status, 200, "{short}");
        let row = &short["room_types"][0];
        assert_eq!(row["available"], 0, "{mode:?}: {short}");
        assert_eq!(
            row["restrictions"],
            json!(["closed_to_arrival", "min_stay"])
        );
        restrict(
            &app,
            hotel,
            app.night(1),
            app.night(2),
            json!({"closed_to_arrival": false}),
        )
        .await;
        let (_, long) = app.get(&ask(3)).await;
        let row = &long["room_types"][0];
        assert_eq!(row["available"], 5, "{mode:?}: {long}");
        assert_eq!(row["restrictions"], json!([]));
    }
}

/// A restriction that reached Postgres but not Redis (a lost refresh): the script admits
/// the stay, `book_stay()` refuses it, and the deduction is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_judges_a_restriction_redis_has_not_heard_of() {
    let app = TestApp::spawn().await;
    let hotel = app.hotel_with_inventory(1.0, 5, app.night(1), 5).await;
    let night = app.night(2);
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "INSERT INTO room_type_restrictions (hotel_id, room_type_id, date, stop_sell) \
             VALUES ($1, $2, $3, true)",
            &[&hotel.0, &hotel.1, &night],
        )
        .await
        .unwrap();
    let answer = book(&app, hotel, app.night(1), app.night(3)).await;
    assert_breaks(&answer, "stop_sell", night);
    assert_eq!(
        app.reserved_in_redis(hotel.0, hotel.1, night).await,
        Some(0)
    );
    assert_eq!(app.reserved_in_postgres(hotel.0, hotel.1, night).await, 0);
    // The reconciler brings the restriction to Redis: the script now refuses it itself.
    let (status, report) = app
        .post("/v1/admin/reconcile", &app.staff(), &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert!(report["repaired"].as_i64().unwrap() >= 1, "{report}");
    let mut connection = app.redis_connection().await;
    let stop_sell: Option<String> = redis::cmd("HGET")
        .arg(app.night_key(hotel.0, hotel.1, night))
        .arg("ss")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(stop_sell.as_deref(), Some("1"));
}

/// 600 guests rush a one-night stay under a two-night minimum: every one gets 422 from
/// Redis, and Postgres commits no booking transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rush_on_a_restricted_stay_never_reaches_postgres() {
    let app = TestApp::spawn().await;
    let hotel = app.hotel_with_inventory(1.0, 100, app.night(1), 3).await;
    restrict(
        &app,
        hotel,
        app.night(1),
        app.night(2),
        json!({"min_stay": 2}),
    )
    .await;
    assert_breaks(
        &book(&app, hotel, app.night(1), app.night(2)).await,
        "min_stay",
        app.night(1),
    );
    let client = app.db.get().await.unwrap();
    let transactions = || async {
        // Other backends report their counts at most a second late.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client
            .query_one(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database \
                 WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = transactions().await;
    let answers = join_all((0..600).map(|n| {
        let body = stay(
            Uuid::new_v4(),
            hotel.0,
            hotel.1,
            app.night(1),
            app.night(2),
            1,
        );
        let app = &app;
        async move { app.reserve(&format!("rusher-{n}"), &body).await }
    }))
    .await;
    for answer in &answers {
        assert_breaks(answer, "min_stay", app.night(1));
    }
    // This test's own reads of the statistics are transactions too: a handful, where a
    // rush through Postgres would be at least 600.
    let during = transactions().await - before;
    assert!(
        during < 20,
        "{during} transactions for 600 refused attempts"
    );
    assert_eq!(app.count("reservations").await, 0);
}

/// Random stays against random restriction calendars get the same verdict from
/// reserve.lua, from `book_stay()` and from the plain Rust model of the rules
/// (`domain::broken_by`): the first restriction broken and its date, or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_script_postgres_and_the_model_agree_on_every_stay() {
    use innkeeper::domain::{broken_by, ReservationId, RestrictionDay, Stay};
    use innkeeper::inventory::{LoadMode, PreDeduct};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    const DATES: u64 = 10;
    let app = TestApp::spawn().await;
    let hotel = app
        .hotel_with_inventory(1.0, 1000, app.night(1), DATES)
        .await;
    let date = |index: u64| app.night(1) + Days::new(index);
    let flag = |percent: u32| (0..100u32).prop_map(move |roll| roll < percent);
    let day = (
        proptest::option::weighted(0.3, 1..5i32),
        proptest::option::weighted(0.3, 1..5i32),
        flag(20),
        flag(20),
        flag(10),
    );
    let case = (
        proptest::collection::vec(day, DATES as usize),
        (0..DATES - 1).prop_flat_map(|check_in| (Just(check_in), check_in + 1..DATES)),
    );
    let mut runner = TestRunner::deterministic();
    let mut client = app.db.get().await.unwrap();
    let mut verdicts_seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (calendar, (check_in, check_out)) = case.new_tree(&mut runner).unwrap().current();
        let calendar: Vec<RestrictionDay> = calendar
            .into_iter()
            .enumerate()
            .map(
                |(index, (min_stay, max_stay, cta, ctd, stop_sell))| RestrictionDay {
                    date: date(index as u64),
                    min_stay,
                    max_stay,
                    closed_to_arrival: cta,
                    closed_to_departure: ctd,
                    stop_sell,
                },
            )
            .collect();
        client
            .execute("DELETE FROM room_type_restrictions", &[])
            .await
            .unwrap();
        for day in &calendar {
            client
                .execute(
                    "INSERT INTO room_type_restrictions (hotel_id, room_type_id, date, min_stay, \
                     max_stay, closed_to_arrival, closed_to_departure, stop_sell) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &hotel.0,
                        &hotel.1,
                        &day.date,
                        &day.min_stay,
                        &day.max_stay,
                        &day.closed_to_arrival,
                        &day.closed_to_departure,
                        &day.stop_sell,
                    ],
                )
                .await
                .unwrap();
        }
        let nights = innkeeper::store::inventory::get_nights(
            &client,
            hotel.0,
            hotel.1,
            date(0),
            date(DATES),
        )
        .await
        .unwrap();
        app.cache
            .load(hotel.0, hotel.1, &nights, LoadMode::Rules)
            .await
            .unwrap();
        let (check_in, check_out) = (date(check_in), date(check_out));

        let model = broken_by(check_in, check_out, |d| {
            calendar.iter().find(|day| day.date == d).copied()
        })
        .first()
        .map(|(restriction, night)| (restriction.name().to_owned(), *night));

        let stay = Stay {
            reservation_id: ReservationId::new(Uuid::new_v4()),
            hotel_id: hotel.0,
            room_type_id: hotel.1,
            check_in,
            check_out,
            rooms: 1,
        };
        let script = match app.cache.reserve(&stay, 0, false).await.unwrap() {
            PreDeduct::Deducted => {
                app.cache.release_deduction(&stay).await.unwrap();
                None
            }
            PreDeduct::Restricted { night, restriction } => {
                Some((restriction.name().to_owned(), night))
            }
            other => panic!("{other:?}"),
        };

        let tx = client.transaction().await.unwrap();
        let row = tx
            .query_one(
                "SELECT outcome, restriction, restricted_night FROM book_stay($1, $2, $3, 'model', \
                 $4, $5, 1, now(), now() + interval '15 minutes', NULL, false)",
                &[&Uuid::new_v4(), &hotel.0, &hotel.1, &check_in, &check_out],
            )
            .await
            .unwrap();
        drop(tx);
        let postgres = match row.get::<_, &str>("outcome") {
            "created" => None,
            "restricted" => Some((
                row.get::<_, String>("restriction"),
                row.get::<_, NaiveDate>("restricted_night"),
            )),
            other => panic!("book_stay() answered {other}"),
        };

        assert_eq!(
            script, model,
            "reserve.lua, {check_in}..{check_out}: {calendar:?}"
        );
        assert_eq!(
            postgres, model,
            "book_stay(), {check_in}..{check_out}: {calendar:?}"
        );
        verdicts_seen.insert(model.map(|(restriction, _)| restriction));
    }
    // The cases reached every verdict, so the agreement says something about each.
    assert_eq!(verdicts_seen.len(), 6, "{verdicts_seen:?}");
}

/// A restriction that appears under the nights' row locks, between `book_stay()`'s two
/// checks (here a trigger sets a stop-sell as the tenth room is reserved, standing in for
/// a restrictions PUT racing the booking), refuses that booking at the second check. In a
/// group commit it aborts the shared transaction: the batch must then go one by one, and
/// every booking answered created must be stored.
#[tokio::test]
async fn a_restriction_set_under_the_row_locks_refuses_only_its_booking() {
    use innkeeper::booking::group_commit::GroupCommitter;
    use innkeeper::store::reservations::Committed;

    let app = TestApp::spawn().await;
    let hotel = app.hotel_with_inventory(1.0, 20, app.night(1), 2).await;
    app.db
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION stop_selling_at_ten() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               INSERT INTO room_type_restrictions (hotel_id, room_type_id, date, stop_sell) \
               VALUES (NEW.hotel_id, NEW.room_type_id, NEW.date, true) ON CONFLICT DO NOTHING; \
               RETURN NULL; \
             END $$; \
             CREATE TRIGGER stop_selling_at_ten AFTER UPDATE ON room_type_inventory \
             FOR EACH ROW WHEN (NEW.total_reserved = 10) EXECUTE FUNCTION stop_selling_at_ten();",
        )
        .await
        .unwrap();
    let committer = std::sync::Arc::new(GroupCommitter::new(
        app.db.clone(),
        Duration::from_secs(10),
        None,
    ));
    let booking = |guest: usize| app.two_nights(hotel.0, hotel.1, &format!("g{guest}"));
    // On this single-threaded runtime all ten are queued before the drainer first runs.
    let outcomes = join_all((0..10).map(booking).map(|b| committer.commit(b))).await;
    let created: Vec<Uuid> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Ok(Committed::Created(reservation)) => Some(reservation.stay.reservation_id.as_uuid()),
            _ => None,
        })
        .collect();
    let refused = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(Committed::Restricted { .. })))
        .count();
    assert_eq!((created.len(), refused), (9, 1), "{outcomes:?}");
    let stored = app.stored(&created).await;
    assert_eq!(stored, 9, "every booking answered created is stored");
    assert_eq!(
        app.reserved_in_postgres(hotel.0, hotel.1, app.night(1))
            .await,
        9
    );
}

/// A pass whose Postgres read predates a restrictions change leaves the nights that
/// change rewrote alone, rather than putting the old restrictions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_never_reverts_a_change_made_during_its_pass() {
    let app = TestApp::spawn().await;
    let night = app.night(1);
    let hotel = app.hotel_with_inventory(1.0, 5, night, 1).await;
    // Steps 1 and 2 of a pass: the clocks, then the Postgres read (no restrictions yet).
    let snapshot_at = app.clock.now().timestamp();
    let read_at = app.cache.server_time(hotel.0).await.unwrap();
    let stale = {
        let db = app.db.get().await.unwrap();
        innkeeper::store::inventory::get_nights(&db, hotel.0, hotel.1, night, app.night(2))
            .await
            .unwrap()
    };
    restrict(&app, hotel, night, app.night(2), json!({"min_stay": 3})).await;
    // Step 3, with the stale read: the night is left for the next pass.
    let outcome = app
        .cache
        .reconcile(hotel.0, hotel.1, &stale, (snapshot_at, read_at), &[])
        .await
        .unwrap();
    assert_eq!(
        (outcome.counts.repaired, outcome.counts.deferred),
        (0, 1),
        "{outcome:?}"
    );
    // ...and the next pass is told to look at it again.
    assert_eq!(outcome.revisit, vec![0], "{outcome:?}");
    let mut connection = app.redis_connection().await;
    let min_stay: Option<String> = redis::cmd("HGET")
        .arg(app.night_key(hotel.0, hotel.1, night))
        .arg("mins")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(min_stay.as_deref(), Some("3"));
    // A whole pass reads Postgres afresh and finds nothing to repair.
    let report = app.state.jobs.reconciler.run_once().await.unwrap();
    assert_eq!(report.repaired, 0, "{report:?}");
}
