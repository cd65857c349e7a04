//! The reservation engine, in both inventory modes: contention, overlapping stays, retry
//! storms, the lifecycle, a cold cache and the Postgres re-check.

use std::collections::HashMap;

use futures::future::join_all;
use innkeeper::config::InventoryMode;
use innkeeper::devservices::{Durability, RedisServer};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{assert_problem, stay, Options, TestApp};

const MODES: [InventoryMode; 2] = [InventoryMode::Redis, InventoryMode::Db];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_guests_race_for_eleven_rooms() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.10, 10, app.night(1), 3).await;
        let attempts = (0..500).map(|n| {
            let app = &app;
            async move {
                let body = stay(
                    Uuid::new_v4(),
                    hotel,
                    room_type,
                    app.night(1),
                    app.night(4),
                    1,
                );
                app.reserve(&format!("guest-{n}"), &body).await
            }
        });
        let answers = join_all(attempts).await;
        let created = answers.iter().filter(|(status, _)| *status == 201).count();
        let sold_out = answers
            .iter()
            .filter(|(status, body)| *status == 409 && body["code"] == "sold_out")
            .count();
        assert_eq!(
            (created, sold_out),
            (11, 489),
            "{mode:?}: {:?}",
            answers.iter().map(|a| a.0).collect::<Vec<_>>()
        );
        for day in 1..4 {
            let night = app.night(day);
            assert_eq!(
                app.reserved_in_postgres(hotel, room_type, night).await,
                11,
                "{mode:?}"
            );
            if mode == InventoryMode::Redis {
                assert_eq!(
                    app.reserved_in_redis(hotel, room_type, night).await,
                    Some(11)
                );
            }
        }
        assert_eq!(app.count("reservations").await, 11);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_stays_never_overfill_a_night() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(0), 8).await;
        let attempts = (0..200u64).map(|n| {
            let app = &app;
            async move {
                let start = n % 6;
                let length = 1 + (n * 7) % 3;
                let body = stay(
                    Uuid::new_v4(),
                    hotel,
                    room_type,
                    app.night(start),
                    app.night(start + length),
                    1 + (n % 2) as i64,
                );
                app.reserve(&format!("guest-{n}"), &body).await
            }
        });
        let answers = join_all(attempts).await;
        assert!(
            answers
                .iter()
                .all(|(status, body)| *status == 201 || body["code"] == "sold_out"),
            "{mode:?}"
        );
        for day in 0..8 {
            let night = app.night(day);
            let in_postgres = app.reserved_in_postgres(hotel, room_type, night).await;
            assert!(
                in_postgres <= 5,
                "{mode:?}: night {day} holds {in_postgres}"
            );
            assert_eq!(
                in_postgres,
                app.live_rooms(hotel, room_type, night).await,
                "{mode:?}"
            );
            if mode == InventoryMode::Redis {
                let in_redis = app.reserved_in_redis(hotel, room_type, night).await;
                assert_eq!(in_redis, Some(in_postgres), "night {day}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_storm_books_once() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 3, app.night(1), 2).await;
        let body = stay(
            Uuid::new_v4(),
            hotel,
            room_type,
            app.night(1),
            app.night(3),
            2,
        );
        let answers = join_all((0..50).map(|_| app.reserve("storm", &body))).await;
        let created = answers.iter().filter(|(status, _)| *status == 201).count();
        assert_eq!(created, 1, "{mode:?}");
        for (status, answer) in &answers {
            match status {
                201 | 200 => assert_eq!(answer["reservation_id"], body["reservation_id"]),
                409 => assert_eq!(answer["code"], "request_in_progress", "{answer}"),
                other => panic!("{mode:?}: unexpected {other}: {answer}"),
            }
        }
        assert_eq!(app.count("reservations").await, 1);
        for day in 1..3 {
            assert_eq!(
                app.reserved_in_postgres(hotel, room_type, app.night(day))
                    .await,
                2
            );
            if mode == InventoryMode::Redis {
                assert_eq!(
                    app.reserved_in_redis(hotel, room_type, app.night(day))
                        .await,
                    Some(2)
                );
            }
        }
    }
}

async fn available(app: &TestApp, hotel: i64, from: u64, to: u64) -> Value {
    let (status, body) = app
        .get(&format!(
            "/v1/hotels/{hotel}/availability?check_in={}&check_out={}",
            app.night(from),
            app.night(to)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["room_types"][0].clone()
}

#[tokio::test]
async fn the_lifecycle_of_a_reservation() {
    for mode in MODES {
        let app = TestApp::spawn_with_mode(mode).await;
        let (hotel, room_type) = app.hotel_with_inventory(1.0, 4, app.night(1), 3).await;
        let id = Uuid::new_v4();
        let body = stay(id, hotel, room_type, app.night(1), app.night(3), 2);

        let before = available(&app, hotel, 1, 3).await;
        assert_eq!(before["available"], 4);
        assert_eq!(before["nightly_rates_cents"], json!([10_000, 10_000]));

        let (status, created) = app.reserve("ada", &body).await;
        assert_eq!(status, 201, "{mode:?}: {created}");
        assert_eq!(created["status"], "pending");
        assert_eq!(created["guest_id"], "ada");
        assert_eq!(created["total_cents"], 40_000);
        assert_eq!(created["currency"], "EUR");
        let hold =
            chrono::DateTime::parse_from_rfc3339(created["hold_expires_at"].as_str().unwrap())
                .unwrap();
        let made =
            chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).unwrap();
        assert_eq!((hold - made).num_seconds(), 900);
        assert_eq!(available(&app, hotel, 1, 3).await["available"], 2);

        // A replay answers the stored reservation; another body under the same id is refused.
        let (status, replayed) = app.reserve("ada", &body).await;
        assert_eq!((status, &replayed), (200, &created));
        let mut changed = body.clone();
        changed["rooms"] = json!(1);
        assert_problem(
            &app.reserve("ada", &changed).await,
            422,
            "idempotency_conflict",
        );
        assert_problem(
            &app.reserve("eve", &body).await,
            422,
            "idempotency_conflict",
        );

        // Only its guest and staff see it.
        let path = format!("/v1/reservations/{id}");
        assert_eq!(app.get_as(&path, &app.guest("ada")).await.1, created);
        assert_eq!(app.get_as(&path, &app.staff()).await.0, 200);
        assert_problem(
            &app.get_as(&path, &app.guest("eve")).await,
            404,
            "not_found",
        );
        assert_problem(
            &app.post(&format!("{path}/cancel"), &app.guest("eve"), &json!({}))
                .await,
            404,
            "not_found",
        );
        assert_problem(
            &app.post(&format!("{path}/confirm"), &app.guest("ada"), &json!({}))
                .await,
            403,
            "forbidden",
        );
        let (_, mine) = app.get_as("/v1/reservations", &app.guest("ada")).await;
        assert_eq!(mine["items"], json!([created]));
        let (_, theirs) = app.get_as("/v1/reservations", &app.guest("eve")).await;
        assert_eq!(theirs["items"], json!([]));
        let (_, hotels) = app
            .get_as(&format!("/v1/reservations?hotel_id={hotel}"), &app.staff())
            .await;
        assert_eq!(hotels["items"].as_array().unwrap().len(), 1);

        // Cancel gives the nights back, twice is fine, confirm after cancel is a conflict.
        let (status, canceled) = app
            .post(&format!("{path}/cancel"), &app.guest("ada"), &json!({}))
            .await;
        assert_eq!(status, 200, "{canceled}");
        assert_eq!(canceled["status"], "canceled");
        assert_eq!(available(&app, hotel, 1, 3).await["available"], 4);
        assert_eq!(
            app.reserved_in_postgres(hotel, room_type, app.night(1))
                .await,
            0
        );
        if mode == InventoryMode::Redis {
            assert_eq!(
                app.reserved_in_redis(hotel, room_type, app.night(1)).await,
                Some(0)
            );
        }
        let (status, again) = app
            .post(&format!("{path}/cancel"), &app.staff(), &json!({}))
            .await;
        assert_eq!((status, again["status"].as_str()), (200, Some("canceled")));
        assert_problem(
            &app.post(&format!("{path}/confirm"), &app.staff(), &json!({}))
                .await,
            409,
            "conflict",
        );
        // A replay of the canceled booking answers it as it is now, and books nothing.
        let (status, replayed) = app.reserve("ada", &body).await;
        assert_eq!(
            (status, replayed["status"].as_str()),
            (200, Some("canceled"))
        );
        assert_eq!(
            app.reserved_in_postgres(hotel, room_type, app.night(1))
                .await,
            0
        );

        // Confirm, twice; a confirmed reservation can still be canceled.
        let second = stay(
            Uuid::new_v4(),
            hotel,
            room_type,
            app.night(2),
            app.night(4),
            1,
        );
        let (status, booked) = app.reserve("bob", &second).await;
        assert_eq!(status, 201, "{booked}");
        let confirm = format!(
            "/v1/reservations/{}/confirm",
            booked["reservation_id"].as_str().unwrap()
        );
        for _ in 0..2 {
            let (status, confirmed) = app.post(&confirm, &app.staff(), &json!({})).await;
            assert_eq!(
                (status, confirmed["status"].as_str()),
                (200, Some("confirmed"))
            );
        }

        // A hold past its expiry cannot be confirmed, and its nights come back.
        let third = stay(
            Uuid::new_v4(),
            hotel,
            room_type,
            app.night(1),
            app.night(2),
            3,
        );
        let (status, held) = app.reserve("cy", &third).await;
        assert_eq!(status, 201, "{held}");
        let night = app.night(1);
        assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 3);
        app.clock.advance(chrono::Duration::seconds(901));
        let confirm = format!(
            "/v1/reservations/{}/confirm",
            held["reservation_id"].as_str().unwrap()
        );
        assert_problem(
            &app.post(&confirm, &app.staff(), &json!({})).await,
            409,
            "conflict",
        );
        assert_eq!(app.reserved_in_postgres(hotel, room_type, night).await, 0);
        if mode == InventoryMode::Redis {
            assert_eq!(
                app.reserved_in_redis(hotel, room_type, night).await,
                Some(0)
            );
        }
        let (_, expired) = app
            .get_as(
                &format!(
                    "/v1/reservations/{}",
                    held["reservation_id"].as_str().unwrap()
                ),
                &app.staff(),
            )
            .await;
        assert_eq!(expired["status"], "expired");
    }
}

#[tokio::test]
async fn requests_outside_the_limits_name_their_field_and_book_nothing() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 4, app.night(0), 40).await;
    let today = app.night(0);
    let cases: Vec<(Value, &str)> = vec![
        (
            stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                today.pred_opt().unwrap(),
                app.night(1),
                1,
            ),
            "check_in",
        ),
        (
            stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(366),
                app.night(367),
                1,
            ),
            "check_in",
        ),
        (
            stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(2),
                app.night(2),
                1,
            ),
            "check_out",
        ),
        (
            stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(3),
                app.night(1),
                1,
            ),
            "check_out",
        ),
        (
            stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(0),
                app.night(31),
                1,
            ),
            "check_out",
        ),
        (
            stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(0),
                app.night(1),
                0,
            ),
            "rooms",
        ),
        (
            stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(0),
                app.night(1),
                11,
            ),
            "rooms",
        ),
    ];
    let before = app.snapshot().await;
    for (body, field) in cases {
        let answer = app.reserve("ada", &body).await;
        assert_problem(&answer, 422, "validation_failed");
        assert_eq!(answer.1["field"], field, "{body}");
    }
    let mut bad_id = stay(
        Uuid::new_v4(),
        hotel,
        room_type,
        app.night(0),
        app.night(1),
        1,
    );
    bad_id["reservation_id"] = json!("not-a-uuid");
    assert_problem(&app.reserve("ada", &bad_id).await, 422, "validation_failed");
    assert_problem(
        &app.reserve(
            "ada",
            &stay(Uuid::new_v4(), 999_999, room_type, today, app.night(1), 1),
        )
        .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.reserve(
            "ada",
            &stay(Uuid::new_v4(), hotel, 999_999, today, app.night(1), 1),
        )
        .await,
        404,
        "not_found",
    );
    // Nights without inventory are sold out.
    assert_problem(
        &app.reserve(
            "ada",
            &stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(39),
                app.night(41),
                1,
            ),
        )
        .await,
        409,
        "sold_out",
    );
    let answer = app
        .send(
            reqwest::Method::POST,
            "/v1/reservations",
            None,
            Some(&stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                today,
                app.night(1),
                1,
            )),
        )
        .await;
    assert_problem(&answer, 401, "unauthorized");
    assert_eq!(app.snapshot().await, before);
    let mut keys = app.redis.connection().await.unwrap().manager();
    let holds: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}hold:*", app.prefix))
        .query_async(&mut keys)
        .await
        .unwrap();
    assert!(
        holds.is_empty(),
        "a refused booking left a hold marker: {holds:?}"
    );
}

