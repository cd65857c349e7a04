//! Authentication and roles: every staff-only route refuses the public, guests, expired
//! tokens, forged signatures and unsigned tokens, and a refused request writes nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use std::sync::Arc;

use innkeeper::clock::{Clock, ManualClock};
use innkeeper::config::Secret;
use innkeeper::domain::Role;
use innkeeper::http::auth::Auth;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

use crate::helpers::{assert_problem, hotel_body, TestApp, JWT_SECRET, TOKEN_TTL_LIMIT};

/// Every staff-only catalog and inventory route, with a body it would accept.
fn staff_routes(
    hotel: i64,
    room_type: i64,
    room: i64,
    app: &TestApp,
) -> Vec<(Method, String, Option<Value>)> {
    let inventory =
        json!({"from": app.night(1), "to": app.night(2), "total_inventory": 1, "rate_cents": 1});
    vec![
        (
            Method::POST,
            "/v1/hotels".into(),
            Some(hotel_body("X", 1.1)),
        ),
        (
            Method::PUT,
            format!("/v1/hotels/{hotel}"),
            Some(hotel_body("X", 1.1)),
        ),
        (
            Method::POST,
            format!("/v1/hotels/{hotel}/room-types"),
            Some(json!({"name": "X", "max_occupancy": 1})),
        ),
        (
            Method::PUT,
            format!("/v1/hotels/{hotel}/room-types/{room_type}"),
            Some(json!({"name": "X", "max_occupancy": 1})),
        ),
        (
            Method::POST,
            format!("/v1/hotels/{hotel}/rooms"),
            Some(json!({"room_type_id": room_type, "number": "9"})),
        ),
        (
            Method::PUT,
            format!("/v1/hotels/{hotel}/rooms/{room}"),
            Some(json!({"room_type_id": room_type, "number": "10"})),
        ),
        (
            Method::PUT,
            format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory"),
            Some(inventory),
        ),
        (
            Method::GET,
            format!(
                "/v1/hotels/{hotel}/room-types/{room_type}/inventory?from={}&to={}",
                app.night(1),
                app.night(2)
            ),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/hotels/{hotel}/rooms/{room}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/hotels/{hotel}/room-types/{room_type}"),
            None,
        ),
        (Method::DELETE, format!("/v1/hotels/{hotel}"), None),
    ]
}

fn unsigned_token() -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let exp = Utc::now().timestamp() + 3600;
    let claims =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"mallory","role":"staff","exp":{exp}}}"#));
    format!("{header}.{claims}.")
}

#[tokio::test]
async fn staff_routes_refuse_everyone_but_staff_and_write_nothing() {
    let app = TestApp::spawn().await;
    let hotel = app.create_hotel(hotel_body("H", 1.1)).await;
    let room_type = app.create_room_type(hotel, "Double").await;
    let (_, room) = app
        .post(
            &format!("/v1/hotels/{hotel}/rooms"),
            &app.staff(),
            &json!({"room_type_id": room_type, "number": "1"}),
        )
        .await;
    let room = room["id"].as_i64().unwrap();

    let two_hours_ago = Arc::new(ManualClock::new(
        app.clock.now() - chrono::Duration::hours(2),
    ));
    let expired = Auth::new(&Secret::new(JWT_SECRET), two_hours_ago, TOKEN_TTL_LIMIT)
        .issue("staff-1", Role::Staff, Duration::from_secs(60))
        .unwrap();
    let forged = Auth::new(
        &Secret::new("not-the-server-secret-of-32-bytes!"),
        app.clock.clone(),
        TOKEN_TTL_LIMIT,
    )
    .issue("staff-1", Role::Staff, Duration::from_secs(3600))
    .unwrap();
    let guest = app.guest("guest-1");
    let unsigned = unsigned_token();
    let now = app.clock.now().timestamp();
    let sign = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    // Until the year 3000, and valid only from tomorrow: both refused.
    let forever = sign(json!({"sub": "staff-1", "role": "staff", "exp": 32_503_680_000_i64}));
    let not_yet =
        sign(json!({"sub": "staff-1", "role": "staff", "exp": now + 7200, "nbf": now + 3600}));
    let refusals: Vec<(Option<&str>, u16, &str)> = vec![
        (Some(&forever), 401, "unauthorized"),
        (Some(&not_yet), 401, "unauthorized"),
        (None, 401, "unauthorized"),
        (Some("not-a-jwt"), 401, "unauthorized"),
        (Some(&expired), 401, "unauthorized"),
        (Some(&forged), 401, "unauthorized"),
        (Some(&unsigned), 401, "unauthorized"),
        (Some(&guest), 403, "forbidden"),
    ];

    let before = app.snapshot().await;
    for (method, path, body) in staff_routes(hotel, room_type, room, &app) {
        for (token, status, code) in &refusals {
            let answer = app.send(method.clone(), &path, *token, body.as_ref()).await;
            assert_problem(&answer, *status, code);
        }
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request wrote something"
    );

    // The same routes succeed for staff (deletes last, in dependency order; the room type
    // still holds room 9, so its delete is the one conflict).
    for (method, path, body) in staff_routes(hotel, room_type, room, &app) {
        let (status, answer) = app
            .send(method.clone(), &path, Some(&app.staff()), body.as_ref())
            .await;
        assert!(
            (200..300).contains(&status)
                || (method == Method::DELETE && path.contains("room-types") && status == 409),
            "{method} {path}: {status} {answer}"
        );
    }
}

#[tokio::test]
async fn an_authorization_header_without_bearer_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/v1/hotels"))
        .header("Authorization", format!("Basic {}", app.staff()))
        .json(&hotel_body("H", 1.1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(app.count("hotels").await, 0);
}

#[tokio::test]
async fn public_reads_need_no_token() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.1, 3, app.night(1), 1).await;
    for path in [
        "/v1/hotels".to_owned(),
        format!("/v1/hotels/{hotel}"),
        format!("/v1/hotels/{hotel}/room-types"),
        format!("/v1/hotels/{hotel}/room-types/{room_type}"),
        format!("/v1/hotels/{hotel}/rooms"),
        "/healthz".to_owned(),
        "/readyz".to_owned(),
        "/metrics".to_owned(),
        "/openapi.json".to_owned(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

/// Token expiry is read from the server's clock, like every other rule: a server whose
/// clock stands at 23:30 on a day two days ago accepts the tokens it issued then (the
/// machine's own time, whatever the hour, would call them long expired), keeps accepting
/// them across midnight, and refuses them once its clock passes their `exp`.
#[tokio::test]
async fn token_expiry_follows_the_server_clock_late_in_the_day() {
    let late = (Utc::now() - chrono::Duration::days(2))
        .date_naive()
        .and_hms_opt(23, 30, 0)
        .unwrap()
        .and_utc();
    let app = TestApp::spawn_with(crate::helpers::Options {
        now: late,
        ..Default::default()
    })
    .await;
    let staff = app.staff();
    let (status, body) = app
        .post("/v1/hotels", &staff, &hotel_body("Late Inn", 1.1))
        .await;
    assert_eq!(status, 201, "{body}");
    app.clock.advance(chrono::Duration::minutes(45));
    let (status, _) = app
        .post("/v1/hotels", &staff, &hotel_body("After Midnight", 1.1))
        .await;
    assert_eq!(status, 201);
    app.clock.advance(chrono::Duration::minutes(16));
    assert_problem(
        &app.post("/v1/hotels", &staff, &hotel_body("Too Late", 1.1))
            .await,
        401,
        "unauthorized",
    );
}
