//! Fault injection with real processes: Redis killed or shut down without saving,
//! PostgreSQL stopped immediately or frozen, and innkeeper killed between the Redis
//! deduction and the Postgres commit. After each fault, under a booking load:
//! - every reservation answered 201 is in Postgres;
//! - no night is over capacity;
//! - Postgres' total_reserved equals the live reservations on every night;
//! - one reconcile pass makes Redis equal Postgres on every night.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::stream::{self, StreamExt};
use innkeeper::devservices::{Durability, PostgresServer, RedisServer};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{children_of, stay, Options, TestApp};

pub const NIGHTS: u64 = 4;
pub const TOTAL: i64 = 80;

/// Private servers for one fault test, in a directory removed at the end.
pub struct Servers {
    dir: PathBuf,
    postgres: PostgresServer,
    redis: RedisServer,
}

impl Servers {
    /// The database innkeeper uses on these servers.
    pub fn database_url(&self) -> String {
        self.postgres.url()
    }

    /// The Redis innkeeper uses on these servers.
    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    pub fn start(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fault-{name}-{}", Uuid::new_v4().simple()));
        // Durable: with the test cluster's synchronous_commit=off an immediate stop loses
        // acknowledged commits, which is exactly what these tests must not excuse.
        let postgres = PostgresServer::start(&dir.join("postgres"), Durability::Durable).unwrap();
        let redis = RedisServer::start(&dir.join("redis"), Durability::Throwaway).unwrap();
        Self {
            dir,
            postgres,
            redis,
        }
    }