#[tokio::test]
async fn bookings_stay_correct_across_a_flushed_redis() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("flushed-{}", Uuid::new_v4().simple()));
    let private_redis = RedisServer::start(&dir, Durability::Throwaway).unwrap();
    let app = TestApp::spawn_with(Options {
        redis_url: Some(private_redis.url()),
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 3, app.night(1), 2).await;
    let flush = || async {
        let mut connection = app.redis.connection().await.unwrap().manager();
        redis::cmd("FLUSHALL")
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
    };
    let mut statuses = Vec::new();
    for n in 0..5 {
        flush().await;
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
        statuses.push(status);
    }
    assert_eq!(statuses, vec![201, 201, 201, 409, 409]);
    for day in 1..3 {
        assert_eq!(
            app.reserved_in_postgres(hotel, room_type, app.night(day))
                .await,
            3
        );
    }
    // After one more flush the next read loads the truth back from Postgres.
    flush().await;
    assert_eq!(available(&app, hotel, 1, 3).await["available"], 0);
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(3)
    );
    drop(private_redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_postgres_recheck_refuses_what_redis_wrongly_allows() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 1, app.night(1), 1).await;
    let (status, _) = app
        .reserve(
            "first",
            &stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(1),
                app.night(2),
                1,
            ),
        )
        .await;
    assert_eq!(status, 201);
    // Make Redis believe the night is free again.
    let mut connection = app.redis.connection().await.unwrap().manager();
    redis::cmd("HSET")
        .arg(app.night_key(hotel, room_type, app.night(1)))
        .arg("res")
        .arg(0)
        .query_async::<()>(&mut connection)
        .await
        .unwrap();

    let answer = app
        .reserve(
            "second",
            &stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night(1),
                app.night(2),
                1,
            ),
        )
        .await;
    assert_problem(&answer, 409, "sold_out");
    assert_eq!(app.count("reservations").await, 1);
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(1))
            .await,
        1
    );
    // The deduction Redis made for the refused booking was given back.
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(0)
    );
}

