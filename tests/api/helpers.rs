//! The test harness.
//!
//! PostgreSQL and Redis are started once per test binary, by the same code as the embedded
//! default (`innkeeper::devservices`), on a dedicated thread that lives as long as the
//! process. With `INNKEEPER_TEST_DATABASE_URL` and `INNKEEPER_TEST_REDIS_URL` set, those
//! servers are used instead. A migrated template database is made once; each test gets its
//! own clone of it and its own Redis key prefix, so tests run in parallel without seeing
//! each other, and each starts the real server on port 0.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use innkeeper::app::{Application, Backends};
use innkeeper::clock::{Clock, ManualClock};
use innkeeper::config::{Config, InventoryMode, Secret};
use innkeeper::devservices::{Durability, PostgresServer, RedisServer};
use innkeeper::domain::{NewReservation, Role, Stay};
use innkeeper::http::auth::Auth;
use innkeeper::inventory::{NightCache, RedisLink};
use serde_json::{json, Value};
use uuid::Uuid;

/// The servers' default `INNKEEPER_MAX_TOKEN_TTL`.
pub const TOKEN_TTL_LIMIT: Duration = Duration::from_secs(24 * 3600);

pub const JWT_SECRET: &str = "integration-test-secret-32-bytes+";

/// The servers every test of this process shares.
struct Shared {
    /// A URL with the rights to create databases; its database name is replaced per test.
    admin_url: String,
    redis_url: String,
    template: String,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (admin_url, redis_url) = match (
            std::env::var("INNKEEPER_TEST_DATABASE_URL"),
            std::env::var("INNKEEPER_TEST_REDIS_URL"),
        ) {
            (Ok(database), Ok(redis)) => (database, redis),
            _ => start_private_servers(),
        };
        let template = format!("innkeeper_template_{}", std::process::id());
        let migrate_template = {
            let admin_url = admin_url.clone();
            let template = template.clone();
            move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let (client, connection) =
                        tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await?;
                    let connection = tokio::spawn(connection);
                    client
                        .batch_execute(&format!("CREATE DATABASE {template}"))
                        .await?;
                    let config = Config::default();
                    let pool =
                        innkeeper::store::connect(&with_database(&admin_url, &template), &config)?;
                    innkeeper::store::migrate(&pool).await?;
                    pool.close();
                    drop(client);
                    let _ = connection.await;
                    Ok(())
                })
            }
        };
        std::thread::spawn(migrate_template)
            .join()
            .expect("the migration thread panicked")
            .expect("migrating the template database");
        Shared {
            admin_url,
            redis_url,
            template,
        }
    })
}

/// Starts private servers on a thread that then parks for the life of the process: the
/// servers are told to stop when the thread that started them ends.
fn start_private_servers() -> (String, String) {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("servers")
            .join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let started = PostgresServer::start(&dir.join("postgres"), Durability::Throwaway).and_then(
            |postgres| {
                RedisServer::start(&dir.join("redis"), Durability::Throwaway)
                    .map(|redis| (postgres, redis))
            },
        );
        match started {
            Ok((postgres, redis)) => {
                sender
                    .send(Ok((postgres.admin_url("postgres"), redis.url())))
                    .expect("the test thread waits");
                let _keep_running = (postgres, redis);
                loop {
                    std::thread::park();
                }
            }
            Err(error) => sender
                .send(Err(error.to_string()))
                .expect("the test thread waits"),
        }
    });
    receiver
        .recv()
        .expect("the server thread answers")
        .unwrap_or_else(|error| panic!("starting the test servers: {error}"))
}

/// A database of a test's own, for a server it starts itself.
pub async fn fresh_database() -> String {
    clone_template(shared()).await
}

/// A local port nothing listens on, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh database cloned from the migrated template.
async fn clone_template(shared: &Shared) -> String {
    let database = format!("test_{}", Uuid::new_v4().simple());
    let (admin, connection) = tokio_postgres::connect(&shared.admin_url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test PostgreSQL");
    let connection = tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {database} TEMPLATE {} STRATEGY FILE_COPY",
            shared.template
        ))
        .await
        .expect("cloning the template database");
    drop(admin);
    let _ = connection.await;
    with_database(&shared.admin_url, &database)
}

fn with_database(url: &str, database: &str) -> String {
    let mut config = tokio_postgres::Config::from_str(url).expect("a valid URL");
    config.dbname(database);
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    format!("postgres://{user}{password}@{host}:{port}/{database}")
}

