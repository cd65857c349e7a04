//! Metrics: the Prometheus recorder, and the catalogue of every series innkeeper exports.
//!
//! Every name and every label value lives here, and [`register_metrics`] describes each
//! series and registers it at zero, so that a dashboard or an alert never queries a series
//! that does not exist yet. The layers record their own series through these names and
//! helpers; this module knows none of their types, only the label values they promise to
//! use (each layer's own tests hold it to that).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use metrics::{describe_counter, describe_gauge, describe_histogram, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Upper bounds, in seconds, of every duration histogram. A Redis script answers in well
/// under a millisecond, a booking transaction in a few; a request stuck behind a saturated
/// pool or the statement timeout (5 s by default) takes seconds. Without explicit buckets
/// the exporter would render summaries, which cannot be aggregated across instances.
const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process-wide Prometheus recorder. The `metrics` facade has one global recorder, so
/// every app built in this process renders the same registry.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&DURATION_BUCKETS)
                .expect("the duration buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness, an embedding
            // program); the handle then renders an empty registry rather than failing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every few seconds, for as long as
/// the returned future runs. The exporter keeps every sample until a scrape or an upkeep,
/// so without this a process nobody scrapes grows by each request's samples (seen in the
/// benchmark as a peak RSS climbing from one scenario to the next).
pub async fn run_metrics_upkeep(handle: PrometheusHandle) {
    let mut ticks = tokio::time::interval(UPKEEP_EVERY);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

const HTTP_REQUESTS: &str = "innkeeper_http_requests_total";
const HTTP_DURATION: &str = "innkeeper_http_request_duration_seconds";
const SCRIPT_DURATION: &str = "innkeeper_inventory_script_duration_seconds";
const DB_DURATION: &str = "innkeeper_db_transaction_duration_seconds";
const DB_POOL: &str = "innkeeper_db_pool_connections";
const REDIS_POOL: &str = "innkeeper_redis_pool_connections";
const BACKEND_UP: &str = "innkeeper_backend_up";
/// Reservation requests by how they ended, one of [`RESERVATION_OUTCOMES`].
pub const RESERVATIONS: &str = "innkeeper_reservations_total";
/// Redis give-backs, by `result`: `ok` or `failed`.
pub const COMPENSATIONS: &str = "innkeeper_compensations_total";
pub const REDIS_FALLBACKS: &str = "innkeeper_redis_fallbacks_total";
pub const RECONCILER_RUNS: &str = "innkeeper_reconciler_runs_total";
pub const RECONCILER_DRIFT: &str = "innkeeper_reconciler_drift_nights";
pub const RECONCILER_REPAIRS: &str = "innkeeper_reconciler_repairs_total";
pub const RECONCILER_LAST_SUCCESS: &str = "innkeeper_reconciler_last_success_timestamp_seconds";
/// By `shard` (its place in the list, from 1) and `pass`: `changes` (the background pass)
/// or `full` (an operator's).
pub const RECONCILER_NIGHTS_CHECKED: &str = "innkeeper_reconciler_nights_checked";
pub const RECONCILER_PASS_SECONDS: &str = "innkeeper_reconciler_pass_duration_seconds";
pub const RECONCILER_INTERVAL: &str = "innkeeper_reconciler_interval_seconds";
/// By `shard`.
pub const RECONCILER_ROUND_PROGRESS: &str = "innkeeper_reconciler_round_progress_ratio";
pub const CACHE_KEYS: &str = "innkeeper_cache_keys";
pub const HOLDS_EXPIRED: &str = "innkeeper_holds_expired_total";
/// By `outcome`: `succeeded`, or `failed` once a delivery's retry window is over.
pub const WEBHOOK_DELIVERIES: &str = "innkeeper_webhook_deliveries_total";
/// By `result`: `ok` (a 2xx), `rejected` (another status), `unreachable` (no answer).
pub const WEBHOOK_ATTEMPTS: &str = "innkeeper_webhook_attempts_total";
/// By `shard`.
pub const WEBHOOK_OLDEST_UNDELIVERED: &str = "innkeeper_webhook_oldest_undelivered_seconds";
/// By `outcome`, as `apply_payment()` answers.
pub const PAYMENT_EVENTS: &str = "innkeeper_payment_events_total";

/// Every `outcome` of [`PAYMENT_EVENTS`]: those of `apply_payment()`, and `bad_signature`.
pub const PAYMENT_OUTCOMES: [&str; 9] = [
    "duplicate",
    "unknown_reservation",
    "confirmed",
    "mismatched",
    "refund_requested",
    "failed",
    "refunded",
    "ignored",
    "bad_signature",
];

/// Every `outcome` of [`RESERVATIONS`]. A client's mistake (an unknown hotel, an invalid
/// stay) and a store out of reach each have their own, so a dashboard of failures shows
/// failures, not typos.
pub const RESERVATION_OUTCOMES: [&str; 12] = [
    "created",
    "replayed",
    "sold_out",
    "sold_out_db_recheck",
    "idempotency_conflict",
    "in_progress",
    "hold_limit",
    "restriction_violated",
    "not_found",
    "invalid",
    "unavailable",
    "error",
];

/// Counts one reservation request under its outcome, one of [`RESERVATION_OUTCOMES`].
pub fn count_reservation(outcome: &'static str) {
    debug_assert!(
        RESERVATION_OUTCOMES.contains(&outcome),
        "{outcome} is missing from RESERVATION_OUTCOMES, so it is not registered at startup"
    );
    metrics::counter!(RESERVATIONS, "outcome" => outcome).increment(1);
}

/// The statuses any route may answer besides those its OpenAPI entry documents: a failure
/// (500) and a backend out of reach (503). Registered for every route, so that the 5xx
/// ratio has series to divide from startup.
const UNDOCUMENTED_STATUSES: [&str; 2] = ["500", "503"];

/// Describes every metric innkeeper exports and registers each series at zero: the HTTP
/// series for every (method, route, status) that `api` documents, and every label value of
/// the others. Registering twice (tests build many apps in one process) changes nothing.
pub fn register_metrics(api: &utoipa::openapi::OpenApi) {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, matched route template and status code"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by method and matched route template"
    );
    for (path, item) in api.paths.paths.iter() {
        for (method, operation) in [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ] {
            let Some(operation) = operation else { continue };
            let method = method_label(&method);
            // Numeric codes only: a `default` or `4XX` entry names no status a response has.
            let documented = operation
                .responses
                .responses
                .keys()
                .map(String::as_str)
                .filter(|status| status.parse::<u16>().is_ok());
            for status in documented.chain(UNDOCUMENTED_STATUSES) {
                metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => path.clone(), "status" => status.to_owned())
                    .increment(0);
            }
            registered(
                metrics::histogram!(HTTP_DURATION, "method" => method, "route" => path.clone()),
            );
        }
    }

    describe_counter!(RESERVATIONS, "Reservation requests, by how they ended");
    for outcome in RESERVATION_OUTCOMES {
        metrics::counter!(RESERVATIONS, "outcome" => outcome).increment(0);
    }

    describe_histogram!(
        SCRIPT_DURATION,
        Unit::Seconds,
        "Round trip of one Lua script call to Redis, by script"
    );
    for script in INVENTORY_SCRIPTS {
        registered(metrics::histogram!(SCRIPT_DURATION, "script" => script));
    }
    describe_histogram!(
        DB_DURATION,
        Unit::Seconds,
        "Time of one Postgres transaction, by operation"
    );
    for operation in DB_OPERATIONS {
        registered(metrics::histogram!(DB_DURATION, "operation" => operation));
    }

    describe_gauge!(
        DB_POOL,
        "Postgres pool connections, by state: idle, in_use, waiting (requests queued for one), max"
    );
    describe_gauge!(
        REDIS_POOL,
        "Redis pool connections, by state: idle, in_use, waiting (requests queued for one), max"
    );
    for pool in [DB_POOL, REDIS_POOL] {
        for state in ["idle", "in_use", "waiting", "max"] {
            metrics::gauge!(pool, "state" => state).increment(0.0);
        }
    }
    describe_gauge!(
        BACKEND_UP,
        "1 when the backend answered its probe at the last scrape, 0 when it did not"
    );
    for backend in [Backend::Postgres, Backend::Redis] {
        metrics::gauge!(BACKEND_UP, "backend" => backend.label()).increment(0.0);
    }

    describe_counter!(RECONCILER_RUNS, "Reconciler passes started");
    metrics::counter!(RECONCILER_RUNS).increment(0);
    describe_gauge!(
        RECONCILER_DRIFT,
        "Nights whose Redis count differed from Postgres in the last reconciler pass"
    );
    metrics::gauge!(RECONCILER_DRIFT).increment(0.0);
    describe_counter!(
        RECONCILER_REPAIRS,
        "Nights the reconciler rewrote in Redis from Postgres"
    );
    metrics::counter!(RECONCILER_REPAIRS).increment(0);
    describe_gauge!(
        RECONCILER_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time the last reconciler pass completed; 0 until the first one does"
    );
    metrics::gauge!(RECONCILER_LAST_SUCCESS).increment(0.0);
    describe_gauge!(
        RECONCILER_NIGHTS_CHECKED,
        "Nights held in Redis that the last reconciler pass compared with Postgres"
    );
    describe_gauge!(
        RECONCILER_PASS_SECONDS,
        Unit::Seconds,
        "How long the last reconciler pass took"
    );
    for pass in ["changes", "full"] {
        metrics::gauge!(RECONCILER_NIGHTS_CHECKED, "shard" => "1", "pass" => pass).increment(0.0);
        metrics::gauge!(RECONCILER_PASS_SECONDS, "shard" => "1", "pass" => pass).increment(0.0);
    }
    describe_gauge!(
        RECONCILER_INTERVAL,
        Unit::Seconds,
        "How often the background reconciler pass runs (INNKEEPER_RECONCILE_INTERVAL_SECS); 0 when it is off"
    );
    metrics::gauge!(RECONCILER_INTERVAL).increment(0.0);
    describe_gauge!(
        RECONCILER_ROUND_PROGRESS,
        "How far the reconciler's full round over every hotel has got, from 0 to 1"
    );
    metrics::gauge!(RECONCILER_ROUND_PROGRESS, "shard" => "1").increment(0.0);
    describe_gauge!(
        CACHE_KEYS,
        "Keys held in Redis at the last reconciler pass: the nights resident, and the short-lived deduction markers"
    );
    metrics::gauge!(CACHE_KEYS).increment(0.0);
    describe_counter!(
        HOLDS_EXPIRED,
        "Pending reservations expired by the hold sweeper, their nights given back"
    );
    metrics::counter!(HOLDS_EXPIRED).increment(0);
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries finished: succeeded (a 2xx), or failed after their retry window"
    );
    for outcome in ["succeeded", "failed"] {
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts: ok (2xx), rejected (another status), unreachable (no answer in time)"
    );
    for result in ["ok", "rejected", "unreachable"] {
        metrics::counter!(WEBHOOK_ATTEMPTS, "result" => result).increment(0);
    }
    describe_gauge!(
        WEBHOOK_OLDEST_UNDELIVERED,
        Unit::Seconds,
        "Age of the oldest event not yet delivered to every endpoint that wants it, at the webhook job's last step; 0 when none"
    );
    metrics::gauge!(WEBHOOK_OLDEST_UNDELIVERED, "shard" => "1").increment(0.0);
    describe_counter!(
        PAYMENT_EVENTS,
        "Payment provider events received, by what they did"
    );
    for outcome in PAYMENT_OUTCOMES {
        metrics::counter!(PAYMENT_EVENTS, "outcome" => outcome).increment(0);
    }

    describe_counter!(
        COMPENSATIONS,
        "Redis give-backs after a refused or failed commit, or a cancel or expiry; failed ones leave drift for the reconciler"
    );
    for result in ["ok", "failed"] {
        metrics::counter!(COMPENSATIONS, "result" => result).increment(0);
    }
    describe_counter!(
        REDIS_FALLBACKS,
        "Bookings that went through Postgres alone because Redis was out of reach"
    );
    metrics::counter!(REDIS_FALLBACKS).increment(0);
}

