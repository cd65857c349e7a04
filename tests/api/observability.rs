//! Observability: the series innkeeper exports, request ids in responses and log lines, and
//! grafana/'s dashboards and alert rules, evaluated by a real Prometheus that scrapes a
//! real innkeeper under a booking load.
//!
//! Every app of this test binary renders the same metrics registry (the `metrics` facade has
//! one global recorder), so counts read here include other tests' traffic: they are
//! compared with at least what a test did, never exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use innkeeper::config::Secret;
use innkeeper::domain::Role;
use innkeeper::http::auth::Auth;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{free_port, fresh_database, hotel_body, stay, TestApp, JWT_SECRET};

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a Prometheus text exposition. Label values may hold braces (route
/// templates do), so they are read as quoted strings.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample has a value");
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inside) = rest.strip_prefix('{') {
            let mut chars = inside.char_indices().peekable();
            let mut key = String::new();
            let end = loop {
                let (index, c) = chars.next().expect("labels end with }");
                match c {
                    '}' => break index,
                    ',' | ' ' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(escaped) => value.push(escaped),
                                    None => panic!("a dangling escape in {line}"),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            };
            rest = &inside[end + 1..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no value in {line}"));
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

async fn scrape(base: &str) -> Vec<Sample> {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    parse_exposition(&response.text().await.unwrap())
}

/// The sample named `name` whose labels include `labels`, if any.
fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|sample| {
        sample.name == name
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
    })
}

#[track_caller]
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, name, labels)
        .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
        .value
}

#[tokio::test]
async fn every_series_exists_from_startup() {
    let app = TestApp::spawn().await;
    let samples = scrape(&app.base).await;
    let mut missing = Vec::new();
    let mut expect = |name: &str, labels: &[(&str, &str)]| {
        if find(&samples, name, labels).is_none() {
            missing.push(format!("{name}{labels:?}"));
        }
    };
    // Each status a route's OpenAPI entry documents, and the 5xx any route may answer.
    for status in ["204", "401", "403", "404", "500", "503"] {
        expect(
            "innkeeper_http_requests_total",
            &[
                ("method", "DELETE"),
                ("route", "/v1/hotels/{hotel_id}/rooms/{room_id}"),
                ("status", status),
            ],
        );
    }
    for le in ["0.0001", "1", "10", "+Inf"] {
        expect(
            "innkeeper_http_request_duration_seconds_bucket",
            &[
                ("method", "PUT"),
                ("route", "/v1/hotels/{hotel_id}/rooms/{room_id}"),
                ("le", le),
            ],
        );
    }
    for outcome in [
        "created",
        "replayed",
        "sold_out",
        "sold_out_db_recheck",
        "idempotency_conflict",
        "in_progress",
        "error",
    ] {
        expect("innkeeper_reservations_total", &[("outcome", outcome)]);
    }
    for script in ["reserve", "release", "load_nights", "reconcile"] {
        expect(
            "innkeeper_inventory_script_duration_seconds_bucket",
            &[("script", script), ("le", "0.0005")],
        );
    }
    for operation in [
        "book",
        "end_stay",
        "confirm",
        "put_inventory",
        "expire_holds",
        "archive",
    ] {
        expect(
            "innkeeper_db_transaction_duration_seconds_count",
            &[("operation", operation)],
        );
    }
    for pool in [
        "innkeeper_db_pool_connections",
        "innkeeper_redis_pool_connections",
    ] {
        for state in ["idle", "in_use", "waiting", "max"] {
            expect(pool, &[("state", state)]);
        }
    }
    for backend in ["postgres", "redis"] {
        expect("innkeeper_backend_up", &[("backend", backend)]);
    }
    for name in [
        "innkeeper_reconciler_runs_total",
        "innkeeper_reconciler_drift_nights",
        "innkeeper_reconciler_repairs_total",
        "innkeeper_reconciler_last_success_timestamp_seconds",
        "innkeeper_holds_expired_total",
        "innkeeper_redis_fallbacks_total",
    ] {
        expect(name, &[]);
    }
    for result in ["ok", "failed"] {
        expect("innkeeper_compensations_total", &[("result", result)]);
    }
    assert!(missing.is_empty(), "missing at startup: {missing:#?}");
    // Sampled at the scrape: this app's Postgres pool (8 in tests) and both backends.
    assert_eq!(
        value(
            &samples,
            "innkeeper_db_pool_connections",
            &[("state", "max")]
        ),
        8.0
    );
    assert_eq!(
        value(&samples, "innkeeper_backend_up", &[("backend", "postgres")]),
        1.0
    );
}

