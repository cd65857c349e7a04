//! Every setting innkeeper reads, its environment variable and its default, in one place.
//!
//! The README's settings table is written from this file. Secrets (the JWT secret and the
//! passwords inside the database and Redis URLs) are held in [`Secret`], whose `Debug` prints
//! a placeholder, so a `Config` can be logged without leaking them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::domain::BookingLimits;

/// A value that must never reach a log line or a response body.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The only way to read the value: call sites that need it are easy to find and review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The Redis innkeeper talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server, `REDIS_URL`.
    Server(Secret),
    /// A Redis Cluster, through the comma-separated seed nodes of `INNKEEPER_REDIS_CLUSTER`.
    Cluster(Secret),
}

impl Secret {
    /// The URLs of a comma-separated list, such as `INNKEEPER_REDIS_CLUSTER`'s seed nodes.
    pub fn urls(&self) -> Vec<&str> {
        list_entries(&self.0)
            .filter(|url| !url.is_empty())
            .collect()
    }
}

/// The trimmed entries of a comma-separated list.
fn list_entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim)
}

/// Checks `INNKEEPER_REDIS_CLUSTER` without echoing it: seed URLs may carry the password.
fn seed_nodes(seeds: &str) -> Result<(), ConfigError> {
    if list_entries(seeds).all(|url| url.starts_with("redis://") && url.len() > 8) {
        Ok(())
    } else {
        Err(ConfigError {
            variable: "INNKEEPER_REDIS_CLUSTER",
            problem: "must be a comma-separated list of redis:// URLs".into(),
        })
    }
}

/// Checks `INNKEEPER_SHARD_URLS` without echoing it: URLs may carry passwords.
fn shard_urls(urls: &str) -> Result<(), ConfigError> {
    let postgres = |url: &str| {
        ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme))
    };
    if list_entries(urls).all(postgres) {
        Ok(())
    } else {
        Err(ConfigError {
            variable: "INNKEEPER_SHARD_URLS",
            problem: "must be a comma-separated list of postgres:// URLs".into(),
        })
    }
}

/// Where inventory is pre-deducted before Postgres commits a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryMode {
    /// Redis Lua scripts turn away sold-out traffic; Postgres re-checks and commits.
    Redis,
    /// Postgres alone, through its guarded update: the baseline every benchmark compares to.
    Db,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A rate per caller: `per_second` requests a second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: std::num::NonZeroU32,
    pub burst: std::num::NonZeroU32,
}

impl std::str::FromStr for RateLimit {
    type Err = ();

    /// `RATE` or `RATE,BURST` (the burst defaults to the rate).
    fn from_str(value: &str) -> Result<Self, ()> {
        let (rate, burst) = value.split_once(',').unwrap_or((value, value));
        Ok(Self {
            per_second: rate.trim().parse().map_err(|_| ())?,
            burst: burst.trim().parse().map_err(|_| ())?,
        })
    }
}

/// Test-only faults, placed where no other tool can reach (`INNKEEPER_FAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The process kills itself (SIGKILL) right after a Redis deduction, before the
    /// Postgres commit: the crash the reconciler exists for.
    DieAfterDeduct,
    /// The first group-commit drainer panics: the bug no test can otherwise provoke, and
    /// which must wedge nothing.
    PanicInGroupCommit,
}