    /// An innkeeper on these servers. Postgres faults use short timeouts so that bookings
    /// caught by the fault give up (503) within the test's time.
    async fn app(&self, during: &During) -> TestApp {
        let env = match during {
            During::BookingsCarryOn => Vec::new(),
            During::SomeUnavailable => vec![
                ("INNKEEPER_DB_STATEMENT_TIMEOUT_MS", "1000".into()),
                ("INNKEEPER_IN_FLIGHT_TTL", "8".into()),
            ],
        };
        TestApp::spawn_with(Options {
            database_url: Some(self.postgres.url()),
            redis_url: Some(self.redis.url()),
            env,
            ..Options::default()
        })
        .await
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.redis.stop();
        let _ = self.postgres.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Books `count` stays, `concurrency` at a time, and returns the ids answered 201 and
/// every status seen. `progress` counts finished requests, for placing the fault.
pub async fn book_load(
    app: &TestApp,
    hotel: i64,
    room_type: i64,
    count: usize,
    progress: Arc<AtomicUsize>,
) -> (Vec<Uuid>, Vec<u16>) {
    let first = app.night(1);
    let answers: Vec<(Uuid, u16)> = stream::iter(0..count)
        .map(|n| {
            let progress = progress.clone();
            async move {
                let id = Uuid::new_v4();
                let start = (n as u64) % NIGHTS;
                let length = 1 + (n as u64 % 2).min(NIGHTS - start - 1);
                let check_in = first + chrono::Days::new(start);
                let body = stay(
                    id,
                    hotel,
                    room_type,
                    check_in,
                    check_in + chrono::Days::new(length),
                    1,
                );
                let (status, _) = app.reserve(&format!("load-{n}"), &body).await;
                progress.fetch_add(1, Ordering::SeqCst);
                (id, status)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let created = answers
        .iter()
        .filter(|(_, status)| *status == 201)
        .map(|(id, _)| *id)
        .collect();
    (
        created,
        answers.into_iter().map(|(_, status)| status).collect(),
    )
}

pub async fn wait_for(progress: &AtomicUsize, at_least: usize) {
    let started = Instant::now();
    while progress.load(Ordering::SeqCst) < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the load stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The four checks of the module header.
pub async fn assert_consistent(
    app: &TestApp,
    hotel: i64,
    room_type: i64,
    nights: u64,
    created: &[Uuid],
    statuses: &[u16],
) {
    assert!(
        statuses.iter().all(|s| [201, 409, 503].contains(s)),
        "unexpected statuses: {statuses:?}"
    );
    let stored = app.stored(created).await;
    assert_eq!(
        stored,
        created.len() as i64,
        "an acknowledged booking is missing from Postgres"
    );
    let nights: Vec<NaiveDate> = (1..=nights).map(|d| app.night(d)).collect();
    for night in &nights {
        let reserved = app.reserved_in_postgres(hotel, room_type, *night).await;
        assert!(
            reserved <= TOTAL,
            "night {night} holds {reserved} of {TOTAL}"
        );
        assert_eq!(
            reserved,
            app.live_rooms(hotel, room_type, *night).await,
            "night {night}"
        );
    }
    // Deductions cut short by the fault are abandoned: past their deadline they no longer
    // count as in flight, and one pass repairs every night Redis holds. A night Redis lost
    // (a restart) and nobody asked for since is not drift: the next ask loads it.
    app.clock.advance(chrono::Duration::seconds(60));
    let (status, report) = app
        .post("/v1/admin/reconcile", &app.staff(), &json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    let mut held = Vec::new();
    for night in &nights {
        let in_redis = app.reserved_in_redis(hotel, room_type, *night).await;
        if in_redis.is_some() {
            held.push(*night);
        }
        assert!(
            in_redis.is_none()
                || in_redis == Some(app.reserved_in_postgres(hotel, room_type, *night).await),
            "night {night} after one reconcile pass ({report}): {in_redis:?}"
        );
    }
    let (status, availability) = app
        .get(&format!(
            "/v1/hotels/{hotel}/availability?check_in={}&check_out={}&rooms=1",
            nights[0],
            nights[nights.len() - 1] + chrono::Days::new(1)
        ))
        .await;
    assert_eq!(status, 200, "{availability}");
    for night in &nights {
        assert_eq!(
            app.reserved_in_redis(hotel, room_type, *night).await,
            Some(app.reserved_in_postgres(hotel, room_type, *night).await),
            "night {night} once asked for (held before: {held:?})"
        );
    }
}

/// What the load must have seen while the fault lasted.
#[derive(PartialEq)]
enum During {
    /// Redis faults: bookings carry on through Postgres alone, never a 503.
    BookingsCarryOn,
    /// Postgres faults: some bookings are refused with 503 `unavailable`.
    SomeUnavailable,
}

/// Runs a load of 240 bookings, applies `fault` once 60 have finished and `recover`
/// `down_for` later, and checks the invariants.
async fn under_load(
    servers: &mut Servers,
    during: During,
    down_for: Duration,
    fault: impl FnOnce(&mut Servers),
    recover: impl FnOnce(&mut Servers),
) {
    let app = servers.app(&during).await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, TOTAL, app.night(1), NIGHTS)
        .await;
    let progress = Arc::new(AtomicUsize::new(0));
    let load = book_load(&app, hotel, room_type, 240, progress.clone());
    let inject = async {
        wait_for(&progress, 60).await;
        fault(servers);
        tokio::time::sleep(down_for).await;
        recover(servers);
    };
    let ((created, statuses), ()) = tokio::join!(load, inject);
    assert!(!created.is_empty());
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    match during {
        During::BookingsCarryOn => assert_eq!(unavailable, 0, "{statuses:?}"),
        During::SomeUnavailable => {
            assert!(unavailable > 0, "the fault was never felt: {statuses:?}")
        }
    }
    assert_consistent(&app, hotel, room_type, NIGHTS, &created, &statuses).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_empty() {
    let mut servers = Servers::start("redis-kill");
    under_load(
        &mut servers,
        During::BookingsCarryOn,
        Duration::from_secs(1),
        |s| s.redis.kill(),
        |s| s.redis.restart().unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_shut_down_without_saving() {
    let mut servers = Servers::start("redis-nosave");
    under_load(
        &mut servers,
        During::BookingsCarryOn,
        Duration::from_secs(1),
        |s| {
            let mut redis = redis::Client::open(s.redis.url())
                .unwrap()
                .get_connection()
                .unwrap();
            // The server closes the connection as it exits, so the reply is an error.
            let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut redis);
        },
        |s| s.redis.restart().unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_immediately_and_restarted() {
    let mut servers = Servers::start("pg-immediate");
    under_load(
        &mut servers,
        During::SomeUnavailable,
        Duration::from_secs(1),
        |s| s.postgres.stop_immediate().unwrap(),
        |s| s.postgres.restart().unwrap(),
    )
    .await;
}

/// Signals the postmaster and every backend: backends run in sessions of their own, so
/// signalling the postmaster's process group would leave them running.
fn signal_postgres(servers: &Servers, signal: i32) {
    let postmaster = servers.postgres.pid();
    for pid in std::iter::once(postmaster).chain(children_of(postmaster)) {
        // SAFETY: kill(2) on a server process of this test with a valid signal.
        assert_eq!(
            unsafe { libc::kill(pid as i32, signal) },
            0,
            "signalling {pid}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_frozen_then_thawed() {
    let mut servers = Servers::start("pg-sigstop");
    under_load(
        &mut servers,
        During::SomeUnavailable,
        // Longer than a booking's commit timeout (1 s statement + 0.5 s), so some time out.
        Duration::from_secs(3),
        |s| signal_postgres(s, libc::SIGSTOP),
        |s| signal_postgres(s, libc::SIGCONT),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_answer_503_while_postgres_is_down_and_give_redis_back() {
    let mut servers = Servers::start("pg-down");
    let app = servers.app(&During::SomeUnavailable).await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, TOTAL, app.night(1), NIGHTS)
        .await;
    servers.postgres.stop_immediate().unwrap();
    let response = app
        .http
        .post(app.url("/v1/reservations"))
        .bearer_auth(app.guest("g"))
        .json(&stay(
            Uuid::new_v4(),
            hotel,
            room_type,
            app.night(1),
            app.night(2),
            1,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "a 5xx leaked a connection detail: {body}"
    );
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(0)
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!((status, ready["postgres"].as_str()), (503, Some("down")));
    servers.postgres.restart().unwrap();
}

/// A real `innkeeper serve` on the given servers, killed if the test panics.
pub struct Innkeeper {
    pub child: std::process::Child,
    pub base: String,
}

impl Innkeeper {
    /// With its reconciler off: fault tests run the passes themselves.
    async fn start(servers: &Servers, prefix: &str, fault: Option<&str>) -> Self {
        Self::start_with(
            servers,
            prefix,
            fault,
            &[("INNKEEPER_RECONCILE_INTERVAL_SECS", "0")],
        )
        .await
    }

    pub async fn start_with(
        servers: &Servers,
        prefix: &str,
        fault: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_innkeeper"));
        command
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", servers.postgres.url())
            .env("REDIS_URL", servers.redis.url())
            .env("INNKEEPER_JWT_SECRET", crate::helpers::JWT_SECRET)
            .env("INNKEEPER_REDIS_KEY_PREFIX", prefix)
            .env("INNKEEPER_IN_FLIGHT_TTL", "8")
            .env("INNKEEPER_DB_STATEMENT_TIMEOUT_MS", "1000")
            .envs(env.iter().copied())
            .env("RUST_LOG", "error")
            .env_remove("INNKEEPER_FAULT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(fault) = fault {
            command.env("INNKEEPER_FAULT", fault);
        }
        let innkeeper = Self {
            child: command.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while reqwest::get(format!("{}/healthz", innkeeper.base))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "innkeeper did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        innkeeper
    }
}

impl Drop for Innkeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn innkeeper_killed_between_deduction_and_commit() {
    use std::os::unix::process::ExitStatusExt;

    let servers = Servers::start("innkeeper-kill");
    let app = servers.app(&During::SomeUnavailable).await;
    let (hotel, room_type) = app
        .hotel_with_inventory(1.0, TOTAL, app.night(1), NIGHTS)
        .await;
    let night = app.night(1);
    let id = Uuid::new_v4();
    let body = stay(id, hotel, room_type, night, app.night(2), 1);
    let client = reqwest::Client::new();
    let book = |base: String| {
        let client = client.clone();
        let body = body.clone();
        let token = app.guest("crash");
        async move {
            client
                .post(format!("{base}/v1/reservations"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
        }
    };

    let mut doomed = Innkeeper::start(&servers, &app.prefix, Some("die_after_deduct")).await;
    assert!(
        book(doomed.base.clone()).await.is_err(),
        "the request should die with the process"
    );
    let status = doomed.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, night).await,
        Some(1),
        "the deduction was made"
    );
    assert_eq!(
        app.reserved_in_postgres(hotel, room_type, night).await,
        0,
        "and never committed"
    );
    assert_eq!(app.count("reservations").await, 0);

    let restarted = Innkeeper::start(&servers, &app.prefix, None).await;
    // The crashed attempt's hold is still remembered: a retry is told to wait, not booked twice.
    let retry = book(restarted.base.clone()).await.unwrap();
    assert_eq!(retry.status(), 409);
    assert_eq!(
        retry.json::<serde_json::Value>().await.unwrap()["code"],
        "request_in_progress"
    );

    // Until the dead deduction's deadline passes it counts as in flight; then one pass
    // gives it back.
    let started = Instant::now();
    loop {
        let report: serde_json::Value = client
            .post(format!("{}/v1/admin/reconcile", restarted.base))
            .bearer_auth(app.staff())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if app.reserved_in_redis(hotel, room_type, night).await == Some(0) {
            assert_eq!(report["repaired"], 1, "{report}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the reconciler never repaired the dead deduction"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Once the deduction marker has expired too, the retry books, once.
    let started = Instant::now();
    let created = loop {
        let answer = book(restarted.base.clone()).await.unwrap();
        if answer.status() == 201 {
            break answer.json::<serde_json::Value>().await.unwrap();
        }
        assert_eq!(answer.status(), 409);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the retry never went through"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(created["reservation_id"], json!(id));
    assert_consistent(&app, hotel, room_type, NIGHTS, &[id], &[201]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_bookings_go_through_postgres_and_readiness_says_so() {
    let mut servers = Servers::start("redis-down");
    let app = servers.app(&During::BookingsCarryOn).await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 2, app.night(1), 1).await;
    servers.redis.kill();
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(
        (status, ready["redis"].as_str(), ready["postgres"].as_str()),
        (503, Some("down"), Some("up"))
    );
    let body = |id| stay(id, hotel, room_type, app.night(1), app.night(2), 1);
    assert_eq!(app.reserve("a", &body(Uuid::new_v4())).await.0, 201);
    assert_eq!(app.reserve("b", &body(Uuid::new_v4())).await.0, 201);
    let (status, refused) = app.reserve("c", &body(Uuid::new_v4())).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("sold_out")));

    servers.redis.restart().unwrap();
    let started = Instant::now();
    while app.get("/readyz").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "readiness never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The cache warms from Postgres: the night it loads is already full.
    let (status, refused) = app.reserve("d", &body(Uuid::new_v4())).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("sold_out")));
    assert_eq!(
        app.reserved_in_redis(hotel, room_type, app.night(1)).await,
        Some(2)
    );
    assert_consistent(&app, hotel, room_type, 1, &[], &[]).await;
}

/// With Postgres frozen (SIGSTOP: its own statement timeout cannot fire), every call that
/// needs it answers 503 `unavailable` within its deadline (the statement timeout, 1 s here,
/// plus half a second), not whenever the server wakes up; and all is well after the thaw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_frozen_every_call_answers_503_in_time() {
    let servers = Servers::start("pg-frozen-reads");
    let app = servers.app(&During::SomeUnavailable).await;
    let (hotel, room_type) = app.hotel_with_inventory(1.0, 5, app.night(1), 2).await;
    let id = Uuid::new_v4();
    let booking = stay(id, hotel, room_type, app.night(1), app.night(2), 1);
    assert_eq!(app.reserve("g", &booking).await.0, 201);
    signal_postgres(&servers, libc::SIGSTOP);
    let staff = app.staff();
    let guest = app.guest("g");
    let calls: Vec<(reqwest::Method, String, &str)> = vec![
        (
            reqwest::Method::GET,
            format!("/v1/reservations/{id}"),
            &guest,
        ),
        (reqwest::Method::GET, "/v1/reservations".into(), &guest),
        (
            reqwest::Method::POST,
            format!("/v1/reservations/{id}/confirm"),
            &staff,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/reservations/{id}/cancel"),
            &guest,
        ),
        (reqwest::Method::GET, format!("/v1/hotels/{hotel}"), &staff),
        (reqwest::Method::GET, "/v1/hotels".into(), &staff),
        (
            reqwest::Method::GET,
            format!(
                "/v1/hotels/{hotel}/room-types/{room_type}/inventory?from={}&to={}",
                app.night(1),
                app.night(2)
            ),
            &staff,
        ),
    ];
    for (method, path, token) in calls {
        // Without a deadline the call would hang until the thaw, which comes after: the
        // client's own timeout would fail the test.
        let response = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("unavailable")),
            "{method} {path}"
        );
    }
    signal_postgres(&servers, libc::SIGCONT);
    // After the thaw the reservation is still there and can be confirmed.
    let mut confirmed = None;
    for _ in 0..50 {
        let (status, body) = app
            .post(
                &format!("/v1/reservations/{id}/confirm"),
                &staff,
                &json!({}),
            )
            .await;
        if status == 200 {
            confirmed = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        confirmed.expect("confirmed after the thaw")["status"],
        "confirmed"
    );
}