#[tokio::test]
async fn requests_are_labelled_by_route_template_never_by_raw_path() {
    let app = TestApp::spawn().await;
    let hotel = app.create_hotel(hotel_body("Harbour Inn", 1.1)).await;
    assert_eq!(app.get(&format!("/v1/hotels/{hotel}")).await.0, 200);
    let stranger = Uuid::new_v4();
    assert_eq!(app.get(&format!("/guest-book/{stranger}")).await.0, 404);
    let brew = Method::from_bytes(b"BREW").unwrap();
    assert_eq!(app.send(brew, "/v1/hotels", None, None).await.0, 405);

    let samples = scrape(&app.base).await;
    let one_hotel = [("method", "GET"), ("route", "/v1/hotels/{hotel_id}")];
    assert!(
        value(
            &samples,
            "innkeeper_http_request_duration_seconds_count",
            &one_hotel
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "innkeeper_http_requests_total",
            &[one_hotel[0], one_hotel[1], ("status", "200")]
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "innkeeper_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            "innkeeper_http_requests_total",
            &[
                ("method", "OTHER"),
                ("route", "/v1/hotels"),
                ("status", "405")
            ]
        ) >= 1.0
    );
    // Every route label is a documented template: no ids, no paths made up by clients.
    let (_, document) = app.get("/openapi.json").await;
    let templates: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .chain(["unmatched"])
        .collect();
    for sample in &samples {
        if let Some(route) = sample.labels.get("route") {
            assert!(templates.contains(route.as_str()), "{sample:?}");
        }
        assert!(
            !sample
                .labels
                .values()
                .any(|value| value.contains(&stranger.to_string())),
            "{sample:?}"
        );
    }
}

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

/// A Prometheus of this test's own: its binary, with grafana/prometheus.yml pointed at one
/// innkeeper, its data in a directory of its own, on a free port. Killed when dropped.
struct Prometheus {
    child: Mutex<Child>,
    dir: PathBuf,
    base: String,
    http: reqwest::Client,
}

/// Where the dashboards, alert rules and Prometheus configuration live.
fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana")
}

fn on_path(binary: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(binary))
        .find(|path| path.is_file())
}

/// Installs Debian's prometheus package when the tests run as root, as a fresh machine's
/// `cargo test` does: the README promises it passes with only Rust and the PostgreSQL and
/// Redis server packages installed. The package's own service is never used.
fn install_prometheus() -> Option<PathBuf> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|status| status.success())
    };
    if apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "prometheus"]) {
        on_path("prometheus")
    } else {
        None
    }
}

#[track_caller]
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} in grafana/prometheus.yml"
    );
    text.replace(from, to)
}