/// Taking a histogram's handle is what registers its series: it then renders with every
/// bucket at zero. Nothing is recorded.
fn registered(_histogram: Histogram) {}

/// The method as a label: the standard ones by name, anything else as `OTHER`, so a client
/// inventing methods cannot create series without bound.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Counts and times one answered request. `route` is the matched path template (or
/// `unmatched`), never the raw path, so ids in paths do not become series.
pub fn record_http_request(
    method: &'static str,
    route: String,
    status: StatusCode,
    elapsed: Duration,
) {
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(elapsed);
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.as_str().to_owned())
        .increment(1);
}

/// Every `script` label of `innkeeper_inventory_script_duration_seconds`: the scripts of
/// lua/. A new script is added here, so that its series exists from startup.
pub const INVENTORY_SCRIPTS: [&str; 5] =
    ["reserve", "commit", "release", "load_nights", "reconcile"];

/// Every `operation` label of `innkeeper_db_transaction_duration_seconds`. A new operation
/// is added here, so that its series exists from startup.
pub const DB_OPERATIONS: [&str; 7] = [
    "book",
    "end_stay",
    "confirm",
    "put_inventory",
    "put_restrictions",
    "expire_holds",
    "archive",
];

/// Records how long one Lua script call took.
pub fn observe_script(script: &'static str, started: Instant) {
    debug_assert!(
        INVENTORY_SCRIPTS.contains(&script),
        "{script} is missing from INVENTORY_SCRIPTS, so it is not registered at startup"
    );
    metrics::histogram!(SCRIPT_DURATION, "script" => script).record(started.elapsed());
}

