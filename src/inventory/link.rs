//! The connections to Redis, shared by every call.
//!
//! A booking makes one short Redis call. Giving each call a connection of its own, as a
//! pool does, costs a socket write and read per call on both ends, plus a `PING` each
//! time a pooled connection is handed out; under a sold-out rush that was a third of the
//! service's CPU and most of Redis'. Here calls share a few multiplexed connections
//! instead: calls issued together leave in one write and their replies come back in one
//! read, and no call ever waits for a free connection.
//!
//! A connection to one server that failed is suspect: before its next call it must answer
//! a `PING`. The connection manager keeps a failed reconnect attempt until the next call
//! starts another, so without the probe the first call after Redis comes back would still
//! fail.
//!
//! A Redis Cluster is reached through the redis crate's cluster connection, which routes
//! each call to the primary of its keys' slot, follows `MOVED` and `ASK` redirects,
//! refreshes its slot map on `READONLY` (a write that reached a primary demoted by a
//! failover) and reconnects to nodes on its own. It gets no `PING` probe: a cluster `PING`
//! goes to every primary, so one primary down would stall the calls of every other slot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::{CacheError, CALL_TIMEOUT};
use crate::config::RedisTarget;

/// How long opening a connection may take: an unreachable Redis shows within a second,
/// and the booking path carries on through Postgres alone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Attempts of one cluster call after a redirect, a reconnect or a `TRYAGAIN`. Every call
/// is bounded by [`CALL_TIMEOUT`] anyway; the waits between attempts are kept short so that
/// a slot that moved is found again well inside it.
const CLUSTER_RETRIES: u32 = 4;
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (20, 400);

/// How long one attempt at a cluster node may take. Shorter than [`CALL_TIMEOUT`], so that
/// a node that froze or fell off the network fails an attempt, which makes the connection
/// reconnect and refresh its slot map (and find the replica promoted in its place) while
/// the call still has time for another attempt.
const CLUSTER_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(800);

/// A connection to one server or to a cluster: every call site issues commands and
/// scripts the same way through either.
#[derive(Clone)]
pub enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

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
    connection: Connection,
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
    /// `size` connections to a server or a cluster, opened on first use: innkeeper starts,
    /// and serves through Postgres, while Redis is down.
    pub fn open(target: &RedisTarget, size: usize) -> anyhow::Result<Self> {
        let connections = match target {
            RedisTarget::Server(url) => {
                let client = redis::Client::open(url.expose())
                    .context("REDIS_URL is not a valid Redis URL")?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_number_of_retries(0)
                    // Calls are bounded by the caller (inventory::CALL_TIMEOUT).
                    .set_response_timeout(None);
                (0..size.max(1))
                    .map(|_| {
                        ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                            .map(Connection::Server)
                            .context("configuring a Redis connection")
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
            }
            RedisTarget::Cluster(seeds) => {
                let client = ClusterClient::builder(seeds.urls())
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
                    .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1)
                    .build()
                    .context("INNKEEPER_REDIS_CLUSTER does not name valid Redis seed nodes")?;
                // The timeouts go in the per-connection config: it replaces the builder's.
                let config = ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(CLUSTER_ATTEMPT_TIMEOUT);
                (0..size.max(1))
                    .map(|_| {
                        Connection::Cluster(
                            client.get_pending_async_connection_with_config(config.clone()),
                        )
                    })
                    .collect()
            }
        };
        let lines = connections
            .into_iter()
            .map(|connection| Line {
                connection,
                calls: AtomicUsize::new(0),
                suspect: AtomicBool::new(false),
            })
            .collect();
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
        let probe = matches!(line.connection, Connection::Server(_));
        if probe && line.suspect.load(Ordering::Relaxed) {
            let mut outcome = Ok(());
            for _ in 0..2 {
                let mut connection = call.handle();
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

    /// Whether Redis can serve, within `timeout`: for readiness and the
    /// `innkeeper_backend_up` gauge. A server must answer `PING`. A cluster must say its
    /// state is ok, asked of any one node: a cluster `PING` would need every primary, so
    /// one primary down would make every instance look unready while the other slots
    /// serve (and the cluster itself reports failure until a replica takes the slots over).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let probe = async {
            let call = self.connection().await.ok()?;
            match call.handle() {
                Connection::Server(mut connection) => call
                    .run(redis::cmd("PING").query_async::<String>(&mut connection))
                    .await
                    .ok()
                    .map(|_| true),
                Connection::Cluster(mut connection) => {
                    let any_node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                    let mut info = redis::cmd("CLUSTER");
                    info.arg("INFO");
                    let state = call
                        .run(connection.route_command(info, any_node))
                        .await
                        .ok()?;
                    let state: String = redis::from_redis_value(state).ok()?;
                    Some(state.contains("cluster_state:ok"))
                }
            }
        };
        matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(true)))
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
    connection: Connection,
    link: Arc<Inner>,
    index: usize,
}

impl Call {
    /// A handle on the connection to issue the call through.
    pub fn handle(&self) -> Connection {
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
