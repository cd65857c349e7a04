//! Booking events reach subscribed endpoints, signed the Standard Webhooks way, at least
//! once and in order per reservation; the payment provider's events drive the saga. A
//! real HTTP receiver in this process verifies signatures with the specification's own
//! library and can be told to fail or hang.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{assert_problem, stay, Options, TestApp};

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers (the sender's timeout ends it).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answers to give, in order; 200 once they run out.
    plan: Arc<Mutex<VecDeque<Answer>>>,
    /// Requests that arrived and are hanging.
    hanging: Arc<Mutex<usize>>,
}

impl Receiver {
    /// Starts a receiver on a free port; its URL.
    async fn start(&self) -> String {
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}/hook")
    }

    fn answer_next(&self, answers: &[Answer]) {
        self.plan.lock().unwrap().extend(answers.iter().copied());
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn hanging(&self) -> usize {
        *self.hanging.lock().unwrap()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answer = receiver.plan.lock().unwrap().pop_front();
    if let Some(Answer::Hang) = answer {
        *receiver.hanging.lock().unwrap() += 1;
        std::future::pending::<()>().await;
    }
    receiver
        .got
        .lock()
        .unwrap()
        .push(Received { headers, body });
    match answer {
        Some(Answer::Status(status)) => StatusCode::from_u16(status).unwrap(),
        _ => StatusCode::OK,
    }
}

/// Subscribes `url`; the endpoint's id and secret.
async fn subscribe(app: &TestApp, body: Value) -> (String, String) {
    let (status, created) = app.post("/v1/webhook-endpoints", &app.staff(), &body).await;
    assert_eq!(status, 201, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// Whether `received` carries a valid Standard Webhooks signature under `secret`.
fn verifies(secret: &str, received: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&received.body, &received.headers)
        .is_ok()
}

/// Runs webhook steps (each waits for its attempts) until `done`, at most 20.
async fn deliver_until(app: &TestApp, done: impl Fn() -> bool) {
    for _ in 0..20 {
        app.state.jobs.webhooks.run_once().await.unwrap();
        if done() {
            return;
        }
    }
    panic!("the deliveries did not arrive");
}

/// Books nights 1 and 2 after the test's start (whatever day the clock has moved on to).
async fn book(app: &TestApp, hotel: i64, room_type: i64, guest: &str) -> Value {
    let id = Uuid::new_v4();
    let (status, reservation) = app
        .reserve(
            guest,
            &stay(
                id,
                hotel,
                room_type,
                app.night_at_start(1),
                app.night_at_start(3),
                1,
            ),
        )
        .await;
    assert_eq!(status, 201, "{reservation}");
    reservation
}

#[tokio::test]
async fn endpoints_are_staff_only_checked_and_show_their_secret_once() {
    let app = TestApp::spawn().await;
    let url = "https://pms.example.com/hooks";
    let (status, _) = app
        .post(
            "/v1/webhook-endpoints",
            &app.guest("g"),
            &json!({"url": url}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(reqwest::Method::GET, "/v1/webhook-endpoints", None, None)
        .await;
    assert_eq!(status, 401);
    for bad in [
        json!({"url": "ftp://pms.example.com/hooks"}),
        json!({"url": "https://user:pw@pms.example.com/hooks"}),
        json!({"url": "not a url"}),
        json!({"url": url, "event_types": ["reservation.paid"]}),
        json!({"url": url, "hotel_id": 999_999}),
    ] {
        let answer = app.post("/v1/webhook-endpoints", &app.staff(), &bad).await;
        assert_problem(&answer, 422, "validation_failed");
    }
    assert_eq!(app.count("webhook_endpoints").await, 0);

    let (status, created) = app
        .post(
            "/v1/webhook-endpoints",
            &app.staff(),
            &json!({"url": url, "event_types": ["reservation.canceled", "reservation.created"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(standardwebhooks::Webhook::new(secret).is_ok());
    assert_eq!(
        created["event_types"],
        json!(["reservation.created", "reservation.canceled"])
    );
    assert_eq!(created["hotel_id"], Value::Null);
    let id = created["id"].as_str().unwrap();
    let (status, shown) = app
        .get_as(&format!("/v1/webhook-endpoints/{id}"), &app.staff())
        .await;
    assert_eq!(status, 200);
    assert!(shown.get("secret").is_none(), "{shown}");
    assert_eq!(shown["url"], url);
    let (_, page) = app.get_as("/v1/webhook-endpoints", &app.staff()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["items"][0].get("secret").is_none());

    let (status, _) = app
        .delete(&format!("/v1/webhook-endpoints/{id}"), &app.guest("g"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .delete(&format!("/v1/webhook-endpoints/{id}"), &app.staff())
        .await;
    assert_eq!(status, 204);
    let answer = app
        .get_as(&format!("/v1/webhook-endpoints/{id}"), &app.staff())
        .await;
    assert_problem(&answer, 404, "not_found");
}

/// Every status change writes its event in its own transaction and reaches the endpoint,
/// signed, in order, with the event id as `webhook-id`; a filtered endpoint gets only what
/// it asked for, and a refused booking writes no event.
#[tokio::test]
async fn every_status_change_reaches_the_endpoint_signed_and_in_order() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 1, app.night_at_start(1), 2)
        .await;
    let (other_hotel, _) = app
        .hotel_with_inventory(1.0, 1, app.night_at_start(1), 2)
        .await;
    let everything = Receiver::default();
    let (_, secret) = subscribe(&app, json!({"url": everything.start().await})).await;
    let cancels = Receiver::default();
    subscribe(
        &app,
        json!({"url": cancels.start().await, "event_types": ["reservation.canceled"],
               "hotel_id": hotel}),
    )
    .await;
    let elsewhere = Receiver::default();
    subscribe(
        &app,
        json!({"url": elsewhere.start().await, "hotel_id": other_hotel}),
    )
    .await;

    let reservation = book(&app, hotel, room_type, "g1").await;
    let id = reservation["reservation_id"].as_str().unwrap();
    // Sold out: refused, no event.
    let refused = app
        .reserve(
            "g2",
            &stay(
                Uuid::new_v4(),
                hotel,
                room_type,
                app.night_at_start(1),
                app.night_at_start(2),
                1,
            ),
        )
        .await;
    assert_problem(&refused, 409, "sold_out");
    let (status, _) = app
        .post(
            &format!("/v1/reservations/{id}/confirm"),
            &app.staff(),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post(
            &format!("/v1/reservations/{id}/cancel"),
            &app.staff(),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.count("events").await, 3);

    deliver_until(&app, || {
        everything.got().len() == 3 && cancels.got().len() == 1
    })
    .await;
    let got = everything.got();
    let types: Vec<Value> = got.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(
        types,
        vec![
            json!("reservation.created"),
            json!("reservation.confirmed"),
            json!("reservation.canceled")
        ]
    );
    for (received, status) in got.iter().zip(["pending", "confirmed", "canceled"]) {
        assert!(verifies(&secret, received), "{:?}", received.headers);
        let body = received.json();
        assert_eq!(received.id(), body["id"].as_str().unwrap());
        assert_eq!(body["data"]["reservation_id"], id);
        assert_eq!(body["data"]["status"], status);
        assert_eq!(body["data"]["payment"]["status"], "unpaid");
        assert!(body["created_at"].is_string());
    }
    assert_eq!(cancels.got()[0].json()["type"], "reservation.canceled");
    app.state.jobs.webhooks.run_once().await.unwrap();
    assert!(elsewhere.got().is_empty());
    assert_eq!(everything.got().len(), 3, "delivered once each");
}

/// An endpoint answering 500 three times gets the event on the fourth attempt, the same
/// bytes under the same `webhook-id` each time; the delivery shows its attempts.
#[tokio::test]
async fn a_failing_endpoint_gets_the_event_again_under_one_id() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 5, app.night_at_start(1), 2)
        .await;
    let receiver = Receiver::default();
    receiver.answer_next(&[
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(503),
    ]);
    let (endpoint, secret) = subscribe(&app, json!({"url": receiver.start().await})).await;
    book(&app, hotel, room_type, "g").await;

    for attempt in 1..=4 {
        app.state.jobs.webhooks.run_once().await.unwrap();
        assert_eq!(receiver.got().len(), attempt);
        // Not due again until its backoff has passed.
        app.state.jobs.webhooks.run_once().await.unwrap();
        assert_eq!(receiver.got().len(), attempt);
        app.clock.advance(chrono::Duration::hours(1));
    }
    let got = receiver.got();
    assert!(got.iter().all(|r| r.id() == got[0].id()));
    assert!(got.iter().all(|r| r.body == got[0].body));
    assert!(got.iter().all(|r| verifies(&secret, r)));
    let (status, page) = app
        .get_as(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &app.staff(),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let delivery = &page["items"][0];
    assert_eq!(delivery["status"], "succeeded", "{page}");
    assert_eq!(delivery["attempts"], 4);
    assert_eq!(delivery["last_status_code"], 200);
    assert_eq!(delivery["event_id"], got[0].id());
    assert_eq!(delivery["event_type"], "reservation.created");
    let (_, pending) = app
        .get_as(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries?status=pending"),
            &app.staff(),
        )
        .await;
    assert_eq!(pending["items"], json!([]));
    let bad = app
        .get_as(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries?status=lost"),
            &app.staff(),
        )
        .await;
    assert_problem(&bad, 422, "validation_failed");
}

/// A delivery with no 2xx for a day is failed; staff retry it, and it is sent again. A
/// delivery that succeeded cannot be retried; a later event of the same reservation waits
/// behind a pending one.
#[tokio::test]
async fn a_delivery_failed_for_a_day_can_be_retried_and_order_holds_meanwhile() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 5, app.night_at_start(1), 2)
        .await;
    let receiver = Receiver::default();
    receiver.answer_next(&[Answer::Status(500); 40]);
    let (endpoint, _) = subscribe(&app, json!({"url": receiver.start().await})).await;
    let reservation = book(&app, hotel, room_type, "g").await;
    let id = reservation["reservation_id"].as_str().unwrap();
    app.state.jobs.webhooks.run_once().await.unwrap();
    assert_eq!(receiver.got().len(), 1);
    // The cancel's event waits behind the created one, however often the job runs.
    app.post(
        &format!("/v1/reservations/{id}/cancel"),
        &app.staff(),
        &json!({}),
    )
    .await;
    app.clock.advance(chrono::Duration::hours(25));
    app.state.jobs.webhooks.run_once().await.unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 2, "only the created event is retried");
    assert!(got
        .iter()
        .all(|r| r.json()["type"] == "reservation.created"));
    let (_, failed) = app
        .get_as(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries?status=failed"),
            &app.staff(),
        )
        .await;
    let failed = failed["items"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["event_type"], "reservation.created");
    assert_eq!(failed[0]["last_status_code"], 500);

    receiver.plan.lock().unwrap().clear();
    let delivery = failed[0]["id"].as_str().unwrap();
    let retry = format!("/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/retry");
    let (status, _) = app.post(&retry, &app.guest("g"), &json!({})).await;
    assert_eq!(status, 403);
    let (status, _) = app.post(&retry, &app.staff(), &json!({})).await;
    assert_eq!(status, 202);
    deliver_until(&app, || receiver.got().len() == 4).await;
    let types: Vec<Value> = receiver.got()[2..]
        .iter()
        .map(|r| r.json()["type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![json!("reservation.created"), json!("reservation.canceled")]
    );
    let again = app.post(&retry, &app.staff(), &json!({})).await;
    assert_problem(&again, 409, "conflict");
    let unknown = app
        .post(
            &format!(
                "/v1/webhook-endpoints/{endpoint}/deliveries/{}/retry",
                Uuid::new_v4()
            ),
            &app.staff(),
            &json!({}),
        )
        .await;
    assert_problem(&unknown, 404, "not_found");
}

/// An endpoint that never answers holds up only itself: another endpoint gets the same
/// event while the first one's attempt is still hanging.
#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 5, app.night_at_start(1), 2)
        .await;
    let stuck = Receiver::default();
    stuck.answer_next(&[Answer::Hang; 10]);
    subscribe(&app, json!({"url": stuck.start().await})).await;
    let healthy = Receiver::default();
    subscribe(&app, json!({"url": healthy.start().await})).await;
    book(&app, hotel, room_type, "g").await;

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while healthy.got().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never delivered");
        app.state.jobs.webhooks.start_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stuck.hanging(),
        1,
        "the stuck endpoint's attempt is still in flight"
    );
    assert!(stuck.got().is_empty());
}

/// A delivery still waiting for one of a hanging endpoint's connections when too little of
/// its claim is left is not sent then: once the claim lapses another step may pick it, and
/// both would send it. It goes once, when it is picked again.
#[tokio::test]
async fn a_delivery_queued_past_its_claim_is_sent_once_it_lapses() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 20, app.night_at_start(1), 2)
        .await;
    let receiver = Receiver::default();
    receiver.answer_next(&[Answer::Hang; 8]);
    let (endpoint, _) = subscribe(&app, json!({"url": receiver.start().await})).await;
    for guest in 0..9 {
        book(&app, hotel, room_type, &format!("g{guest}")).await;
    }
    app.state.jobs.webhooks.start_once().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.hanging() < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "the attempts never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The ninth waits for a connection, which frees when the hanging attempts time out.
    app.clock.advance(chrono::Duration::seconds(285));
    app.state.jobs.webhooks.settled().await;
    let mut attempts: Vec<i64> = pending_of(&app, &endpoint)
        .await
        .into_iter()
        .map(|(_, attempts)| attempts)
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [0, 1, 1, 1, 1, 1, 1, 1, 1],
        "the ninth was not sent"
    );
    assert!(receiver.got().is_empty());

    app.clock.advance(chrono::Duration::seconds(16));
    deliver_until(&app, || receiver.got().len() == 9).await;
    assert!(pending_of(&app, &endpoint).await.is_empty());
    let mut ids: Vec<String> = receiver.got().iter().map(|r| r.id().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 9, "each event once");
}

/// A payment provider's secret, as the Standard Webhooks specification writes one.
fn provider_secret() -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    )
}