/// The whole configuration of one innkeeper process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `INNKEEPER_BIND`, default `127.0.0.1:8080` (`serve --bind` wins).
    pub bind: SocketAddr,
    /// `INNKEEPER_METRICS_BIND`, unset by default: when set, `/metrics` is served on this
    /// address alone and no longer on `bind`, for deployments that keep it off the public
    /// listener.
    pub metrics_bind: Option<SocketAddr>,
    /// `DATABASE_URL`. Unset together with `REDIS_URL`: the embedded default starts its own.
    pub database_url: Option<Secret>,
    /// `INNKEEPER_SHARD_URLS`: comma-separated PostgreSQL URLs of the booking shards, each
    /// holding the hotels its logical shards map to. Unset: the catalog is the only shard.
    pub shard_urls: Option<Secret>,
    /// `REDIS_URL`. See `database_url`.
    pub redis_url: Option<Secret>,
    /// `INNKEEPER_REDIS_CLUSTER`: comma-separated `redis://` seed nodes of a Redis Cluster.
    /// Set, it replaces `REDIS_URL`.
    pub redis_cluster: Option<Secret>,
    /// `INNKEEPER_DATA_DIR`, default `.innkeeper`: the embedded servers' data and the
    /// generated JWT secret.
    pub data_dir: PathBuf,
    /// `INNKEEPER_JWT_SECRET`, at least 32 bytes (HS256 keys shorter than its hash can be
    /// guessed offline from one token). Unset: generated once and kept in
    /// `<data dir>/jwt_secret`.
    pub jwt_secret: Option<Secret>,
    /// `INNKEEPER_MAX_TOKEN_TTL` in seconds, default 86400 (24 h): a token valid for longer
    /// than this (from its `iat`, or from now when it has none) is refused, so a leaked
    /// token cannot stay useful for years.
    pub max_token_ttl: Duration,
    /// `INNKEEPER_INVENTORY_MODE`, `redis` (default) or `db`.
    pub inventory_mode: InventoryMode,
    /// `INNKEEPER_REDIS_KEY_PREFIX`, default `innkeeper:`: put before every Redis key, so
    /// several deployments (or tests) can share one Redis.
    pub redis_key_prefix: String,
    /// `INNKEEPER_HOLD_TTL` in seconds, default 900: how long a pending reservation holds
    /// its rooms before it expires.
    pub hold_ttl: Duration,
    /// `INNKEEPER_MAX_LIVE_HOLDS`, default 3: the most pending reservations one guest may
    /// hold at once (staff are exempt); past it a booking answers 409 `hold_limit`. 0 turns
    /// the limit off (the benchmark, which books through one guest, runs so).
    pub max_live_holds: Option<u32>,
    /// `INNKEEPER_IN_FLIGHT_TTL` in seconds, default 30: how long Redis remembers that a
    /// reservation id has deducted inventory. Longer than any booking transaction may take
    /// (see `db_statement_timeout`), so a marker outlives the work it guards.
    pub in_flight_ttl: Duration,
    /// `INNKEEPER_MAX_IN_FLIGHT`, default 2048: requests served at once (the operations
    /// routes aside); beyond it a request is answered 503 `overloaded` at once. 0 turns
    /// admission control off.
    pub max_in_flight: Option<usize>,
    /// `INNKEEPER_RATE_LIMIT`, unset by default (no limit): `RATE` or `RATE,BURST`, the
    /// requests a second each caller (a token's `sub`, or an address without a valid token)
    /// may make on the guarded routes, and how many at once; past it 429 `rate_limited`.
    /// Off by default because load tests drive everything through one token.
    pub rate_limit: Option<RateLimit>,
    /// `INNKEEPER_REQUEST_TIMEOUT_MS`, default 30000: a request not answered by then is
    /// answered 503 `unavailable`. Longer than the slowest booking the commit path allows
    /// (see `check`), so a booking is answered by itself when it can be.
    pub request_timeout: Duration,
    /// `INNKEEPER_DB_POOL_SIZE`, default 16.
    pub db_pool_size: usize,
    /// `INNKEEPER_REDIS_POOL_SIZE`, default 1: Redis connections, each shared by every
    /// call in flight (multiplexed). One batches the most calls per socket write; more
    /// only spread them thinner (see inventory::link).
    pub redis_pool_size: usize,
    /// `INNKEEPER_DB_STATEMENT_TIMEOUT_MS`, default 5000: a booking that waits longer on
    /// Postgres is answered 503 and its Redis deduction given back.
    pub db_statement_timeout: Duration,
    /// The booking limits: `INNKEEPER_MAX_NIGHTS` (default 30), `INNKEEPER_MAX_ROOMS`
    /// (default 10) and `INNKEEPER_BOOKING_HORIZON_DAYS` (default 365).
    pub limits: BookingLimits,
    /// `INNKEEPER_LOG_FORMAT`, `text` (default) or `json`. Filtering follows `RUST_LOG`.
    pub log_format: LogFormat,
    /// `INNKEEPER_RECONCILE_INTERVAL_SECS`, default 30: how often the reconciler compares
    /// Redis with Postgres; 0 turns the background pass off.
    pub reconcile_interval: Duration,
    /// `INNKEEPER_RECONCILE_FULL_PERIOD_SECS`, default 3600: every hotel's nights are
    /// compared at least once per this period (the full round; each pass otherwise looks
    /// at the nights that changed). At least the reconcile interval.
    pub reconcile_full_period: Duration,
    /// `INNKEEPER_NIGHT_IDLE_TTL` in seconds, default 21600 (6 h), at most 86400: how long
    /// a night nobody asks for stays in Redis. At least a minute more than the in-flight
    /// TTL, so a night never leaves while a deduction on it is in flight; at most a day,
    /// so asking for a night never keeps it past its own expiry (see lua/load_nights.lua).
    pub night_idle_ttl: Duration,
    /// `INNKEEPER_SWEEP_INTERVAL_SECS`, default 5: how often expired holds are released;
    /// 0 turns the background sweep off.
    pub sweep_interval: Duration,
    /// `INNKEEPER_ARCHIVE_INTERVAL_SECS`, default 3600: how often finished stays are
    /// archived and past nights deleted; 0 turns it off.
    pub archive_interval: Duration,
    /// `INNKEEPER_ARCHIVE_RETENTION_DAYS`, default 30: how long after check-out a
    /// reservation stays in the hot table.
    pub archive_retention_days: u32,
    /// `INNKEEPER_WEBHOOK_INTERVAL_MS`, default 250: how often each shard's webhook job
    /// fans new events out and starts the deliveries that are due; 0 turns it off.
    pub webhook_interval: Duration,
    /// `INNKEEPER_WEBHOOK_RETRY_BASE_MS`, default 5000: the wait before a failed
    /// delivery's first retry; each later one doubles it, up to an hour, for a day.
    pub webhook_retry_base: Duration,
    /// `INNKEEPER_PAYMENT_WEBHOOK_SECRET`, unset by default: the payment provider's
    /// Standard Webhooks secret (`whsec_` and base64), which signs `POST
    /// /v1/payments/events`. Unset, every payment event is refused 401.
    pub payment_webhook_secret: Option<Secret>,
    /// `INNKEEPER_FAULT`, unset in production: `die_after_deduct` makes the process kill
    /// itself between a Redis deduction and its Postgres commit, `panic_in_group_commit`
    /// makes the first group-commit drainer panic; both for the fault tests.
    pub fault: Option<Fault>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_bind: None,
            database_url: None,
            shard_urls: None,
            redis_url: None,
            redis_cluster: None,
            data_dir: PathBuf::from(".innkeeper"),
            jwt_secret: None,
            max_token_ttl: Duration::from_secs(24 * 3600),
            inventory_mode: InventoryMode::Redis,
            redis_key_prefix: "innkeeper:".to_owned(),
            hold_ttl: Duration::from_secs(900),
            max_live_holds: Some(3),
            in_flight_ttl: Duration::from_secs(30),
            max_in_flight: Some(2048),
            rate_limit: None,
            request_timeout: Duration::from_millis(30_000),
            db_pool_size: 16,
            redis_pool_size: 1,
            db_statement_timeout: Duration::from_millis(5000),
            limits: BookingLimits::default(),
            log_format: LogFormat::Text,
            reconcile_interval: Duration::from_secs(30),
            reconcile_full_period: Duration::from_secs(3600),
            night_idle_ttl: Duration::from_secs(6 * 3600),
            sweep_interval: Duration::from_secs(5),
            archive_interval: Duration::from_secs(3600),
            archive_retention_days: 30,
            webhook_interval: Duration::from_millis(250),
            webhook_retry_base: Duration::from_millis(5000),
            payment_webhook_secret: None,
            fault: None,
        }
    }
}