/// Records how long one Postgres transaction took.
pub fn observe_transaction(operation: &'static str, started: Instant) {
    debug_assert!(
        DB_OPERATIONS.contains(&operation),
        "{operation} is missing from DB_OPERATIONS, so it is not registered at startup"
    );
    metrics::histogram!(DB_DURATION, "operation" => operation).record(started.elapsed());
}

/// How a connection pool stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGauges {
    pub idle: usize,
    pub in_use: usize,
    /// Requests queued for a connection.
    pub waiting: usize,
    pub max: usize,
}

/// A pool innkeeper keeps, as labelled in the pool gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Postgres,
    Redis,
}

/// Sets a pool's gauges. Called on every scrape, so they are exactly as fresh as the
/// scrape that reads them, with no task of their own.
pub fn record_pool(pool: Pool, gauges: PoolGauges) {
    let name = match pool {
        Pool::Postgres => DB_POOL,
        Pool::Redis => REDIS_POOL,
    };
    metrics::gauge!(name, "state" => "idle").set(gauges.idle as f64);
    metrics::gauge!(name, "state" => "in_use").set(gauges.in_use as f64);
    metrics::gauge!(name, "state" => "waiting").set(gauges.waiting as f64);
    metrics::gauge!(name, "state" => "max").set(gauges.max as f64);
}
/// A server innkeeper depends on, as probed for `innkeeper_backend_up{backend}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Redis,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Redis => "redis",
        }
    }
}

/// Records whether a backend answered its probe.
pub fn record_backend_up(backend: Backend, up: bool) {
    metrics::gauge!(BACKEND_UP, "backend" => backend.label()).set(if up { 1.0 } else { 0.0 });
}