/// Posts a payment provider event signed with `secret` at `timestamp` (unix seconds).
async fn post_payment(
    app: &TestApp,
    secret: &str,
    webhook_id: &str,
    timestamp: i64,
    body: &Value,
) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(webhook_id, timestamp, &bytes)
        .unwrap();
    let response = app
        .http
        .post(app.url("/v1/payments/events"))
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A payment event for `reservation`, in its currency, signed now.
async fn pay(
    app: &TestApp,
    secret: &str,
    webhook_id: &str,
    kind: &str,
    reservation: &Value,
    payment_id: &str,
    amount_cents: i64,
) -> String {
    let currency = reservation["currency"].as_str().unwrap();
    let payment = (payment_id, amount_cents, currency);
    pay_in(app, secret, webhook_id, kind, reservation, payment).await
}

/// A payment event for `reservation` of `(payment_id, amount_cents, currency)`, signed now.
async fn pay_in(
    app: &TestApp,
    secret: &str,
    webhook_id: &str,
    kind: &str,
    reservation: &Value,
    (payment_id, amount_cents, currency): (&str, i64, &str),
) -> String {
    let body = json!({"type": kind, "data": {
        "payment_id": payment_id,
        "reservation_id": reservation["reservation_id"],
        "amount_cents": amount_cents,
        "currency": currency,
    }});
    let now = chrono::Utc::now().timestamp();
    let (status, answer) = post_payment(app, secret, webhook_id, now, &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["outcome"].as_str().unwrap().to_owned()
}

/// An app that takes payment events signed with the provider secret it answers, and a
/// receiver subscribed to `event_types`.
async fn saga(event_types: Value) -> (TestApp, String, Receiver) {
    let secret = provider_secret();
    let app = TestApp::spawn_with(Options {
        env: vec![("INNKEEPER_PAYMENT_WEBHOOK_SECRET", secret.clone())],
        ..Options::default()
    })
    .await;
    let receiver = Receiver::default();
    subscribe(
        &app,
        json!({"url": receiver.start().await, "event_types": event_types}),
    )
    .await;
    (app, secret, receiver)
}

/// Cancels `reservation` as `token`; the canceled reservation.
async fn cancel(app: &TestApp, reservation: &Value, token: &str) -> Value {
    let id = reservation["reservation_id"].as_str().unwrap();
    let (status, canceled) = app
        .post(&format!("/v1/reservations/{id}/cancel"), token, &json!({}))
        .await;
    assert_eq!(status, 200, "{canceled}");
    canceled
}

async fn reservation(app: &TestApp, reservation: &Value) -> Value {
    let id = reservation["reservation_id"].as_str().unwrap();
    let (status, stored) = app
        .get_as(&format!("/v1/reservations/{id}"), &app.staff())
        .await;
    assert_eq!(status, 200);
    stored
}

/// Book and pay: confirmed. The same provider event again changes nothing. Cancel the
/// paid stay: its nights come back and its refund is asked for, then recorded. Book, let
/// the hold expire, pay: no night is taken back, the refund is asked for. A wrong amount
/// leaves the stay pending, recorded; a failed payment leaves the hold.
#[tokio::test]
async fn the_payment_saga_confirms_refunds_and_never_takes_nights_back() {
    let (app, secret, receiver) = saga(json!(["reservation.confirmed", "refund.requested"])).await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 1, app.night_at_start(1), 2)
        .await;

    let paid = book(&app, hotel, room_type, "g1").await;
    let total = paid["total_cents"].as_i64().unwrap();
    let outcome = pay(
        &app,
        &secret,
        "evt-1",
        "payment.succeeded",
        &paid,
        "pay-1",
        total,
    )
    .await;
    assert_eq!(outcome, "confirmed");
    let stored = reservation(&app, &paid).await;
    assert_eq!(stored["status"], "confirmed");
    assert_eq!(
        stored["payment"],
        json!({"status": "paid", "payment_id": "pay-1", "amount_cents": total, "refunded_cents": 0})
    );
    let outcome = pay(
        &app,
        &secret,
        "evt-1",
        "payment.succeeded",
        &paid,
        "pay-1",
        total,
    )
    .await;
    assert_eq!(outcome, "duplicate");
    assert_eq!(reservation(&app, &paid).await, stored);

    let canceled = cancel(&app, &paid, &app.staff()).await;
    assert_eq!(canceled["payment"]["status"], "refund_requested");
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night_at_start(1))
            .await,
        0
    );
    let outcome = pay(
        &app,
        &secret,
        "evt-2",
        "refund.succeeded",
        &paid,
        "pay-1",
        total,
    )
    .await;
    assert_eq!(outcome, "refunded");
    let refunded = reservation(&app, &paid).await;
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(refunded["payment"]["refunded_cents"], total);

    let late = book(&app, hotel, room_type, "g2").await;
    app.clock.advance(chrono::Duration::minutes(16));
    app.state.jobs.sweeper.run_once().await.unwrap();
    let outcome = pay(
        &app,
        &secret,
        "evt-3",
        "payment.succeeded",
        &late,
        "pay-3",
        total,
    )
    .await;
    assert_eq!(outcome, "refund_requested");
    let stored = reservation(&app, &late).await;
    assert_eq!(stored["status"], "expired");
    assert_eq!(stored["payment"]["status"], "refund_requested");
    assert_eq!(stored["payment"]["payment_id"], "pay-3");
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, app.night_at_start(1))
            .await,
        0,
        "a late payment takes no night back"
    );

    let wrong = book(&app, hotel, room_type, "g3").await;
    let outcome = pay(
        &app,
        &secret,
        "evt-4",
        "payment.succeeded",
        &wrong,
        "pay-4",
        total - 1,
    )
    .await;
    assert_eq!(outcome, "mismatched");
    let stored = reservation(&app, &wrong).await;
    assert_eq!(stored["status"], "pending");
    assert_eq!(stored["payment"]["status"], "mismatched");
    let outcome = pay(
        &app,
        &secret,
        "evt-5",
        "payment.failed",
        &wrong,
        "pay-5",
        total,
    )
    .await;
    assert_eq!(outcome, "failed");
    let stored = reservation(&app, &wrong).await;
    assert_eq!(stored["status"], "pending");
    assert_eq!(stored["hold_expires_at"], wrong["hold_expires_at"]);
    let outcome = pay(
        &app,
        &secret,
        "evt-6",
        "payment.succeeded",
        &wrong,
        "pay-6",
        total,
    )
    .await;
    assert_eq!(
        outcome, "confirmed",
        "a failed payment leaves the hold, to pay again"
    );

    deliver_until(&app, || receiver.got().len() == 5).await;
    // Events of different reservations may arrive in any order; each one's in its own.
    let events: Vec<(Value, Value, Value)> = receiver
        .got()
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["data"]["reservation_id"].clone(),
                body["type"].clone(),
                body["refund"]["payment_id"].clone(),
            )
        })
        .collect();
    let of = |reservation: &Value| -> Vec<(Value, Value)> {
        events
            .iter()
            .filter(|(id, _, _)| *id == reservation["reservation_id"])
            .map(|(_, kind, refund)| (kind.clone(), refund.clone()))
            .collect()
    };
    assert_eq!(
        of(&paid),
        vec![
            (json!("reservation.confirmed"), Value::Null),
            (json!("refund.requested"), json!("pay-1")),
        ]
    );
    assert_eq!(of(&late), vec![(json!("refund.requested"), json!("pay-3"))]);
    assert_eq!(
        of(&wrong),
        vec![
            (json!("refund.requested"), json!("pay-4")),
            (json!("reservation.confirmed"), Value::Null),
        ],
        "the mismatched payment the right one replaced goes back"
    );
}

