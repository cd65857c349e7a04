//! Redis, the fast path in front of Postgres: the connection pool, the key layout of
//! per-night inventory, and the Lua scripts that pre-deduct it.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{PoolConfig, Runtime, Timeouts};

/// A pool of connections to the Redis at `url`. Waits are bounded so that when Redis is
/// down the booking path notices within a second and takes the Postgres-only route.
pub fn connect(url: &str, size: usize) -> anyhow::Result<deadpool_redis::Pool> {
    let mut config = deadpool_redis::Config::from_url(url);
    config.pool = Some(PoolConfig {
        max_size: size,
        timeouts: Timeouts {
            wait: Some(Duration::from_secs(1)),
            create: Some(Duration::from_secs(1)),
            recycle: Some(Duration::from_secs(1)),
        },
        ..PoolConfig::default()
    });
    config
        .create_pool(Some(Runtime::Tokio1))
        .context("REDIS_URL is not a valid Redis URL")
}
