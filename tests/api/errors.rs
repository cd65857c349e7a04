//! Bad input: each gets the status and code of API.md, and writes nothing.

use serde_json::json;

use crate::helpers::{assert_problem, hotel_body, TestApp};

#[tokio::test]
async fn malformed_json_and_wrong_types_write_nothing() {
    let app = TestApp::spawn().await;
    let hotel = app.create_hotel(hotel_body("H", 1.1)).await;
    let before = app.snapshot().await;

    for raw in ["{", "{\"name\": \"x\",}", "not json", ""] {
        let response = app
            .http
            .post(app.url("/v1/hotels"))
            .bearer_auth(app.staff())
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{raw:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "malformed_json", "{raw:?}");
    }

    let wrong_types = [
        json!({"name": 5, "address": "a", "city": "c", "country": "PT"}),
        json!({"name": "n", "address": "a", "city": "c", "country": "PT", "overbooking_ratio": "high"}),
        json!({"address": "a", "city": "c", "country": "PT"}),
        json!([1, 2, 3]),
    ];
    for body in &wrong_types {
        assert_problem(
            &app.post("/v1/hotels", &app.staff(), body).await,
            422,
            "validation_failed",
        );
    }
    let answer = app
        .post(
            &format!("/v1/hotels/{hotel}/room-types"),
            &app.staff(),
            &json!({"name": "x", "max_occupancy": "two"}),
        )
        .await;
    assert_problem(&answer, 422, "validation_failed");
    assert_eq!(answer.1["field"], "max_occupancy");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn out_of_range_values_name_their_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let hotel = app.create_hotel(hotel_body("H", 1.1)).await;
    let room_type = app.create_room_type(hotel, "Double").await;
    let before = app.snapshot().await;

    let cases = [
        (json!({"overbooking_ratio": 1.6}), "overbooking_ratio"),
        (json!({"overbooking_ratio": 0.9}), "overbooking_ratio"),
        (json!({"currency": "euro"}), "currency"),
        (json!({"timezone": "Atlantis/Lost"}), "timezone"),
        (json!({"name": "   "}), "name"),
    ];
    for (change, field) in cases {
        let mut body = hotel_body("H", 1.1);
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        for answer in [
            app.post("/v1/hotels", &app.staff(), &body).await,
            app.put(&format!("/v1/hotels/{hotel}"), &app.staff(), &body)
                .await,
        ] {
            assert_problem(&answer, 422, "validation_failed");
            assert_eq!(answer.1["field"], field, "{}", answer.1);
        }
    }
    let answer = app
        .post(
            &format!("/v1/hotels/{hotel}/room-types"),
            &app.staff(),
            &json!({"name": "x", "max_occupancy": 0}),
        )
        .await;
    assert_eq!(answer.1["field"], "max_occupancy");
    assert_problem(&answer, 422, "validation_failed");
    let answer = app
        .post(
            &format!("/v1/hotels/{hotel}/rooms"),
            &app.staff(),
            &json!({"room_type_id": room_type, "number": ""}),
        )
        .await;
    assert_problem(&answer, 422, "validation_failed");
    for query in ["limit=0", "limit=201", "cursor=garbage"] {
        assert_problem(
            &app.get(&format!("/v1/hotels?{query}")).await,
            422,
            "validation_failed",
        );
    }
    assert_problem(
        &app.get("/v1/hotels?limit=many").await,
        400,
        "validation_failed",
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_write_nothing() {
    let app = TestApp::spawn().await;
    let hotel = app.create_hotel(hotel_body("H", 1.1)).await;
    let room_type = app.create_room_type(hotel, "Double").await;
    let staff = app.staff();
    let before = app.snapshot().await;
    let answers = vec![
        app.get("/v1/hotels/424242").await,
        app.get("/v1/hotels/not-a-number").await,
        app.put("/v1/hotels/424242", &staff, &hotel_body("H", 1.1)).await,
        app.post("/v1/hotels/424242/room-types", &staff, &json!({"name": "x", "max_occupancy": 1})).await,
        app.get(&format!("/v1/hotels/{hotel}/room-types/424242")).await,
        app.put(&format!("/v1/hotels/{hotel}/room-types/424242"), &staff, &json!({"name": "x", "max_occupancy": 1})).await,
        app.delete(&format!("/v1/hotels/{hotel}/room-types/424242"), &staff).await,
        app.post(&format!("/v1/hotels/{hotel}/rooms"), &staff, &json!({"room_type_id": 424242, "number": "1"})).await,
        app.get(&format!("/v1/hotels/{hotel}/rooms/424242")).await,
        app.put(&format!("/v1/hotels/{hotel}/rooms/424242"), &staff, &json!({"room_type_id": room_type, "number": "1"})).await,
        app.delete(&format!("/v1/hotels/{hotel}/rooms/424242"), &staff).await,
        app.put(
            &format!("/v1/hotels/424242/room-types/{room_type}/inventory"),
            &staff,
            &json!({"from": app.night(1), "to": app.night(2), "total_inventory": 1, "rate_cents": 1}),
        )
        .await,
        app.get("/v1/no-such-route").await,
    ];
    for answer in &answers {
        assert_problem(answer, 404, "not_found");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_refused() {
    let app = TestApp::spawn().await;
    let mut body = hotel_body("H", 1.1);
    body["address"] = json!("x".repeat(1024 * 1024 + 1));
    let answer = app.post("/v1/hotels", &app.staff(), &body).await;
    assert_problem(&answer, 413, "payload_too_large");
    assert_eq!(app.count("hotels").await, 0);
    // Just under the limit the body is read (and refused for its over-long address).
    body["address"] = json!("x".repeat(1000 * 1000));
    assert_problem(
        &app.post("/v1/hotels", &app.staff(), &body).await,
        422,
        "validation_failed",
    );
}
