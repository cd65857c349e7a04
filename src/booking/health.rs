//! Whether each store answers, and how its connections stand: readiness, the
//! `innkeeper_backend_up` gauges and the pool gauges, each store asked through its own
//! `ping()`.

use std::time::{Duration, Instant};

use crate::inventory::RedisLink;
use crate::telemetry::{self, Backend, Pool, PoolGauges};

/// A readiness probe gives each store this long before calling it down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a probe's answer is reused: a flood of `/readyz` costs each store one probe a
/// second, not a pool connection per request.
const PROBE_FRESH_FOR: Duration = Duration::from_secs(1);

/// How each store answered one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreHealth {
    pub postgres: bool,
    pub redis: bool,
}

/// The stores, probed. Redis is held even in the `db` inventory mode: it is configured,
/// and an operator switching modes back needs to know it answers.
pub struct Health {
    db: deadpool_postgres::Pool,
    redis: RedisLink,
    /// The last probe and when it answered; one probe at a time.
    last: tokio::sync::Mutex<Option<(Instant, StoreHealth)>>,
}

impl Health {
    pub fn new(db: deadpool_postgres::Pool, redis: RedisLink) -> Self {
        Self {
            db,
            redis,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// How the stores answered a probe at most [`PROBE_FRESH_FOR`] ago, probing them
    /// again when that answer is older.
    pub async fn recent(&self) -> StoreHealth {
        let mut last = self.last.lock().await;
        if let Some((at, health)) = *last {
            if at.elapsed() < PROBE_FRESH_FOR {
                return health;
            }
        }
        let health = self.probe().await;
        *last = Some((Instant::now(), health));
        health
    }

    /// Pings both stores at once.
    async fn probe(&self) -> StoreHealth {
        let (postgres, redis) = tokio::join!(
            crate::store::ping(&self.db, PROBE_TIMEOUT),
            self.redis.ping(PROBE_TIMEOUT)
        );
        StoreHealth { postgres, redis }
    }

    /// Samples both pools, then probes both stores, into their gauges: what a scrape
    /// shows is how things stand at the scrape. The pools first, since the probes take a
    /// connection from each.
    pub async fn record(&self) {
        let status = self.db.status();
        telemetry::record_pool(
            Pool::Postgres,
            PoolGauges {
                idle: status.available,
                in_use: status.size.saturating_sub(status.available),
                waiting: status.waiting,
                max: status.max_size,
            },
        );
        // Redis connections are shared, not checked out: a connection is in use while it
        // carries a call, and a call waits when it is queued behind another on its
        // connection.
        let status = self.redis.status();
        telemetry::record_pool(
            Pool::Redis,
            PoolGauges {
                idle: status.max - status.in_use,
                in_use: status.in_use,
                waiting: status.waiting,
                max: status.max,
            },
        );
        let health = self.recent().await;
        telemetry::record_backend_up(Backend::Postgres, health.postgres);
        telemetry::record_backend_up(Backend::Redis, health.redis);
    }
}