/// What a test may change about the server it starts.
pub struct Options {
    pub mode: InventoryMode,
    pub now: DateTime<Utc>,
    /// A Redis of the test's own, for tests that flush it whole.
    pub redis_url: Option<String>,
    /// A PostgreSQL database of the test's own (migrated on start), for fault tests.
    pub database_url: Option<String>,
    /// A Redis key prefix shared with another instance, for tests of several instances.
    pub prefix: Option<String>,
    /// More settings, as environment variables.
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: InventoryMode::Redis,
            now: Utc::now(),
            redis_url: None,
            database_url: None,
            prefix: None,
            env: Vec::new(),
        }
    }
}

/// One running innkeeper with its own database and Redis prefix.
pub struct TestApp {
    pub base: String,
    /// Where `/metrics` is served apart (`INNKEEPER_METRICS_BIND`), if it is.
    pub metrics_base: Option<String>,
    /// The server's state: its jobs, booker and pools, for tests that drive them directly.
    pub state: innkeeper::http::AppState,
    pub http: reqwest::Client,
    pub db: deadpool_postgres::Pool,
    pub redis: RedisLink,
    /// The server's Redis inventory, under its key prefix.
    pub cache: NightCache,
    pub prefix: String,
    pub clock: Arc<ManualClock>,
    started: NaiveDate,
    auth: Auth,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with_mode(mode: InventoryMode) -> Self {
        Self::spawn_with(Options {
            mode,
            ..Options::default()
        })
        .await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let shared = shared();
        let database_url = match &options.database_url {
            Some(url) => url.clone(),
            None => clone_template(shared).await,
        };

        let prefix = options
            .prefix
            .clone()
            .unwrap_or_else(|| format!("test:{}:", Uuid::new_v4().simple()));
        let mut vars = HashMap::new();
        vars.insert("DATABASE_URL".into(), database_url);
        // Background jobs are driven step by step by the tests.
        for job in ["RECONCILE", "SWEEP", "ARCHIVE"] {
            vars.insert(format!("INNKEEPER_{job}_INTERVAL_SECS"), "0".into());
        }
        vars.insert("INNKEEPER_WEBHOOK_INTERVAL_MS".into(), "0".into());
        // Most tests book many stays as one guest; the tests of fair holds set the limit.
        vars.insert("INNKEEPER_MAX_LIVE_HOLDS".into(), "0".into());
        for (name, value) in &options.env {
            vars.insert((*name).to_owned(), value.clone());
        }
        vars.insert(
            "REDIS_URL".into(),
            options
                .redis_url
                .clone()
                .unwrap_or_else(|| shared.redis_url.clone()),
        );
        vars.insert("INNKEEPER_JWT_SECRET".into(), JWT_SECRET.into());
        vars.insert("INNKEEPER_BIND".into(), "127.0.0.1:0".into());
        vars.insert("INNKEEPER_REDIS_KEY_PREFIX".into(), prefix.clone());
        vars.insert("INNKEEPER_DB_POOL_SIZE".into(), "8".into());
        vars.insert(
            "INNKEEPER_INVENTORY_MODE".into(),
            match options.mode {
                InventoryMode::Redis => "redis",
                InventoryMode::Db => "db",
            }
            .into(),
        );
        let config = Config::from_vars(vars).expect("a valid test configuration");
        let backends = Backends::start(&config).expect("external backends need no start");
        // The test's own handles on the server's stores, to look behind the API.
        let db = innkeeper::store::connect(backends.database_url.expose(), &config)
            .expect("a pool for the test");
        let redis = RedisLink::open(&backends.redis, 1).expect("a Redis link");
        let cache = NightCache::new(
            redis.clone(),
            &prefix,
            config.in_flight_ttl,
            config.night_idle_ttl,
        );
        let clock = Arc::new(ManualClock::new(options.now));
        let application = Application::build(config, &backends, clock.clone())
            .await
            .expect("building the application");
        let address = application.local_addr().expect("a bound address");
        let metrics_base = application
            .metrics_addr()
            .map(|address| format!("http://{address}"));
        let state = application.state().clone();
        tokio::spawn(application.run_until_stopped(std::future::pending()));
        Self {
            state,
            base: format!("http://{address}"),
            metrics_base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            db,
            redis,
            cache,
            prefix,
            started: options.now.date_naive(),
            auth: Auth::new(&Secret::new(JWT_SECRET), clock.clone(), TOKEN_TTL_LIMIT),
            clock,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn token(&self, role: Role, sub: &str) -> String {
        self.auth
            .issue(sub, role, Duration::from_secs(3600))
            .expect("a token")
    }

    pub fn staff(&self) -> String {
        self.token(Role::Staff, "staff-1")
    }

    pub fn guest(&self, sub: &str) -> String {
        self.token(Role::Guest, sub)
    }

    /// Sends a request and returns its status and JSON body (Null when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Creates a hotel as staff and returns its id.
    pub async fn create_hotel(&self, body: Value) -> i64 {
        let (status, hotel) = self.post("/v1/hotels", &self.staff(), &body).await;
        assert_eq!(status, 201, "{hotel}");
        hotel["id"].as_i64().expect("an id")
    }

    pub async fn create_room_type(&self, hotel_id: i64, name: &str) -> i64 {
        let (status, room_type) = self
            .post(
                &format!("/v1/hotels/{hotel_id}/room-types"),
                &self.staff(),
                &json!({"name": name, "max_occupancy": 2}),
            )
            .await;
        assert_eq!(status, 201, "{room_type}");
        room_type["id"].as_i64().expect("an id")
    }

    /// A hotel with one room type and `total` rooms on each of `nights` nights from
    /// `first_night`, at 100.00 a night, warmed into Redis as an operator does before a
    /// sale. Returns (hotel_id, room_type_id).
    pub async fn hotel_with_inventory(
        &self,
        ratio: f64,
        total: i64,
        first_night: NaiveDate,
        nights: u64,
    ) -> (i64, i64) {
        let (hotel_id, room_type_id) = self
            .cold_hotel_with_inventory(ratio, total, first_night, nights)
            .await;
        let (status, warmed) = self
            .post(
                &format!("/v1/hotels/{hotel_id}/inventory/warm"),
                &self.staff(),
                &json!({"from": first_night, "to": first_night + Days::new(nights)}),
            )
            .await;
        assert_eq!(status, 200, "{warmed}");
        (hotel_id, room_type_id)
    }

    /// [`hotel_with_inventory`](Self::hotel_with_inventory) without the warming: Redis
    /// holds none of its nights until someone asks for them.
    pub async fn cold_hotel_with_inventory(
        &self,
        ratio: f64,
        total: i64,
        first_night: NaiveDate,
        nights: u64,
    ) -> (i64, i64) {
        let hotel_id = self.create_hotel(hotel_body("Seaside", ratio)).await;
        let room_type_id = self.create_room_type(hotel_id, "Double").await;
        let (status, days) = self
            .put(
                &format!("/v1/hotels/{hotel_id}/room-types/{room_type_id}/inventory"),
                &self.staff(),
                &json!({
                    "from": first_night,
                    "to": first_night + Days::new(nights),
                    "total_inventory": total,
                    "rate_cents": 10_000,
                }),
            )
            .await;
        assert_eq!(status, 200, "{days}");
        (hotel_id, room_type_id)
    }

    /// Counts the rows of a table, to prove a failed request wrote nothing.
    pub async fn count(&self, table: &str) -> i64 {
        let client = self.db.get().await.expect("a connection");
        client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("a count")
            .get(0)
    }

    /// Every table's row count, to compare before and after a request that must fail.
    pub async fn snapshot(&self) -> Vec<(String, i64, String)> {
        let client = self.db.get().await.expect("a connection");
        let mut tables = Vec::new();
        for table in [
            "hotels",
            "room_types",
            "rooms",
            "room_type_inventory",
            "reservations",
        ] {
            let row = client
                .query_one(
                    &format!("SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"),
                    &[],
                )
                .await
                .expect("a snapshot");
            tables.push((table.to_owned(), row.get(0), row.get(1)));
        }
        tables
    }

    /// Postgres' `total_reserved` of one night.
    pub async fn reserved_in_postgres(&self, hotel: i64, room_type: i64, night: NaiveDate) -> i64 {
        let client = self.db.get().await.expect("a connection");
        let row = client
            .query_one(
                "SELECT total_reserved FROM room_type_inventory WHERE hotel_id = $1 AND room_type_id = $2 AND date = $3",
                &[&hotel, &room_type, &night],
            )
            .await
            .expect("the night exists");
        i64::from(row.get::<_, i32>(0))
    }

    /// A direct connection to the test's Redis, for looking behind innkeeper's back.
    pub async fn redis_connection(&self) -> innkeeper::inventory::link::Connection {
        self.redis
            .connection()
            .await
            .expect("a Redis connection")
            .handle()
    }

    /// Redis' `res` of one night, `None` when Redis does not hold the night.
    pub async fn reserved_in_redis(
        &self,
        hotel: i64,
        room_type: i64,
        night: NaiveDate,
    ) -> Option<i64> {
        let mut connection = self.redis_connection().await;
        redis::cmd("HGET")
            .arg(self.night_key(hotel, room_type, night))
            .arg("res")
            .query_async::<Option<i64>>(&mut connection)
            .await
            .expect("HGET")
    }

    /// Sets Redis' `res` of one night behind innkeeper's back: drift for the reconciler
    /// or the re-check to find.
    pub async fn set_reserved_in_redis(
        &self,
        hotel: i64,
        room_type: i64,
        night: NaiveDate,
        reserved: i64,
    ) {
        let mut connection = self.redis_connection().await;
        redis::cmd("HSET")
            .arg(self.night_key(hotel, room_type, night))
            .arg("res")
            .arg(reserved)
            .query_async::<()>(&mut connection)
            .await
            .expect("HSET");
    }

    pub fn night_key(&self, hotel: i64, room_type: i64, night: NaiveDate) -> String {
        innkeeper::inventory::keys::KeyLayout::new(&self.prefix).night(hotel, room_type, night)
    }

    /// The rooms live (pending or confirmed) reservations hold on a night.
    pub async fn live_rooms(&self, hotel: i64, room_type: i64, night: NaiveDate) -> i64 {
        let client = self.db.get().await.expect("a connection");
        client
            .query_one(
                "SELECT coalesce(sum(rooms), 0)::bigint FROM reservations WHERE hotel_id = $1 AND room_type_id = $2 \
                 AND status IN ('pending', 'confirmed') AND check_in <= $3 AND check_out > $3",
                &[&hotel, &room_type, &night],
            )
            .await
            .expect("a sum")
            .get(0)
    }

    /// How many of `ids` Postgres holds as reservations.
    pub async fn stored(&self, ids: &[Uuid]) -> i64 {
        let client = self.db.get().await.expect("a connection");
        client
            .query_one(
                "SELECT count(*) FROM reservations WHERE reservation_id = ANY($1)",
                &[&ids],
            )
            .await
            .expect("a count")
            .get(0)
    }

    /// A booking of one room on the nights 1 and 2 from today, as the group committer
    /// takes it (for tests that drive it directly, behind Redis).
    pub fn two_nights(&self, hotel: i64, room_type: i64, guest: &str) -> NewReservation {
        let now = Utc::now();
        NewReservation {
            stay: Stay {
                reservation_id: Uuid::new_v4().into(),
                hotel_id: hotel,
                room_type_id: room_type,
                check_in: self.night(1),
                check_out: self.night(3),
                rooms: 1,
            },
            guest_id: guest.to_owned(),
            hold_limit: None,
            override_restrictions: false,
            created_at: now,
            hold_expires_at: now + chrono::Duration::minutes(15),
        }
    }

    /// Books as `guest`, returning status and body.
    pub async fn reserve(&self, guest: &str, body: &Value) -> (u16, Value) {
        self.post("/v1/reservations", &self.guest(guest), body)
            .await
    }

    /// A night `days` after the day the test started, however far the clock has moved.
    pub fn night_at_start(&self, days: u64) -> NaiveDate {
        self.started + Days::new(days)
    }

    /// A night `days` after the hotel's today (UTC hotels in these tests).
    pub fn night(&self, days: u64) -> NaiveDate {
        self.clock.now().date_naive() + Days::new(days)
    }
}

/// Polls `done` every 100 ms until it holds, failing the test as `what` once `limit` has
/// passed: for what other processes finish in their own time.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn hotel_body(name: &str, ratio: f64) -> Value {
    json!({
        "name": name,
        "address": "1 Quay Street",
        "city": "Lisbon",
        "country": "PT",
        "timezone": "UTC",
        "currency": "EUR",
        "overbooking_ratio": ratio,
    })
}

pub fn stay(
    reservation_id: Uuid,
    hotel: i64,
    room_type: i64,
    check_in: NaiveDate,
    check_out: NaiveDate,
    rooms: i64,
) -> Value {
    json!({
        "reservation_id": reservation_id,
        "hotel_id": hotel,
        "room_type_id": room_type,
        "check_in": check_in,
        "check_out": check_out,
        "rooms": rooms,
    })
}

/// Asserts a problem+json answer with the given status and code.
#[track_caller]
pub fn assert_problem(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert_eq!(answer.1["status"], status, "{}", answer.1);
    assert!(
        answer.1["title"].is_string()
            && answer.1["detail"].is_string()
            && answer.1["type"].is_string()
    );
}

/// The children of `pid`, read from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| {
            std::fs::read_to_string(format!("/proc/{candidate}/stat"))
                .ok()
                .and_then(|stat| {
                    let after_name = &stat[stat.rfind(')')? + 2..];
                    after_name.split(' ').nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}