/// The rooms each live reservation holds, keyed by reservation id.
type Ledger = HashMap<Uuid, (u64, u64, i64)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_books_cancels_and_confirms_keep_both_counters_exact() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let app = TestApp::spawn().await;
    let handle = tokio::runtime::Handle::current();
    // (operation, first night, nights, rooms, which earlier booking)
    let step = (
        0u8..3,
        0u64..4,
        1u64..3,
        1i64..3,
        any::<prop::sample::Index>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(step, 1..12), |steps| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let (hotel, room_type) = app.hotel_with_inventory(1.0, 3, app.night(0), 5).await;
                let mut ledger: Ledger = HashMap::new();
                let mut booked: Vec<Uuid> = Vec::new();
                for (operation, start, length, rooms, pick) in steps {
                    match operation {
                        0 => {
                            let id = Uuid::new_v4();
                            let (status, body) = app
                                .reserve(
                                    "prop",
                                    &stay(
                                        id,
                                        hotel,
                                        room_type,
                                        app.night(start),
                                        app.night(start + length),
                                        rooms,
                                    ),
                                )
                                .await;
                            match status {
                                201 => {
                                    ledger.insert(id, (start, start + length, rooms));
                                    booked.push(id);
                                }
                                409 => prop_assert_eq!(&body["code"], "sold_out"),
                                other => prop_assert!(false, "unexpected {other}: {body}"),
                            }
                        }
                        1 if !booked.is_empty() => {
                            let id = booked[pick.index(booked.len())];
                            let (status, _) = app
                                .post(
                                    &format!("/v1/reservations/{id}/cancel"),
                                    &app.staff(),
                                    &json!({}),
                                )
                                .await;
                            prop_assert_eq!(status, 200);
                            ledger.remove(&id);
                        }
                        2 if !booked.is_empty() => {
                            let id = booked[pick.index(booked.len())];
                            let (status, _) = app
                                .post(
                                    &format!("/v1/reservations/{id}/confirm"),
                                    &app.staff(),
                                    &json!({}),
                                )
                                .await;
                            let live = ledger.contains_key(&id);
                            prop_assert_eq!(status, if live { 200 } else { 409 });
                        }
                        _ => {}
                    }
                    for day in 0..5 {
                        let expected: i64 = ledger
                            .values()
                            .filter(|(from, to, _)| *from <= day && day < *to)
                            .map(|(_, _, rooms)| rooms)
                            .sum();
                        let night = app.night(day);
                        prop_assert_eq!(
                            app.reserved_in_postgres(hotel, room_type, night).await,
                            expected
                        );
                        let in_redis = app.reserved_in_redis(hotel, room_type, night).await;
                        prop_assert!(
                            in_redis.is_none() || in_redis == Some(expected),
                            "night {}: redis {:?}, expected {}",
                            day,
                            in_redis,
                            expected
                        );
                    }
                }
                Ok(())
            })
        })
    });
    result.unwrap();
}