/// The longest idle TTL of a night in Redis (see `Config::night_idle_ttl`).
pub const MAX_NIGHT_IDLE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The shortest JWT secret accepted: HS256's own output size.
pub const MIN_SECRET_BYTES: usize = 32;

/// A setting whose value cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads settings from a map of variables, so tests need not touch the process
    /// environment (which is shared by every test thread).
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let defaults = Self::default();
        let default_limits = defaults.limits;
        Ok(Self {
            bind: parse_or(&get("INNKEEPER_BIND"), "INNKEEPER_BIND", defaults.bind)?,
            metrics_bind: get("INNKEEPER_METRICS_BIND")
                .map(|value| {
                    value.parse().map_err(|_| {
                        invalid(
                            "INNKEEPER_METRICS_BIND",
                            &value,
                            "an address such as 127.0.0.1:9100",
                        )
                    })
                })
                .transpose()?,
            database_url: get("DATABASE_URL").map(Secret::new),
            shard_urls: get("INNKEEPER_SHARD_URLS")
                .map(|urls| shard_urls(&urls).map(|()| Secret::new(urls)))
                .transpose()?,
            redis_url: get("REDIS_URL").map(Secret::new),
            redis_cluster: get("INNKEEPER_REDIS_CLUSTER")
                .map(|seeds| seed_nodes(&seeds).map(|()| Secret::new(seeds)))
                .transpose()?,
            data_dir: get("INNKEEPER_DATA_DIR").map_or(defaults.data_dir, PathBuf::from),
            jwt_secret: get("INNKEEPER_JWT_SECRET").map(Secret::new),
            max_token_ttl: seconds(
                &get("INNKEEPER_MAX_TOKEN_TTL"),
                "INNKEEPER_MAX_TOKEN_TTL",
                defaults.max_token_ttl,
            )?,
            inventory_mode: match get("INNKEEPER_INVENTORY_MODE").as_deref() {
                None | Some("redis") => InventoryMode::Redis,
                Some("db") => InventoryMode::Db,
                Some(other) => {
                    return Err(invalid("INNKEEPER_INVENTORY_MODE", other, "redis or db"))
                }
            },
            redis_key_prefix: match get("INNKEEPER_REDIS_KEY_PREFIX") {
                // A brace would make Redis Cluster hash the prefix instead of the hotel id.
                Some(prefix) if prefix.contains(['{', '}']) => {
                    return Err(invalid(
                        "INNKEEPER_REDIS_KEY_PREFIX",
                        &prefix,
                        "a prefix without braces (the hotel id is every key's cluster hash tag)",
                    ))
                }
                prefix => prefix.unwrap_or(defaults.redis_key_prefix),
            },
            hold_ttl: seconds(
                &get("INNKEEPER_HOLD_TTL"),
                "INNKEEPER_HOLD_TTL",
                defaults.hold_ttl,
            )?,
            max_live_holds: limit(
                &get("INNKEEPER_MAX_LIVE_HOLDS"),
                "INNKEEPER_MAX_LIVE_HOLDS",
                defaults.max_live_holds,
            )?,
            in_flight_ttl: seconds(
                &get("INNKEEPER_IN_FLIGHT_TTL"),
                "INNKEEPER_IN_FLIGHT_TTL",
                defaults.in_flight_ttl,
            )?,
            max_in_flight: limit(
                &get("INNKEEPER_MAX_IN_FLIGHT"),
                "INNKEEPER_MAX_IN_FLIGHT",
                defaults.max_in_flight,
            )?,
            rate_limit: match get("INNKEEPER_RATE_LIMIT") {
                None => None,
                Some(value) => Some(value.parse().map_err(|()| {
                    invalid(
                        "INNKEEPER_RATE_LIMIT",
                        &value,
                        "RATE or RATE,BURST, whole numbers above 0",
                    )
                })?),
            },
            request_timeout: Duration::from_millis(positive(
                &get("INNKEEPER_REQUEST_TIMEOUT_MS"),
                "INNKEEPER_REQUEST_TIMEOUT_MS",
                30_000,
            )? as u64),
            db_pool_size: positive(
                &get("INNKEEPER_DB_POOL_SIZE"),
                "INNKEEPER_DB_POOL_SIZE",
                defaults.db_pool_size,
            )?,
            redis_pool_size: positive(
                &get("INNKEEPER_REDIS_POOL_SIZE"),
                "INNKEEPER_REDIS_POOL_SIZE",
                defaults.redis_pool_size,
            )?,
            db_statement_timeout: Duration::from_millis(positive(
                &get("INNKEEPER_DB_STATEMENT_TIMEOUT_MS"),
                "INNKEEPER_DB_STATEMENT_TIMEOUT_MS",
                5000,
            )? as u64),
            limits: BookingLimits {
                max_nights: positive(
                    &get("INNKEEPER_MAX_NIGHTS"),
                    "INNKEEPER_MAX_NIGHTS",
                    default_limits.max_nights as usize,
                )? as u32,
                max_rooms: positive(
                    &get("INNKEEPER_MAX_ROOMS"),
                    "INNKEEPER_MAX_ROOMS",
                    default_limits.max_rooms as usize,
                )? as u32,
                horizon_days: positive(
                    &get("INNKEEPER_BOOKING_HORIZON_DAYS"),
                    "INNKEEPER_BOOKING_HORIZON_DAYS",
                    default_limits.horizon_days as usize,
                )? as u32,
            },
            log_format: match get("INNKEEPER_LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => return Err(invalid("INNKEEPER_LOG_FORMAT", other, "text or json")),
            },
            reconcile_interval: interval(
                &get("INNKEEPER_RECONCILE_INTERVAL_SECS"),
                "INNKEEPER_RECONCILE_INTERVAL_SECS",
                defaults.reconcile_interval,
            )?,
            reconcile_full_period: Duration::from_secs(positive(
                &get("INNKEEPER_RECONCILE_FULL_PERIOD_SECS"),
                "INNKEEPER_RECONCILE_FULL_PERIOD_SECS",
                defaults.reconcile_full_period.as_secs() as usize,
            )? as u64),
            night_idle_ttl: Duration::from_secs(positive(
                &get("INNKEEPER_NIGHT_IDLE_TTL"),
                "INNKEEPER_NIGHT_IDLE_TTL",
                defaults.night_idle_ttl.as_secs() as usize,
            )? as u64),
            sweep_interval: interval(
                &get("INNKEEPER_SWEEP_INTERVAL_SECS"),
                "INNKEEPER_SWEEP_INTERVAL_SECS",
                defaults.sweep_interval,
            )?,
            archive_interval: interval(
                &get("INNKEEPER_ARCHIVE_INTERVAL_SECS"),
                "INNKEEPER_ARCHIVE_INTERVAL_SECS",
                defaults.archive_interval,
            )?,
            archive_retention_days: positive(
                &get("INNKEEPER_ARCHIVE_RETENTION_DAYS"),
                "INNKEEPER_ARCHIVE_RETENTION_DAYS",
                defaults.archive_retention_days as usize,
            )? as u32,
            webhook_interval: match get("INNKEEPER_WEBHOOK_INTERVAL_MS") {
                None => defaults.webhook_interval,
                Some(v) => v.parse::<u64>().map(Duration::from_millis).map_err(|_| {
                    invalid(
                        "INNKEEPER_WEBHOOK_INTERVAL_MS",
                        &v,
                        "a whole number of milliseconds (0 = off)",
                    )
                })?,
            },
            webhook_retry_base: Duration::from_millis(positive(
                &get("INNKEEPER_WEBHOOK_RETRY_BASE_MS"),
                "INNKEEPER_WEBHOOK_RETRY_BASE_MS",
                defaults.webhook_retry_base.as_millis() as usize,
            )? as u64),
            payment_webhook_secret: get("INNKEEPER_PAYMENT_WEBHOOK_SECRET").map(Secret::new),
            fault: match get("INNKEEPER_FAULT").as_deref() {
                None => None,
                Some("die_after_deduct") => Some(Fault::DieAfterDeduct),
                Some("panic_in_group_commit") => Some(Fault::PanicInGroupCommit),
                Some(other) => {
                    return Err(invalid(
                        "INNKEEPER_FAULT",
                        other,
                        "die_after_deduct or panic_in_group_commit",
                    ))
                }
            },
        })
    }

    /// Whether this process starts its own PostgreSQL and Redis. Setting only one of the
    /// two URLs is refused by [`Config::check`], so "neither" is the only embedded case.
    pub fn is_embedded(&self) -> bool {
        self.database_url.is_none() && self.redis_target().is_none()
    }

    /// The Redis Cluster when `INNKEEPER_REDIS_CLUSTER` is set, else `REDIS_URL`'s server.
    pub fn redis_target(&self) -> Option<RedisTarget> {
        match (&self.redis_cluster, &self.redis_url) {
            (Some(seeds), _) => Some(RedisTarget::Cluster(seeds.clone())),
            (None, Some(url)) => Some(RedisTarget::Server(url.clone())),
            (None, None) => None,
        }
    }

    /// Refuses combinations that would silently do something surprising.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.payment_webhook_secret {
            if standardwebhooks::Webhook::new(secret.expose()).is_err() {
                return Err(ConfigError {
                    variable: "INNKEEPER_PAYMENT_WEBHOOK_SECRET",
                    problem: "must be whsec_ followed by base64".into(),
                });
            }
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.expose().len() < MIN_SECRET_BYTES {
                return Err(ConfigError {
                    variable: "INNKEEPER_JWT_SECRET",
                    problem: format!("must be at least {MIN_SECRET_BYTES} bytes"),
                });
            }
        }
        // After a deduction a booking waits a little over one statement timeout to claim
        // its id (with split shards), at most one for a connection, a little over one for
        // the group commit ahead of it and one for its own (the group commit answers every
        // booking by that deadline, and a full queue refuses at once), and a little over
        // one more either to read the stored reservation when its id was taken meanwhile
        // or to take its claim back after a refusal. The reconciler trusts that a
        // deduction older than the in-flight TTL has ended, so the TTL must be longer than
        // all of that.
        let longest_booking = self.db_statement_timeout * 5 + Duration::from_millis(2500);
        if self.in_flight_ttl <= longest_booking {
            return Err(ConfigError {
                variable: "INNKEEPER_IN_FLIGHT_TTL",
                problem: format!(
                    "must be more than five times INNKEEPER_DB_STATEMENT_TIMEOUT_MS plus 2.5 seconds ({} s)",
                    longest_booking.as_secs_f64()
                ),
            });
        }
        if self.request_timeout <= longest_booking {
            return Err(ConfigError {
                variable: "INNKEEPER_REQUEST_TIMEOUT_MS",
                problem: format!(
                    "must be more than five times INNKEEPER_DB_STATEMENT_TIMEOUT_MS plus 2.5 seconds ({} s), so that a booking is answered by its own deadline",
                    longest_booking.as_secs_f64()
                ),
            });
        }
        // A minute's margin: the in-flight deadline is by this process' clock, a night's
        // expiry by Redis'.
        let shortest_idle = self.in_flight_ttl + Duration::from_secs(60);
        if self.night_idle_ttl < shortest_idle || self.night_idle_ttl > MAX_NIGHT_IDLE_TTL {
            return Err(ConfigError {
                variable: "INNKEEPER_NIGHT_IDLE_TTL",
                problem: format!(
                    "must be at least INNKEEPER_IN_FLIGHT_TTL plus a minute ({} s) and at most {} s",
                    shortest_idle.as_secs(),
                    MAX_NIGHT_IDLE_TTL.as_secs()
                ),
            });
        }
        if self.reconcile_full_period < self.reconcile_interval {
            return Err(ConfigError {
                variable: "INNKEEPER_RECONCILE_FULL_PERIOD_SECS",
                problem: "must be at least INNKEEPER_RECONCILE_INTERVAL_SECS".into(),
            });
        }
        if self.shard_urls.is_some() && self.database_url.is_none() {
            return Err(ConfigError {
                variable: "DATABASE_URL",
                problem: "must be set when INNKEEPER_SHARD_URLS is: it is the catalog".into(),
            });
        }
        match (&self.database_url, self.redis_target()) {
            (Some(_), None) => Err(ConfigError {
                variable: "REDIS_URL",
                problem: "must be set when DATABASE_URL is, or INNKEEPER_REDIS_CLUSTER (unset all for the embedded default)"
                    .into(),
            }),
            (None, Some(_)) => Err(ConfigError {
                variable: "DATABASE_URL",
                problem: "must be set when REDIS_URL or INNKEEPER_REDIS_CLUSTER is (unset all for the embedded default)"
                    .into(),
            }),
            _ => Ok(()),
        }
    }
}

