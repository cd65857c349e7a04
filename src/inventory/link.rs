//! The connections to Redis, shared by every call.
//!
//! A booking makes one short Redis call. Giving each call a connection of its own, as a
//! pool does, costs a socket write and read per call on both ends, plus a `PING` each
//! time a pooled connection is handed out; under a sold-out rush that was a third of the
//! service's CPU and most of Redis'. Here calls share a few multiplexed connections
//! instead: calls issued together leave in one write and their replies come back in one
//! read, and no call ever waits for a free connection.
//!
//! A connection that failed is suspect: before its next call it must answer a `PING`. The
//! connection manager keeps a failed reconnect attempt until the next call starts another,
//! so without the probe the first call after Redis comes back would still fail.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisResult;

use super::{CacheError, CALL_TIMEOUT};

/// How long opening a connection may take: an unreachable Redis shows within a second,
/// and the booking path carries on through Postgres alone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A few multiplexed connections to one Redis, handed out in turn. Each reconnects on its
/// own after an I/O error: one attempt per call while Redis stays down, so a call during
/// an outage fails at once instead of waiting out a backoff.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    lines: Vec<Line>,
    next: AtomicUsize,
}

struct Line {
    connection: ConnectionManager,
    /// Calls in flight on this connection, for the pool gauges.
    calls: AtomicUsize,
    /// Its last call failed: probe it before the next.
    suspect: AtomicBool,
}

/// How the connections stand, as the `innkeeper_redis_pool_connections` gauges show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Connections.
    pub max: usize,
    /// Connections carrying at least one call.
    pub in_use: usize,
    /// Calls queued behind another on the same connection.
    pub waiting: usize,
}

impl RedisLink {
    /// `size` connections to the Redis at `url`, opened on first use: innkeeper starts,
    /// and serves through Postgres, while Redis is down.
    pub fn connect(url: &str, size: usize) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(0)
            // Calls are bounded by the caller (inventory::CALL_TIMEOUT).
            .set_response_timeout(None);
        let lines = (0..size.max(1))
            .map(|_| {
                let connection =
                    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                        .context("configuring a Redis connection")?;
                Ok(Line {
                    connection,
                    calls: AtomicUsize::new(0),
                    suspect: AtomicBool::new(false),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                lines,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// A connection for one call (or one pipeline). Cheap while Redis answers: a
    /// reference count, and a counter for the gauges until the call is dropped. After a
    /// failure, the connection must first answer a `PING`: twice at most, as the first
    /// may only meet the failed reconnect attempt and start a new one.
    pub async fn connection(&self) -> Result<Call, CacheError> {
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.lines.len();
        let line = &self.inner.lines[index];
        line.calls.fetch_add(1, Ordering::Relaxed);
        let call = Call {
            connection: line.connection.clone(),
            link: self.inner.clone(),
            index,
        };
        if line.suspect.load(Ordering::Relaxed) {
            let mut outcome = Ok(());
            for _ in 0..2 {
                let mut connection = call.manager();
                outcome = call
                    .bounded(
                        CONNECT_TIMEOUT,
                        redis::cmd("PING").query_async::<()>(&mut connection),
                    )
                    .await;
                if outcome.is_ok() {
                    break;
                }
            }
            outcome?;
        }
        Ok(call)
    }

    /// Whether Redis answers `PING` within `timeout`: for readiness and the
    /// `innkeeper_backend_up` gauge.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let probe = async {
            let call = self.connection().await.ok()?;
            call.run(redis::cmd("PING").query_async::<String>(&mut call.manager()))
                .await
                .ok()
        };
        matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(_)))
    }

    pub fn status(&self) -> LinkStatus {
        let (mut in_use, mut calls) = (0, 0);
        for line in &self.inner.lines {
            let on_line = line.calls.load(Ordering::Relaxed);
            calls += on_line;
            in_use += usize::from(on_line > 0);
        }
        LinkStatus {
            max: self.inner.lines.len(),
            in_use,
            waiting: calls - in_use,
        }
    }
}

/// One call's use of a shared connection.
pub struct Call {
    connection: ConnectionManager,
    link: Arc<Inner>,
    index: usize,
}

impl Call {
    /// A handle on the connection to issue the call through.
    pub fn manager(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Runs the call within [`CALL_TIMEOUT`]. A failure or a timeout leaves the connection
    /// suspect; a success clears it.
    pub async fn run<T>(
        &self,
        request: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, CacheError> {
        self.bounded(CALL_TIMEOUT, request).await
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        request: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let outcome = match tokio::time::timeout(limit, request).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(CacheError::Redis(error)),
            Err(_elapsed) => Err(CacheError::Timeout),
        };
        // A server error (a script's own error reply) says nothing about the connection.
        let suspect = match &outcome {
            Ok(_) => false,
            Err(CacheError::Redis(error)) => error.is_io_error() || error.is_unrecoverable_error(),
            Err(_) => true,
        };
        self.link.lines[self.index]
            .suspect
            .store(suspect, Ordering::Relaxed);
        outcome
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.link.lines[self.index]
            .calls
            .fetch_sub(1, Ordering::Relaxed);
    }
}
