//! Per-night inventory and rates.

use serde_json::json;

use crate::helpers::{assert_problem, hotel_body, TestApp};

#[tokio::test]
async fn inventory_is_written_for_every_night_and_read_back() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let hotel = app.create_hotel(hotel_body("H", 1.1)).await;
    let room_type = app.create_room_type(hotel, "Double").await;
    let path = format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory");

    let (status, days) = app
        .put(&path, &staff, &json!({"from": app.night(1), "to": app.night(4), "total_inventory": 10, "rate_cents": 12_500}))
        .await;
    assert_eq!(status, 200, "{days}");
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 3);
    for (n, day) in days.iter().enumerate() {
        assert_eq!(day["date"], json!(app.night(n as u64 + 1)));
        assert_eq!(day["total_inventory"], 10);
        assert_eq!(day["total_reserved"], 0);
        assert_eq!(day["available"], 11, "floor(10 * 1.10)");
        assert_eq!(day["rate_cents"], 12_500);
    }

    // Without rate_cents, existing nights keep their rate.
    let (status, days) = app
        .put(
            &path,
            &staff,
            &json!({"from": app.night(2), "to": app.night(3), "total_inventory": 7}),
        )
        .await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(days[0]["rate_cents"], 12_500);
    assert_eq!(days[0]["available"], 7, "floor(7 * 1.10) = 7");

    let (status, read) = app
        .get_as(
            &format!("{path}?from={}&to={}", app.night(0), app.night(10)),
            &staff,
        )
        .await;
    assert_eq!(status, 200);
    let totals: Vec<_> = read
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["total_inventory"].as_i64().unwrap())
        .collect();
    assert_eq!(totals, vec![10, 7, 10]);
}

#[tokio::test]
async fn a_new_night_without_a_rate_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.1, 5, app.night(1), 2).await;
    let path = format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory");
    let before = app.snapshot().await;
    // Nights 1 and 2 exist; night 3 does not, and has no rate to keep.
    let answer = app
        .put(
            &path,
            &app.staff(),
            &json!({"from": app.night(1), "to": app.night(4), "total_inventory": 9}),
        )
        .await;
    assert_problem(&answer, 422, "validation_failed");
    assert_eq!(answer.1["field"], "rate_cents");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn capacity_below_reserved_rooms_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.1, 10, app.night(1), 3).await;
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "UPDATE room_type_inventory SET total_reserved = 9 WHERE date = $1",
            &[&app.night(2)],
        )
        .await
        .unwrap();
    let before = app.snapshot().await;
    let path = format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory");
    // floor(8 * 1.1) = 8 < 9 reserved on night 2.
    let answer = app
        .put(
            &path,
            &app.staff(),
            &json!({"from": app.night(1), "to": app.night(4), "total_inventory": 8}),
        )
        .await;
    assert_problem(&answer, 409, "conflict");
    assert_eq!(app.snapshot().await, before);
    // floor(9 * 1.1) = 9 is enough.
    let (status, days) = app
        .put(
            &path,
            &app.staff(),
            &json!({"from": app.night(1), "to": app.night(4), "total_inventory": 9}),
        )
        .await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(days[1]["available"], 0);
}

#[tokio::test]
async fn a_lower_ratio_below_reserved_rooms_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (hotel, _) = app.hotel_with_inventory(1.1, 10, app.night(1), 2).await;
    let client = app.db.get().await.unwrap();
    // floor(10 * 1.1) = 11 rooms sold on night 1; at 1.0 the night would hold only 10.
    let updated = client
        .execute(
            "UPDATE room_type_inventory SET total_reserved = 11 WHERE date = $1",
            &[&app.night(1)],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let before = app.snapshot().await;
    let answer = app
        .put(
            &format!("/v1/hotels/{hotel}"),
            &app.staff(),
            &hotel_body("Renamed", 1.0),
        )
        .await;
    assert_problem(&answer, 409, "conflict");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_new_ratio_recomputes_the_capacity_of_future_nights() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.1, 10, app.night(0), 2).await;
    let (status, _) = app
        .put(
            &format!("/v1/hotels/{hotel}"),
            &app.staff(),
            &hotel_body("Seaside", 1.5),
        )
        .await;
    assert_eq!(status, 200);
    let (_, days) = app
        .get_as(
            &format!(
                "/v1/hotels/{hotel}/room-types/{room_type}/inventory?from={}&to={}",
                app.night(0),
                app.night(2)
            ),
            &app.staff(),
        )
        .await;
    assert_eq!(days[0]["available"], 15);
    assert_eq!(days[1]["available"], 15);
}

#[tokio::test]
async fn inverted_and_missing_ranges_are_refused() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.1, 10, app.night(1), 2).await;
    let path = format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory");
    let before = app.snapshot().await;
    let answer = app
        .put(&path, &app.staff(), &json!({"from": app.night(5), "to": app.night(2), "total_inventory": 3, "rate_cents": 1}))
        .await;
    assert_problem(&answer, 422, "validation_failed");
    assert_eq!(answer.1["field"], "to");
    let answer = app
        .put(&path, &app.staff(), &json!({"from": app.night(1), "to": app.night(2), "total_inventory": -1, "rate_cents": 1}))
        .await;
    assert_problem(&answer, 422, "validation_failed");
    assert_eq!(answer.1["field"], "total_inventory");
    let answer = app
        .put(
            &path,
            &app.staff(),
            &json!({"from": "2027-02-30", "to": app.night(2), "total_inventory": 3}),
        )
        .await;
    assert_problem(&answer, 422, "validation_failed");
    assert_eq!(app.snapshot().await, before);

    let answer = app
        .get_as(
            &format!("{path}?from={}&to={}", app.night(3), app.night(1)),
            &app.staff(),
        )
        .await;
    assert_problem(&answer, 422, "validation_failed");
    assert_problem(
        &app.get_as(&format!("{path}?from={}", app.night(1)), &app.staff())
            .await,
        400,
        "validation_failed",
    );
    assert_problem(
        &app.get_as(
            &format!(
                "/v1/hotels/{hotel}/room-types/999999/inventory?from={}&to={}",
                app.night(1),
                app.night(2)
            ),
            &app.staff(),
        )
        .await,
        404,
        "not_found",
    );
}
