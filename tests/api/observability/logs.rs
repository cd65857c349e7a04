//! Request ids and the log lines that carry them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use innkeeper::config::Secret;
use innkeeper::domain::Role;
use innkeeper::http::auth::Auth;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{free_port, fresh_database, hotel_body, stay, TestApp, JWT_SECRET};

use super::{scrape, value};

#[tokio::test]
async fn request_ids_are_taken_from_the_client_or_made_up_and_returned() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/guest-book/nowhere"] {
        let response = app
            .http
            .get(app.url(path))
            .header("x-request-id", "ada-checkout-42")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "ada-checkout-42");

        let response = app.http.get(app.url(path)).send().await.unwrap();
        let made_up = response.headers()["x-request-id"].to_str().unwrap();
        assert!(Uuid::parse_str(made_up).is_ok(), "{made_up}");
    }
}

/// A real `innkeeper serve` whose JSON log lines are collected. Killed when dropped.
struct LoggingServer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LoggingServer {
    fn start(envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_innkeeper"));
        command
            .arg("serve")
            .env_remove("INNKEEPER_DATA_DIR")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Stops the server and returns every line it logged.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The request id of the `request` span a JSON log line was written in, if any.
fn request_id_of(line: &Value) -> Option<&str> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|span| span["name"] == "request")
        .map(|span| span["request_id"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn every_log_line_of_a_request_names_its_request_id() {
    let database_url = fresh_database().await;
    // Nothing listens there: bookings log that they go through Postgres alone.
    let unreachable_redis = format!("redis://127.0.0.1:{}", free_port());
    let address = format!("127.0.0.1:{}", free_port());
    let server = LoggingServer::start(&[
        ("DATABASE_URL", &database_url),
        ("REDIS_URL", &unreachable_redis),
        ("INNKEEPER_JWT_SECRET", JWT_SECRET),
        ("INNKEEPER_BIND", &address),
        ("INNKEEPER_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,tower_http=debug"),
    ]);
    let base = format!("http://{address}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "innkeeper did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let auth = Auth::new(
        &Secret::new(JWT_SECRET),
        std::sync::Arc::new(innkeeper::clock::SystemClock),
        crate::helpers::TOKEN_TTL_LIMIT,
    );
    let token = |role, sub| auth.issue(sub, role, Duration::from_secs(600)).unwrap();
    let staff = token(Role::Staff, "staff-1");
    let send = |method: Method, path: String, token: &str, body: Value, id: &str| {
        let request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .header("x-request-id", id)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, hotel) = send(
        Method::POST,
        "/v1/hotels".into(),
        &staff,
        hotel_body("Harbour Inn", 1.0),
        "staff-setup-1",
    )
    .await;
    assert_eq!(status, 201, "{hotel}");
    let hotel = hotel["id"].as_i64().unwrap();
    let (status, room_type) = send(
        Method::POST,
        format!("/v1/hotels/{hotel}/room-types"),
        &staff,
        json!({"name": "Double", "max_occupancy": 2}),
        "staff-setup-2",
    )
    .await;
    assert_eq!(status, 201, "{room_type}");
    let room_type = room_type["id"].as_i64().unwrap();
    let night = Utc::now().date_naive() + chrono::Days::new(7);
    let (status, days) = send(
        Method::PUT,
        format!("/v1/hotels/{hotel}/room-types/{room_type}/inventory"),
        &staff,
        json!({"from": night, "to": night + chrono::Days::new(2), "total_inventory": 5, "rate_cents": 9_000}),
        "staff-setup-3",
    )
    .await;
    assert_eq!(status, 200, "{days}");
    let booking = stay(
        Uuid::new_v4(),
        hotel,
        room_type,
        night,
        night + chrono::Days::new(2),
        1,
    );
    let (status, reservation) = send(
        Method::POST,
        "/v1/reservations".into(),
        &token(Role::Guest, "ada"),
        booking,
        "ada-booking-1",
    )
    .await;
    assert_eq!(status, 201, "{reservation}");
    let response = http.get(format!("{base}/healthz")).send().await.unwrap();
    let made_up = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // The probes at the scrape see Redis down and Postgres up.
    let samples = scrape(&base).await;
    assert_eq!(
        value(&samples, "innkeeper_backend_up", &[("backend", "redis")]),
        0.0
    );
    assert_eq!(
        value(&samples, "innkeeper_backend_up", &[("backend", "postgres")]),
        1.0
    );

    let lines: Vec<Value> = server
        .stop()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let messages_of = |id: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|line| request_id_of(line) == Some(id))
            .map(|line| {
                line["fields"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let booking = messages_of("ada-booking-1");
    assert!(
        booking
            .iter()
            .any(|m| m.contains("booking through Postgres alone")),
        "{booking:#?}"
    );
    assert!(
        booking.iter().any(|m| m == "finished processing request"),
        "{booking:#?}"
    );
    assert!(
        messages_of("staff-setup-3")
            .iter()
            .any(|m| m.contains("could not refresh Redis")),
        "{lines:#?}"
    );
    assert!(
        messages_of(&made_up)
            .iter()
            .any(|m| m == "finished processing request"),
        "{lines:#?}"
    );
    // No line written inside a request lacks its id.
    for line in &lines {
        if let Some(id) = request_id_of(line) {
            assert!(!id.is_empty(), "{line}");
        }
    }
}