/// A payment re-sent under another webhook-id is processed once, so its refund is asked
/// for once. A mismatched payment goes back when the hold expires or the stay is
/// canceled; a payment for a stay archived since goes back. A refund counts only for a
/// payment the stay had, in its currency.
#[tokio::test]
async fn no_payment_is_kept_or_given_back_twice() {
    let (app, secret, receiver) = saga(json!(["refund.requested"])).await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 1, app.night_at_start(1), 2)
        .await;

    let canceled = book(&app, hotel, room_type, "g1").await;
    let total = canceled["total_cents"].as_i64().unwrap();
    let paid = |app, webhook_id, payment_id| {
        pay(
            app,
            &secret,
            webhook_id,
            "payment.succeeded",
            &canceled,
            payment_id,
            total,
        )
    };
    assert_eq!(paid(&app, "evt-1", "pay-1").await, "confirmed");
    assert_eq!(
        paid(&app, "evt-1-again", "pay-1").await,
        "duplicate",
        "the same payment under a new webhook-id"
    );
    cancel(&app, &canceled, &app.staff()).await;
    assert_eq!(paid(&app, "evt-2", "pay-2").await, "refund_requested");
    assert_eq!(paid(&app, "evt-2-again", "pay-2").await, "duplicate");
    let refund = |webhook_id, payment| {
        pay_in(
            &app,
            &secret,
            webhook_id,
            "refund.succeeded",
            &canceled,
            payment,
        )
    };
    assert_eq!(
        refund("evt-3", ("pay-unknown", total, "EUR")).await,
        "ignored"
    );
    assert_eq!(refund("evt-4", ("pay-1", total, "USD")).await, "ignored");
    assert_eq!(
        refund("evt-5", ("pay-2", total, "EUR")).await,
        "refunded",
        "the second payment's refund is recorded"
    );
    let stored = reservation(&app, &canceled).await;
    assert_eq!(
        stored["payment"],
        json!({"status": "refund_requested", "payment_id": "pay-1", "amount_cents": total,
               "refunded_cents": 0}),
        "only a refund of the payment the stay shows counts on it"
    );

    let expired = book(&app, hotel, room_type, "g2").await;
    let short = ("pay-3", total - 1, "EUR");
    let outcome = pay_in(&app, &secret, "evt-6", "payment.succeeded", &expired, short).await;
    assert_eq!(outcome, "mismatched");
    app.clock.advance(chrono::Duration::minutes(16));
    app.state.jobs.sweeper.run_once().await.unwrap();
    let stored = reservation(&app, &expired).await;
    assert_eq!(stored["status"], "expired");
    assert_eq!(stored["payment"]["status"], "refund_requested");

    let dropped = book(&app, hotel, room_type, "g3").await;
    let dollars = ("pay-4", total, "USD");
    let outcome = pay_in(
        &app,
        &secret,
        "evt-7",
        "payment.succeeded",
        &dropped,
        dollars,
    )
    .await;
    assert_eq!(outcome, "mismatched");
    cancel(&app, &dropped, &app.guest("g3")).await;

    // Paid wrong, then right but after the hold ended (before the sweeper saw it): both
    // go back.
    let unswept = book(&app, hotel, room_type, "g5").await;
    let short = ("pay-6", total - 1, "EUR");
    let outcome = pay_in(&app, &secret, "evt-9", "payment.succeeded", &unswept, short).await;
    assert_eq!(outcome, "mismatched");
    app.clock.advance(chrono::Duration::minutes(16));
    let right = ("pay-7", total, "EUR");
    let outcome = pay_in(
        &app,
        &secret,
        "evt-10",
        "payment.succeeded",
        &unswept,
        right,
    )
    .await;
    assert_eq!(outcome, "refund_requested");
    app.state.jobs.sweeper.run_once().await.unwrap();

    let archived = book(&app, hotel, room_type, "g4").await;
    app.clock.advance(chrono::Duration::days(40));
    let report = app.state.jobs.archiver.run_once().await.unwrap();
    assert_eq!(report.reservations_archived, 5);
    let outcome = pay(
        &app,
        &secret,
        "evt-8",
        "payment.succeeded",
        &archived,
        "pay-5",
        total,
    )
    .await;
    assert_eq!(outcome, "refund_requested", "a stay archived since");

    deliver_until(&app, || receiver.got().len() == 7).await;
    app.state.jobs.webhooks.run_once().await.unwrap();
    let mut refunds: Vec<(Value, Value, Value, Value)> = receiver
        .got()
        .iter()
        .map(|r| {
            let body = r.json();
            let refund = &body["refund"];
            (
                body["data"]["reservation_id"].clone(),
                refund["payment_id"].clone(),
                refund["amount_cents"].clone(),
                refund["currency"].clone(),
            )
        })
        .collect();
    refunds.sort_by_key(|refund| refund.1.to_string());
    let expect = |reservation: &Value, payment: &str, amount: i64, currency: &str| {
        (
            reservation["reservation_id"].clone(),
            json!(payment),
            json!(amount),
            json!(currency),
        )
    };
    assert_eq!(
        refunds,
        vec![
            expect(&canceled, "pay-1", total, "EUR"),
            expect(&canceled, "pay-2", total, "EUR"),
            expect(&expired, "pay-3", total - 1, "EUR"),
            expect(&dropped, "pay-4", total, "USD"),
            expect(&archived, "pay-5", total, "EUR"),
            expect(&unswept, "pay-6", total - 1, "EUR"),
            expect(&unswept, "pay-7", total, "EUR"),
        ],
        "every payment that does not stand for a stay is asked back, once"
    );
}

