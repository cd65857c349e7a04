//! Many guests, few rooms: nothing is ever sold twice or past its allowance.

use std::collections::HashMap;

use futures::future::join_all;
use innkeeper::config::InventoryMode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{stay, TestApp};

use super::{Ledger, MODES};

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