impl Prometheus {
    /// Starts Prometheus on the shipped configuration, changed only in where innkeeper
    /// listens, where the rules file is, and a one-second scrape and rule interval.
    fn start(innkeeper: &str) -> Self {
        let binary = on_path("prometheus")
            .or_else(install_prometheus)
            .unwrap_or_else(|| {
                panic!("prometheus is not installed and this user cannot install it: apt-get install prometheus")
            });
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("prometheus")
            .join(Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = std::fs::read_to_string(grafana_dir().join("prometheus.yml")).unwrap();
        let config = replace_once(&shipped, "scrape_interval: 15s", "scrape_interval: 1s");
        let config = replace_once(
            &config,
            "evaluation_interval: 15s",
            "evaluation_interval: 1s",
        );
        let config = replace_once(&config, "localhost:8080", innkeeper);
        let rules = grafana_dir().join("alerts.yml");
        let config = replace_once(&config, "- alerts.yml", &format!("- {}", rules.display()));
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child: Mutex::new(child),
            dir,
            base: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `ready` until it holds, failing with Prometheus' log after `timeout`.
    async fn wait_for(&self, what: &str, ready: impl AsyncFn() -> bool) {
        let started = Instant::now();
        while !ready().await {
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
                panic!(
                    "prometheus exited ({status}) waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The result of an instant query; fails on any error Prometheus reports.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        match &body["data"]["result"] {
            Value::Array(result) if body["data"]["resultType"] != "scalar" => result.clone(),
            scalar => vec![scalar.clone()],
        }
    }

    /// The one value of a query that must answer exactly one series.
    async fn single(&self, expr: &str) -> f64 {
        let result = self.query(expr).await;
        assert_eq!(result.len(), 1, "{expr}: {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    }

    /// The alerting rules as Prometheus loaded them.
    async fn rules(&self) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/rules", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|group| group["rules"].as_array().unwrap().clone())
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every (dashboard, panel, expression) of grafana/dashboards.
fn dashboard_expressions() -> Vec<(String, String, String)> {
    fn walk(dashboard: &str, panels: &[Value], found: &mut Vec<(String, String, String)>) {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            if let Some(targets) = panel["targets"].as_array() {
                assert_eq!(
                    panel["datasource"]["uid"], "innkeeper-prometheus",
                    "{dashboard} / {title} reads another datasource than the provisioned one"
                );
                for target in targets {
                    let expr = target["expr"].as_str().expect("every target has an expr");
                    found.push((dashboard.to_owned(), title.to_owned(), expr.to_owned()));
                }
            }
            if let Some(nested) = panel["panels"].as_array() {
                walk(dashboard, nested, found);
            }
        }
    }
    let mut found = Vec::new();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(grafana_dir().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            dashboards += 1;
            let dashboard: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let title = dashboard["title"].as_str().unwrap().to_owned();
            walk(&title, dashboard["panels"].as_array().unwrap(), &mut found);
        }
    }
    assert!(
        dashboards >= 2,
        "the service overview and inventory dashboards"
    );
    found
}

/// The `innkeeper_*` metric names an expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.match_indices("innkeeper_")
        .map(|(start, _)| {
            expr[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// What the booking load did, as its answers said.
#[derive(Debug, Default)]
struct Load {
    created: u64,
    sold_out: u64,
    replayed: u64,
    conflicts: u64,
    bookings_sent: u64,
}

/// A short peak-season rush on one room type: more guests than rooms, some retries, a
/// reused id, cancels, confirms and availability searches; then a reconciler pass.
async fn booking_load(app: &TestApp) -> Load {
    let check_in = app.night(20);
    let check_out = app.night(22);
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 30, check_in, 2).await;
    let mut load = Load::default();
    let attempts: Vec<(String, Value)> = (0..240)
        .map(|guest| {
            let body = stay(Uuid::new_v4(), hotel, room_type, check_in, check_out, 1);
            (format!("guest-{guest}"), body)
        })
        .collect();
    let answers: Vec<(u16, Value)> = futures::stream::iter(&attempts)
        .map(|(guest, body)| app.reserve(guest, body))
        .buffered(16)
        .collect()
        .await;
    load.bookings_sent += attempts.len() as u64;
    let mut booked = Vec::new();
    for ((guest, body), (status, answer)) in attempts.iter().zip(&answers) {
        match status {
            201 => {
                load.created += 1;
                booked.push((guest, body));
            }
            409 if answer["code"] == "sold_out" => load.sold_out += 1,
            _ => panic!("{status} {answer}"),
        }
    }
    assert_eq!(load.created, 30, "30 rooms, one each");
    for (guest, body) in booked.iter().take(20) {
        assert_eq!(app.reserve(guest, body).await.0, 200);
        load.replayed += 1;
    }
    for (guest, body) in booked.iter().take(5) {
        let mut other = (*body).clone();
        other["rooms"] = json!(2);
        assert_eq!(app.reserve(guest, &other).await.0, 422);
        load.conflicts += 1;
    }
    load.bookings_sent += load.replayed + load.conflicts;
    for (index, (guest, body)) in booked.iter().enumerate().take(20) {
        let id = body["reservation_id"].as_str().unwrap();
        let (path, token) = if index % 2 == 0 {
            (format!("/v1/reservations/{id}/cancel"), app.guest(guest))
        } else {
            (format!("/v1/reservations/{id}/confirm"), app.staff())
        };
        let (status, answer) = app.post(&path, &token, &Value::Null).await;
        assert_eq!(status, 200, "{answer}");
    }
    for _ in 0..20 {
        let path =
            format!("/v1/hotels/{hotel}/availability?check_in={check_in}&check_out={check_out}");
        assert_eq!(app.get(&path).await.0, 200);
    }
    // The background jobs are off in tests; one reconciler pass by hand.
    let (status, report) = app
        .post("/v1/admin/reconcile", &app.staff(), &Value::Null)
        .await;
    assert_eq!(status, 200, "{report}");
    load
}

fn unix_now() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

#[tokio::test]
async fn dashboards_and_alerts_evaluate_on_a_real_prometheus_scraping_innkeeper() {
    let app = TestApp::spawn().await;
    let prometheus = Prometheus::start(app.base.trim_start_matches("http://"));
    let first_scrape = async || {
        let ready = prometheus
            .http
            .get(format!("{}/-/ready", prometheus.base))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200);
        ready
            && !prometheus
                .query(r#"up{job="innkeeper"} == 1"#)
                .await
                .is_empty()
    };
    prometheus
        .wait_for("a first scrape of innkeeper", first_scrape)
        .await;

    // The load falls between that scrape and a later one, so rates over it are not zero.
    let load = booking_load(&app).await;
    let load_ended = unix_now();
    let scraped_after_load = async || {
        let scraped = prometheus.query(r#"timestamp(up{job="innkeeper"})"#).await;
        scraped
            .first()
            .and_then(|sample| sample["value"][1].as_str()?.parse::<f64>().ok())
            .is_some_and(|at| at > load_ended + 1.0)
    };
    prometheus
        .wait_for("a scrape after the load", scraped_after_load)
        .await;
    let rules_evaluated = async || {
        let rules = prometheus.rules().await;
        !rules.is_empty()
            && rules.iter().all(|rule| {
                rule["lastEvaluation"]
                    .as_str()
                    .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at.timestamp_millis() as f64 / 1000.0 > load_ended + 1.0)
            })
    };
    prometheus
        .wait_for("the rules evaluated after the load", rules_evaluated)
        .await;

    let exported: BTreeSet<String> = scrape(&app.base)
        .await
        .into_iter()
        .map(|sample| sample.name)
        .collect();
    let mut referenced = BTreeSet::new();

    // Every alert evaluates cleanly in Prometheus, has a unit test, and reads series that
    // exist. A healthy load fires none, so their full expressions may return nothing.
    let unit_tests = std::fs::read_to_string(grafana_dir().join("alerts.test.yml")).unwrap();
    let rules = prometheus.rules().await;
    assert!(rules.len() >= 7, "{rules:#?}");
    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        let expr = rule["query"].as_str().unwrap();
        assert_eq!(rule["health"], "ok", "{name}: {}", rule["lastError"]);
        assert!(
            unit_tests.contains(&format!("alertname: {name}\n")),
            "{name} has no unit test in grafana/alerts.test.yml"
        );
        prometheus.query(expr).await;
        for metric in metric_names(expr) {
            assert!(
                !prometheus.query(&metric).await.is_empty(),
                "{name} reads {metric}, which Prometheus has no series of"
            );
            referenced.insert(metric);
        }
    }

    // Every panel's expression returns data: every series it reads exists from startup,
    // and the load moved those a booking touches.
    let panels = dashboard_expressions();
    for (dashboard, panel, expr) in &panels {
        let expr = expr.replace("$__rate_interval", "1m");
        assert!(
            !expr.contains('$'),
            "{dashboard} / {panel}: an unknown variable in {expr}"
        );
        let result = prometheus.query(&expr).await;
        assert!(
            !result.is_empty(),
            "{dashboard} / {panel}: no data for {expr}"
        );
        referenced.extend(metric_names(&expr));
    }

    for metric in &referenced {
        assert!(
            exported.contains(metric),
            "{metric} is used but innkeeper does not export it"
        );
    }

    // What the load did reached Prometheus through every layer that is instrumented.
    let at_least = async |expr: &str, expected: f64| {
        let got = prometheus.single(expr).await;
        assert!(
            got >= expected,
            "{expr} = {got}, expected at least {expected}"
        );
    };
    at_least(
        r#"sum(innkeeper_reservations_total{outcome="created"})"#,
        load.created as f64,
    )
    .await;
    at_least(
        r#"sum(innkeeper_reservations_total{outcome=~"sold_out|sold_out_db_recheck"})"#,
        load.sold_out as f64,
    )
    .await;
    at_least(
        r#"sum(innkeeper_reservations_total{outcome="replayed"})"#,
        load.replayed as f64,
    )
    .await;
    at_least(
        r#"sum(innkeeper_reservations_total{outcome="idempotency_conflict"})"#,
        load.conflicts as f64,
    )
    .await;
    at_least(
        r#"sum(innkeeper_http_requests_total{method="POST", route="/v1/reservations"})"#,
        load.bookings_sent as f64,
    )
    .await;
    at_least(
        r#"sum(rate(innkeeper_http_request_duration_seconds_count{method="POST", route="/v1/reservations"}[1m]))"#,
        f64::MIN_POSITIVE,
    )
    .await;
    for script in ["reserve", "release", "load_nights", "reconcile"] {
        at_least(
            &format!(
                r#"sum(innkeeper_inventory_script_duration_seconds_count{{script="{script}"}})"#
            ),
            1.0,
        )
        .await;
    }
    for operation in ["book", "end_stay", "confirm", "put_inventory"] {
        at_least(
            &format!(
                r#"sum(innkeeper_db_transaction_duration_seconds_count{{operation="{operation}"}})"#
            ),
            1.0,
        )
        .await;
    }
    at_least(r#"sum(innkeeper_compensations_total{result="ok"})"#, 1.0).await;
    for pool in [
        "innkeeper_db_pool_connections",
        "innkeeper_redis_pool_connections",
    ] {
        at_least(&format!(r#"max({pool}{{state="max"}})"#), 1.0).await;
    }
    at_least(r#"min(innkeeper_backend_up)"#, 1.0).await;
    at_least("sum(innkeeper_reconciler_runs_total)", 1.0).await;
    at_least(
        "max(innkeeper_reconciler_last_success_timestamp_seconds)",
        load_ended - 60.0,
    )
    .await;
}
