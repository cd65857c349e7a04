//! The dashboards and alert rules of grafana/, evaluated by a real Prometheus scraping innkeeper.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{free_port, stay, TestApp};

use super::scrape;

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
        // The tests install nothing: the README's prerequisites (and .ci/run) do.
        let binary = on_path("prometheus").unwrap_or_else(|| {
            panic!(
                "prometheus is not on the PATH; install the README's prerequisites \
                 (on Debian: apt-get install prometheus)"
            )
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
    for script in ["reserve", "commit", "release", "load_nights", "reconcile"] {
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