fn invalid(variable: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        variable,
        problem: format!("`{value}` is not valid, expected {expected}"),
    }
}

fn parse_or<T: std::str::FromStr>(
    value: &Option<String>,
    variable: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(variable, v, "a valid value (see the README)")),
    }
}

fn positive(
    value: &Option<String>,
    variable: &'static str,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(variable, v, "a positive whole number")),
        },
    }
}

/// A limit where 0 means "no limit".
fn limit<T: std::str::FromStr + PartialEq + From<u8>>(
    value: &Option<String>,
    variable: &'static str,
    default: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n == T::from(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(invalid(variable, v, "a whole number (0 = no limit)")),
        },
    }
}

/// A period in whole seconds where 0 means "never" (the job is off).
fn interval(
    value: &Option<String>,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| invalid(variable, v, "a whole number of seconds (0 = off)")),
    }
}

fn seconds(
    value: &Option<String>,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    positive(value, variable, default.as_secs() as usize).map(|s| Duration::from_secs(s as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::from_vars(HashMap::new()).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from(".innkeeper"));
        assert_eq!(config.inventory_mode, InventoryMode::Redis);
        assert_eq!(config.hold_ttl, Duration::from_secs(900));
        assert!(config.is_embedded());
    }

    /// Every default against the number the README and API.md give, not against
    /// `Config::default()`: `from_vars` reads its fallbacks from there, so comparing the two
    /// would compare a value with itself.
    #[test]
    fn unset_settings_take_the_documented_defaults() {
        let config = Config::from_vars(HashMap::new()).unwrap();
        assert_eq!(config.redis_key_prefix, "innkeeper:");
        assert_eq!(config.in_flight_ttl, Duration::from_secs(30));
        assert_eq!(config.db_pool_size, 16);
        assert_eq!(config.redis_pool_size, 1);
        assert_eq!(config.db_statement_timeout, Duration::from_millis(5000));
        assert_eq!(
            config.limits,
            BookingLimits {
                max_nights: 30,
                max_rooms: 10,
                horizon_days: 365
            }
        );
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.reconcile_interval, Duration::from_secs(30));
        assert_eq!(config.sweep_interval, Duration::from_secs(5));
        assert_eq!(config.archive_interval, Duration::from_secs(3600));
        assert_eq!(config.archive_retention_days, 30);
        assert_eq!(config.fault, None);
        assert_eq!(config.max_token_ttl, Duration::from_secs(86_400));
        assert_eq!(config.max_live_holds, Some(3));
        assert_eq!(config.max_in_flight, Some(2048));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        let off = Config::from_vars(vars(&[("INNKEEPER_MAX_LIVE_HOLDS", "0")])).unwrap();
        assert_eq!(off.max_live_holds, None);
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = Config::from_vars(vars(&[
            ("INNKEEPER_INVENTORY_MODE", "db"),
            ("INNKEEPER_HOLD_TTL", "60"),
            ("INNKEEPER_BIND", "0.0.0.0:9000"),
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("REDIS_URL", "redis://h/"),
        ]))
        .unwrap();
        assert_eq!(config.inventory_mode, InventoryMode::Db);
        assert_eq!(config.hold_ttl, Duration::from_secs(60));
        assert_eq!(config.bind.port(), 9000);
        assert!(!config.is_embedded());
        config.check().unwrap();
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = Config::from_vars(vars(&[("INNKEEPER_HOLD_TTL", "soon")])).unwrap_err();
        assert_eq!(err.variable, "INNKEEPER_HOLD_TTL");
        let err = Config::from_vars(vars(&[("INNKEEPER_INVENTORY_MODE", "memory")])).unwrap_err();
        assert_eq!(err.variable, "INNKEEPER_INVENTORY_MODE");
    }

    #[test]
    fn rate_limits_parse() {
        let config = Config::from_vars(vars(&[("INNKEEPER_RATE_LIMIT", "20,50")])).unwrap();
        let limit = config.rate_limit.unwrap();
        assert_eq!((limit.per_second.get(), limit.burst.get()), (20, 50));
        let config = Config::from_vars(vars(&[("INNKEEPER_RATE_LIMIT", "7")])).unwrap();
        assert_eq!(config.rate_limit.unwrap().burst.get(), 7);
        for bad in ["0", "fast", "5,0", "-1"] {
            let err = Config::from_vars(vars(&[("INNKEEPER_RATE_LIMIT", bad)])).unwrap_err();
            assert_eq!(err.variable, "INNKEEPER_RATE_LIMIT", "{bad}");
        }
        assert_eq!(Config::from_vars(HashMap::new()).unwrap().rate_limit, None);
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let config = Config::from_vars(vars(&[(
            "INNKEEPER_JWT_SECRET",
            "0123456789abcdef0123456789abcde",
        )]))
        .unwrap();
        assert_eq!(config.check().unwrap_err().variable, "INNKEEPER_JWT_SECRET");
        let config = Config::from_vars(vars(&[(
            "INNKEEPER_JWT_SECRET",
            "0123456789abcdef0123456789abcdef",
        )]))
        .unwrap();
        config.check().unwrap();
    }

    #[test]
    fn one_url_without_the_other_is_refused() {
        let config = Config::from_vars(vars(&[("DATABASE_URL", "postgres://h/db")])).unwrap();
        assert_eq!(config.check().unwrap_err().variable, "REDIS_URL");
        let config =
            Config::from_vars(vars(&[("INNKEEPER_REDIS_CLUSTER", "redis://h:7000")])).unwrap();
        assert_eq!(config.check().unwrap_err().variable, "DATABASE_URL");
    }

    #[test]
    fn a_night_stays_idle_longer_than_a_deduction_is_in_flight_and_at_most_a_day() {
        let check = |idle: &str, in_flight: &str| {
            Config::from_vars(vars(&[
                ("INNKEEPER_NIGHT_IDLE_TTL", idle),
                ("INNKEEPER_IN_FLIGHT_TTL", in_flight),
            ]))
            .unwrap()
            .check()
            .map_err(|error| error.variable)
        };
        assert_eq!(check("90", "30"), Ok(()));
        assert_eq!(check("86400", "30"), Ok(()));
        for (idle, in_flight) in [("89", "30"), ("30", "30"), ("86401", "30")] {
            assert_eq!(
                check(idle, in_flight),
                Err("INNKEEPER_NIGHT_IDLE_TTL"),
                "{idle} after {in_flight}"
            );
        }
        let config =
            Config::from_vars(vars(&[("INNKEEPER_RECONCILE_FULL_PERIOD_SECS", "10")])).unwrap();
        assert_eq!(
            config.check().unwrap_err().variable,
            "INNKEEPER_RECONCILE_FULL_PERIOD_SECS"
        );
    }

    #[test]
    fn a_key_prefix_cannot_take_the_hash_tag() {
        let error =
            Config::from_vars(vars(&[("INNKEEPER_REDIS_KEY_PREFIX", "ik{x}:")])).unwrap_err();
        assert_eq!(error.variable, "INNKEEPER_REDIS_KEY_PREFIX");
    }

    #[test]
    fn a_redis_cluster_replaces_the_redis_url() {
        let config = Config::from_vars(vars(&[
            ("DATABASE_URL", "postgres://h/db"),
            ("REDIS_URL", "redis://h/"),
            (
                "INNKEEPER_REDIS_CLUSTER",
                "redis://:pw@a:7000, redis://:pw@b:7001",
            ),
        ]))
        .unwrap();
        config.check().unwrap();
        let Some(RedisTarget::Cluster(seeds)) = config.redis_target() else {
            panic!("the cluster wins");
        };
        assert_eq!(seeds.urls(), ["redis://:pw@a:7000", "redis://:pw@b:7001"]);
        for bad in [",", "redis://a:1,", "http://a:1", "redis://:secret@a:1,b:2"] {
            let error = Config::from_vars(vars(&[("INNKEEPER_REDIS_CLUSTER", bad)])).unwrap_err();
            assert_eq!(error.variable, "INNKEEPER_REDIS_CLUSTER", "{bad}");
            assert!(!error.problem.contains("secret"), "{}", error.problem);
        }
    }

    #[test]
    fn shards_need_a_catalog_and_postgres_urls() {
        let config = Config::from_vars(vars(&[
            ("DATABASE_URL", "postgres://h/catalog"),
            ("REDIS_URL", "redis://h/"),
            (
                "INNKEEPER_SHARD_URLS",
                "postgres://u:pw@a/s1, postgresql://b/s2",
            ),
        ]))
        .unwrap();
        config.check().unwrap();
        assert_eq!(
            config.shard_urls.unwrap().urls(),
            ["postgres://u:pw@a/s1", "postgresql://b/s2"]
        );
        let config =
            Config::from_vars(vars(&[("INNKEEPER_SHARD_URLS", "postgres://a/s1")])).unwrap();
        assert_eq!(config.check().unwrap_err().variable, "DATABASE_URL");
        for bad in [
            ",",
            "postgres://a/s1,",
            "redis://a/1",
            "postgres://",
            "postgres://:secret@a/1,b",
        ] {
            let error = Config::from_vars(vars(&[("INNKEEPER_SHARD_URLS", bad)])).unwrap_err();
            assert_eq!(error.variable, "INNKEEPER_SHARD_URLS", "{bad}");
            assert!(!error.problem.contains("secret"), "{}", error.problem);
        }
    }

    #[test]
    fn the_in_flight_ttl_must_outlast_a_booking() {
        let config = Config::from_vars(vars(&[
            ("INNKEEPER_IN_FLIGHT_TTL", "27"),
            ("INNKEEPER_DB_STATEMENT_TIMEOUT_MS", "5000"),
        ]))
        .unwrap();
        assert_eq!(
            config.check().unwrap_err().variable,
            "INNKEEPER_IN_FLIGHT_TTL"
        );
        let config = Config::from_vars(vars(&[
            ("INNKEEPER_IN_FLIGHT_TTL", "8"),
            ("INNKEEPER_DB_STATEMENT_TIMEOUT_MS", "1000"),
        ]))
        .unwrap();
        config.check().unwrap();
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config::from_vars(vars(&[
            (
                "INNKEEPER_JWT_SECRET",
                "hunter2-hunter2-hunter2-hunter2-hunter2",
            ),
            ("DATABASE_URL", "postgres://u:topsecret@h/db"),
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("topsecret"));
    }
}