/// A payment event without a valid, fresh signature is refused and changes nothing, and
/// so is every one when no provider secret is configured.
#[tokio::test]
async fn payment_events_with_a_bad_or_stale_signature_are_refused() {
    let secret = provider_secret();
    let app = TestApp::spawn_with(Options {
        env: vec![("INNKEEPER_PAYMENT_WEBHOOK_SECRET", secret.clone())],
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 1, app.night_at_start(1), 2)
        .await;
    let booked = book(&app, hotel, room_type, "g").await;
    let body = json!({"type": "payment.succeeded", "data": {
        "payment_id": "pay-1",
        "reservation_id": booked["reservation_id"],
        "amount_cents": booked["total_cents"],
        "currency": booked["currency"],
    }});
    let now = chrono::Utc::now().timestamp();
    let other = format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32])
    );
    for (secret, timestamp) in [(&other, now), (&secret, now - 600), (&secret, now + 600)] {
        let answer = post_payment(&app, secret, "evt-1", timestamp, &body).await;
        assert_problem(&answer, 401, "unauthorized");
    }
    let unsigned = app
        .http
        .post(app.url("/v1/payments/events"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    assert_eq!(reservation(&app, &booked).await["status"], "pending");
    assert_eq!(app.count("payment_events").await, 0);

    let unconfigured = TestApp::spawn().await;
    let answer = post_payment(&unconfigured, &secret, "evt-1", now, &body).await;
    assert_problem(&answer, 401, "unauthorized");
}

/// innkeeper killed (SIGKILL) after a booking committed and before its event was sent:
/// the event is delivered after a restart, signed, carrying the reservation the guest was
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_crash_is_delivered_after_the_restart() {
    use crate::faults::{Innkeeper, Servers};

    let servers = Servers::start("webhook-kill");
    let app = TestApp::spawn_with(Options {
        database_url: Some(servers.database_url()),
        redis_url: Some(servers.redis_url()),
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 5, app.night_at_start(1), 2)
        .await;
    let receiver = Receiver::default();
    let (_, secret) = subscribe(&app, json!({"url": receiver.start().await})).await;

    // Its webhook job off: whatever it commits stays undelivered when it dies.
    let mut doomed = Innkeeper::start_with(
        &servers,
        &app.prefix,
        None,
        &[("INNKEEPER_WEBHOOK_INTERVAL_MS", "0")],
    )
    .await;
    let body = stay(
        Uuid::new_v4(),
        hotel,
        room_type,
        app.night_at_start(1),
        app.night_at_start(3),
        1,
    );
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/reservations", doomed.base))
        .bearer_auth(app.guest("g"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let booked: Value = answer.json().await.unwrap();
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    assert!(receiver.got().is_empty());
    assert_eq!(app.count("events").await, 1);

    let _restarted = Innkeeper::start_with(
        &servers,
        &app.prefix,
        None,
        &[("INNKEEPER_WEBHOOK_INTERVAL_MS", "50")],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while receiver.got().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    assert!(verifies(&secret, &got[0]));
    let event = got[0].json();
    assert_eq!(event["type"], "reservation.created");
    assert_eq!(event["data"], booked);
}

/// The pending deliveries of `endpoint`, as staff list them: (event type, attempts).
async fn pending_of(app: &TestApp, endpoint: &str) -> Vec<(String, i64)> {
    let (status, page) = app
        .get_as(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries?status=pending&limit=200"),
            &app.staff(),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let kind = d["event_type"].as_str().unwrap().to_owned();
            (kind, d["attempts"].as_i64().unwrap())
        })
        .collect()
}

/// An endpoint that answers 500 to everything gets each reservation's first event again
/// and again, while the later ones wait behind it, however many of them there are: waiting
/// events never crowd the retries out of a pick (40 of them wait here; a pick reads 32
/// candidates while the endpoint fails).
#[tokio::test]
async fn a_dead_endpoints_waiting_events_never_crowd_out_its_retries() {
    let app = TestApp::spawn_with(Options {
        env: vec![("INNKEEPER_WEBHOOK_RETRY_BASE_MS", "1000".into())],
        ..Options::default()
    })
    .await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 40, app.night_at_start(1), 2)
        .await;
    let receiver = Receiver::default();
    receiver.answer_next(&[Answer::Status(500); 1000]);
    let (endpoint, _) = subscribe(&app, json!({"url": receiver.start().await})).await;
    for guest in 0..40 {
        let booked = book(&app, hotel, room_type, &format!("g{guest}")).await;
        cancel(&app, &booked, &app.staff()).await;
    }

    // Each round every retry is due (the backoff is at most 1.5 s times 2^attempts).
    for round in 0..12 {
        app.state.jobs.webhooks.run_once().await.unwrap();
        app.clock
            .advance(chrono::Duration::seconds(2 << round.min(4)));
    }
    let pending = pending_of(&app, &endpoint).await;
    assert_eq!(pending.len(), 80, "{pending:?}");
    for (kind, attempts) in &pending {
        match kind.as_str() {
            "reservation.created" => assert!(*attempts >= 2, "{pending:?}"),
            _ => assert_eq!(*attempts, 0, "a later event waits: {pending:?}"),
        }
    }
}

/// Deleting an endpoint fails its pending deliveries at the next step, and only its own.
#[tokio::test]
async fn a_deleted_endpoints_pending_deliveries_fail() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 5, app.night_at_start(1), 2)
        .await;
    let (dead, alive) = (Receiver::default(), Receiver::default());
    dead.answer_next(&[Answer::Status(500)]);
    alive.answer_next(&[Answer::Status(500)]);
    let (gone, _) = subscribe(&app, json!({"url": dead.start().await})).await;
    let (kept, _) = subscribe(&app, json!({"url": alive.start().await})).await;
    book(&app, hotel, room_type, "g").await;
    app.state.jobs.webhooks.run_once().await.unwrap();
    assert_eq!(pending_of(&app, &gone).await.len(), 1);
    assert_eq!(pending_of(&app, &kept).await.len(), 1);

    app.clock.advance(chrono::Duration::seconds(1));
    let (status, _) = app
        .delete(&format!("/v1/webhook-endpoints/{gone}"), &app.staff())
        .await;
    assert_eq!(status, 204);
    app.state.jobs.webhooks.run_once().await.unwrap();
    let client = app.db.get().await.unwrap();
    let statuses: Vec<(Uuid, String)> = client
        .query(
            "SELECT endpoint_id, status FROM webhook_deliveries ORDER BY endpoint_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let failed = |id: &str| (Uuid::parse_str(id).unwrap(), "failed".to_owned());
    let pending = |id: &str| (Uuid::parse_str(id).unwrap(), "pending".to_owned());
    let mut expected = vec![failed(&gone), pending(&kept)];
    expected.sort();
    assert_eq!(statuses, expected);
    assert_eq!(
        dead.got().len(),
        1,
        "nothing more is sent to a deleted endpoint"
    );
}

/// A claim that lapsed (the process died after picking) leaves a reservation's first event
/// due later than the events waiting behind it; those are put back, not picked over and
/// over, so the first one is sent again and the rest follow it.
#[tokio::test]
async fn events_waiting_behind_a_lapsed_claim_follow_it() {
    let app = TestApp::spawn().await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, 40, app.night_at_start(1), 2)
        .await;
    let receiver = Receiver::default();
    receiver.answer_next(&[Answer::Status(500); 40]);
    let (endpoint, _) = subscribe(&app, json!({"url": receiver.start().await})).await;
    for guest in 0..40 {
        let booked = book(&app, hotel, room_type, &format!("g{guest}")).await;
        cancel(&app, &booked, &app.staff()).await;
    }
    app.state.jobs.webhooks.run_once().await.unwrap();
    assert_eq!(receiver.got().len(), 40, "every first event, answered 500");

    // As a crash after a pick leaves them: the first events claimed for the attempt
    // timeout's worth, the later ones due now.
    let now = innkeeper::clock::Clock::now(app.clock.as_ref());
    let client = app.db.get().await.unwrap();
    client
        .execute(
            "UPDATE webhook_deliveries d SET next_attempt_at = CASE e.type \
                 WHEN 'reservation.created' THEN $1::timestamptz + interval '300 seconds' \
                 ELSE $1 END \
             FROM events e WHERE e.event_id = d.event_id",
            &[&now],
        )
        .await
        .unwrap();
    app.clock.advance(chrono::Duration::seconds(301));
    for _ in 0..40 {
        if pending_of(&app, &endpoint).await.is_empty() {
            break;
        }
        app.state.jobs.webhooks.run_once().await.unwrap();
        app.clock.advance(chrono::Duration::seconds(11));
    }
    assert_eq!(pending_of(&app, &endpoint).await, vec![]);
    assert_eq!(receiver.got().len(), 120);
}
