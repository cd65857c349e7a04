//! A reservation from booking to confirmation, cancellation or expiry, and the rules a stay must meet.

use innkeeper::config::InventoryMode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{assert_problem, stay, TestApp};

use super::{available, MODES};

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
    let mut keys = app.redis.connection().await.unwrap().handle();
    let holds: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}deducted:*", app.prefix))
        .query_async(&mut keys)
        .await
        .unwrap();
    assert!(
        holds.is_empty(),
        "a refused booking left a deduction marker: {holds:?}"
    );
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