#[tokio::test]
async fn availability_follows_catalog_changes_at_once() {
    let app = TestApp::spawn().await;
    let (hotel, _) = app.hotel_with_inventory(1.0, 2, app.night(1), 1).await;
    let query = format!(
        "/v1/hotels/{hotel}/availability?check_in={}&check_out={}",
        app.night(1),
        app.night(2)
    );
    assert_eq!(
        app.get(&query).await.1["room_types"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let suite = app.create_room_type(hotel, "Suite").await;
    let (_, availability) = app.get(&query).await;
    let types = availability["room_types"].as_array().unwrap();
    assert_eq!(types.len(), 2, "{availability}");
    assert_eq!(types[1]["room_type_id"], suite);
    assert_eq!(
        types[1]["available"], 0,
        "a room type without inventory shows none"
    );
    assert_eq!(types[1]["nightly_rates_cents"], json!([]));
    let (status, _) = app
        .put(
            &format!("/v1/hotels/{hotel}/room-types/{suite}"),
            &app.staff(),
            &json!({"name": "Grand Suite", "max_occupancy": 3}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get(&query).await.1["room_types"][1]["name"],
        "Grand Suite"
    );
    assert_eq!(
        app.delete(
            &format!("/v1/hotels/{hotel}/room-types/{suite}"),
            &app.staff()
        )
        .await
        .0,
        204
    );
    assert_eq!(
        app.get(&query).await.1["room_types"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_problem(
        &app.get(&format!(
            "/v1/hotels/999999/availability?check_in={}&check_out={}",
            app.night(1),
            app.night(2)
        ))
        .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.get(&format!(
            "/v1/hotels/{hotel}/availability?check_in={}&check_out={}",
            app.night(2),
            app.night(1)
        ))
        .await,
        422,
        "validation_failed",
    );
    assert_problem(
        &app.get(&format!("/v1/hotels/{hotel}/availability?check_in=soon"))
            .await,
        400,
        "validation_failed",
    );
}

/// Bookings Redis admitted for one room type commit together: ten queued at once share one
/// transaction (one xmin), and each keeps its own outcome.
#[tokio::test]
async fn admitted_bookings_of_one_room_type_commit_as_a_group() {
    use innkeeper::booking::group_commit::GroupCommitter;
    use innkeeper::domain::{NewReservation, Stay};
    use innkeeper::store::reservations::Committed;

    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 20, app.night(1), 2).await;
    let committer = std::sync::Arc::new(GroupCommitter::new(
        app.db.clone(),
        std::time::Duration::from_secs(10),
        None,
    ));
    let now = chrono::Utc::now();
    let stay = |guest: usize| NewReservation {
        stay: Stay {
            reservation_id: Uuid::new_v4().into(),
            hotel_id: hotel,
            room_type_id: room_type,
            check_in: app.night(1),
            check_out: app.night(3),
            rooms: 1,
        },
        guest_id: format!("g{guest}"),
        created_at: now,
        hold_expires_at: now + chrono::Duration::minutes(15),
    };
    let mut stays: Vec<NewReservation> = (0..10).map(stay).collect();
    // A replay of the first one within the same batch: it must come back as Exists.
    stays.push(stays[0].clone());
    // On this single-threaded runtime every commit is queued before the drainer first runs.
    let outcomes = join_all(stays.iter().cloned().map(|s| committer.commit(s))).await;
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Committed::Created(_))))
        .count();
    assert_eq!(created, 10, "{outcomes:?}");
    assert!(
        matches!(outcomes[10], Ok(Committed::Exists)),
        "{:?}",
        outcomes[10]
    );
    let client = app.db.get().await.unwrap();
    let transactions: i64 = client
        .query_one("SELECT count(DISTINCT xmin::text) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(transactions, 1);
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(1))
            .await,
        10
    );

    // One booking refused under the row locks sends the batch one by one: the others
    // still commit.
    client
        .execute(
            "UPDATE room_type_inventory SET total_reserved = capacity WHERE date = $1",
            &[&app.night(2)],
        )
        .await
        .unwrap();
    let with_dates = |guest, check_in, check_out| {
        let mut booking = stay(guest);
        booking.stay.check_in = check_in;
        booking.stay.check_out = check_out;
        booking
    };
    let mut late = vec![with_dates(99, app.night(2), app.night(3))];
    late.extend((100..103).map(|guest| with_dates(guest, app.night(1), app.night(2))));
    let outcomes = join_all(late.into_iter().map(|s| committer.commit(s))).await;
    assert!(
        matches!(outcomes[0], Ok(Committed::SoldOut)),
        "{outcomes:?}"
    );
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o, Ok(Committed::Created(_)))),
        "{outcomes:?}"
    );
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night(1))
            .await,
        13
    );
    assert_eq!(app.count("reservations").await, 13);
}
