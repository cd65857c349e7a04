//! Hostile and broken clients: slow headers, floods past the admission limit, text and
//! dates that cannot be stored, request ids that do not belong in a log. Each gets a clear
//! answer (or a closed connection), and nothing is written.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::{assert_problem, hotel_body, stay, Options, TestApp};

/// Reads until the server closes the connection; fails if it is still open after
/// `patience`.
async fn closed_within(stream: &mut TcpStream, patience: Duration) {
    let mut buffer = [0_u8; 1024];
    let read = tokio::time::timeout(patience, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection was still open after {patience:?}"
    );
}

/// A client that trickles its headers is cut off once the header-read timeout (10 s)
/// passes; the same for a kept-alive connection left idle.
#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let app = TestApp::spawn().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: innkeeper\r\nX-Slow: ")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: innkeeper\r\n\r\n")
        .await
        .unwrap();
    // Thirty seconds is three times the timeout: the connections used to stay for ever.
    closed_within(&mut slow, Duration::from_secs(30)).await;
    closed_within(&mut idle, Duration::from_secs(30)).await;
}

/// Past `INNKEEPER_MAX_IN_FLIGHT` requests at once, the next is answered 503 `overloaded`
/// at once; the operations routes stay reachable; once the load is gone, requests pass.
#[tokio::test]
async fn requests_past_the_admission_limit_are_refused_at_once() {
    let app = TestApp::spawn_with(Options {
        env: vec![("INNKEEPER_MAX_IN_FLIGHT", "2".into())],
        ..Options::default()
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    // Two requests that hold their place: their headers are in, their bodies never come.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = TcpStream::connect(&address).await.unwrap();
        holder
            .write_all(
                format!(
                    "POST /v1/hotels HTTP/1.1\r\nHost: innkeeper\r\nAuthorization: Bearer {}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na",
                    app.staff()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        holders.push(holder);
    }
    let mut refused = None;
    for _ in 0..50 {
        let answer = app.get("/v1/hotels").await;
        if answer.0 == 503 {
            refused = Some(answer);
            break;
        }
        // The holders' requests may not have reached the handler yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("a request past the limit was refused");
    assert_problem(&refused, 503, "overloaded");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 200);
    assert_eq!(app.get("/metrics").await.0, 200);
    drop(holders);
    let mut passed = false;
    for _ in 0..50 {
        if app.get("/v1/hotels").await.0 == 200 {
            passed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(passed, "requests were still refused once the load was gone");
}

/// Text Postgres cannot store (a NUL byte) or that has no place in a name (control
/// characters), and dates outside any bookable calendar: each is a 4xx naming its field,
/// and nothing changes.
#[tokio::test]
async fn unstorable_text_and_dates_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
    let staff = app.staff();
    let before = app.snapshot().await;

    assert_problem(
        &app.get("/v1/hotels?city=%00").await,
        422,
        "validation_failed",
    );
    assert_problem(
        &app.get("/v1/hotels?city=Lis%1Bbon").await,
        422,
        "validation_failed",
    );
    for (field, value) in [
        ("name", "Nul\u{0}Inn"),
        ("address", "1 Quay\u{7}"),
        ("city", "Lis\u{0}bon"),
    ] {
        let mut body = hotel_body("Fine Inn", 1.1);
        body[field] = json!(value);
        let answer = app.post("/v1/hotels", &staff, &body).await;
        assert_problem(&answer, 422, "validation_failed");
        assert_eq!(answer.1["field"], field);
    }
    let answer = app
        .post(
            &format!("/v1/hotels/{hotel}/room-types"),
            &staff,
            &json!({"name": "Twin", "description": "a\u{0}b", "max_occupancy": 2}),
        )
        .await;
    assert_problem(&answer, 422, "validation_failed");

    let inventory = format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory");
    let put = |from: String, to: String| {
        let body = json!({"from": from, "to": to, "total_inventory": 1, "rate_cents": 1});
        let (app, inventory, staff) = (&app, &inventory, &staff);
        async move { app.put(inventory, staff, &body).await }
    };
    for (from, to) in [
        ("-262143-01-01", "2027-01-01"),
        ("2027-01-01", "+262142-12-30"),
        ("+262142-12-29", "+262142-12-30"),
    ] {
        let answer = put(from.into(), to.into()).await;
        assert!((400..500).contains(&answer.0), "{from}..{to}: {answer:?}");
        let answer = app
            .send(
                reqwest::Method::GET,
                &format!("{inventory}?from={from}&to={to}"),
                Some(&staff),
                None,
            )
            .await;
        assert!((400..500).contains(&answer.0), "{from}..{to}: {answer:?}");
    }
    // Inventory for nights no guest could book: long past, or past the horizon.
    for (from, to) in [
        (app.night(0) - chrono::Days::new(10), app.night(1)),
        (app.night(500), app.night(501)),
    ] {
        let answer = put(from.to_string(), to.to_string()).await;
        assert_problem(&answer, 422, "validation_failed");
    }
    let far = stay(
        Uuid::new_v4(),
        hotel,
        room_type,
        app.night(1),
        app.night(2),
        1,
    );
    let mut far = far;
    far["check_out"] = json!("+262142-12-30");
    assert!((400..500).contains(&app.reserve("g", &far).await.0));
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request changed something"
    );
}

/// A client's request id is used only when it is short and printable; otherwise the
/// server makes one up, and never echoes the unfit one.
#[tokio::test]
async fn unfit_request_ids_are_replaced() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(65);
    for unfit in [long.as_str(), "tab\there", "caf\u{e9}"] {
        let Ok(value) = reqwest::header::HeaderValue::from_bytes(unfit.as_bytes()) else {
            continue;
        };
        let response = app
            .http
            .get(app.url("/healthz"))
            .header("x-request-id", value)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(echoed.as_bytes(), unfit.as_bytes());
        assert!(Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "order-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "order-42");
}

/// Past `INNKEEPER_RATE_LIMIT`, a caller gets 429 `rate_limited` with the seconds to wait:
/// a guest by their token's `sub`, anyone else by their address. Other callers, and the
/// operations routes, are not held back.
#[tokio::test]
async fn callers_past_their_rate_are_told_to_wait() {
    let app = TestApp::spawn_with(Options {
        env: vec![("INNKEEPER_RATE_LIMIT", "1,2".into())],
        ..Options::default()
    })
    .await;
    let ada = app.guest("ada");
    // Sent together, so that however slow the machine, they arrive well within the second
    // it takes the bucket to refill by one.
    let answers = futures::future::join_all(
        (0..6).map(|_| app.send(reqwest::Method::GET, "/v1/reservations", Some(&ada), None)),
    )
    .await;
    let refused = answers
        .iter()
        .find(|(status, _)| *status == 429)
        .unwrap_or_else(|| panic!("six requests at once passed a burst of two: {answers:?}"));
    assert_problem(refused, 429, "rate_limited");
    let response = app
        .http
        .get(app.url("/v1/reservations"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    if response.status() == 429 {
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
    }
    let bob = app.guest("bob");
    assert_eq!(
        app.send(reqwest::Method::GET, "/v1/reservations", Some(&bob), None)
            .await
            .0,
        200
    );
    let anonymous: Vec<u16> = futures::future::join_all((0..6).map(|_| app.get("/v1/hotels")))
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert!(anonymous.contains(&429), "{anonymous:?}");
    for _ in 0..6 {
        assert_eq!(app.get("/healthz").await.0, 200);
    }
}
