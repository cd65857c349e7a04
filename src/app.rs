//! Building and running one innkeeper process: where its databases are, the HTTP server,
//! and an orderly stop.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use rand::distributions::{Alphanumeric, DistString};
use tokio::net::TcpListener;

use crate::booking::health::Health;
use crate::booking::Booker;
use crate::clock::Clock;
use crate::config::{Config, InventoryMode, RedisTarget, Secret, MIN_SECRET_BYTES};
use crate::devservices::{read_or_create_secret, Durability, PostgresServer, RedisServer};
use crate::http::auth::Auth;
use crate::http::{self, AppState};
use crate::inventory::{NightCache, RedisLink};
use crate::jobs::{
    self, Archiver, Deliverer, Jobs, Leases, ReconcileSchedule, Reconciler, Sweeper,
};
use crate::store::Shards;
use crate::{store, telemetry};

/// The PostgreSQL and Redis this process talks to, and the private servers behind them
/// when it runs on the embedded default.
pub struct Backends {
    /// The catalog.
    pub database_url: Secret,
    /// `INNKEEPER_SHARD_URLS`, when PostgreSQL is split into shards.
    pub shard_urls: Option<Secret>,
    pub redis: RedisTarget,
    embedded: Option<(PostgresServer, RedisServer)>,
}

impl Backends {
    /// Connects to the catalog and every shard, migrating each (see [`Shards::open`]).
    pub async fn shards(&self, config: &Config) -> anyhow::Result<Shards> {
        Shards::open(&self.database_url, self.shard_urls.as_ref(), config).await
    }

    /// The servers named by `DATABASE_URL` and `REDIS_URL` (or `INNKEEPER_REDIS_CLUSTER`),
    /// or, when all are unset, private servers started under the data directory.
    ///
    /// Blocking, and it must run on a thread that lives as long as the process (the main
    /// thread): the private servers are told to stop when the thread that started them ends.
    pub fn start(config: &Config) -> anyhow::Result<Self> {
        config.check()?;
        match (&config.database_url, config.redis_target()) {
            (Some(database_url), Some(redis)) => Ok(Self {
                database_url: database_url.clone(),
                shard_urls: config.shard_urls.clone(),
                redis,
                embedded: None,
            }),
            _ => {
                create_private_dir(&config.data_dir)?;
                let postgres =
                    PostgresServer::start(&config.data_dir.join("postgres"), Durability::Durable)?;
                let redis =
                    RedisServer::start(&config.data_dir.join("redis"), Durability::Durable)?;
                tracing::info!(
                    data_dir = %config.data_dir.display(),
                    postgres_port = postgres.port(),
                    redis_port = redis.port(),
                    "started the embedded PostgreSQL and Redis"
                );
                Ok(Self {
                    database_url: Secret::new(postgres.url()),
                    shard_urls: None,
                    redis: RedisTarget::Server(Secret::new(redis.url())),
                    embedded: Some((postgres, redis)),
                })
            }
        }
    }

    /// Stops the private servers, if any, each with its own clean shutdown.
    pub fn stop(self) {
        if let Some((mut postgres, mut redis)) = self.embedded {
            if let Err(error) = redis.stop() {
                tracing::warn!(%error, "stopping the embedded Redis");
            }
            if let Err(error) = postgres.stop() {
                tracing::warn!(%error, "stopping the embedded PostgreSQL");
            }
            tracing::info!("stopped the embedded PostgreSQL and Redis");
        }
    }
}

/// The JWT secret: `INNKEEPER_JWT_SECRET`, or one generated on first use and kept in the
/// data directory, so tokens made by `innkeeper token` stay valid across restarts. The file
/// is private (mode 0600), made whole and exclusively; a readable one is refused (see
/// [`read_or_create_secret`]).
pub fn jwt_secret(config: &Config) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    create_private_dir(&config.data_dir)?;
    let path = config.data_dir.join("jwt_secret");
    let secret = read_or_create_secret(&path, || {
        Alphanumeric.sample_string(&mut rand::thread_rng(), 48)
    })
    .with_context(|| format!("keeping the JWT secret in {}", path.display()))?;
    anyhow::ensure!(
        secret.len() >= MIN_SECRET_BYTES,
        "the JWT secret in {} is shorter than {MIN_SECRET_BYTES} bytes; delete it to have a new one made",
        path.display()
    );
    Ok(Secret::new(secret))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}

/// A built application, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics` on a listener of its own, when `INNKEEPER_METRICS_BIND` is set.
    metrics: Option<(TcpListener, Router)>,
    state: AppState,
}

impl Application {
    /// Connects to the backends, applies migrations and binds the listener.
    pub async fn build(
        config: Config,
        backends: &Backends,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        // The recorder first: series registered before it exists would go nowhere.
        let metrics = telemetry::metrics_handle();
        telemetry::register_metrics(&http::openapi());
        let shards = backends.shards(&config).await?;
        for shard in shards.all() {
            store::prewarm(&shard.pool).await?;
        }
        let redis = RedisLink::open(&backends.redis, config.redis_pool_size)?;
        let auth = Arc::new(Auth::new(
            &jwt_secret(&config)?,
            clock.clone(),
            config.max_token_ttl,
        ));
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        let metrics_listener = match config.metrics_bind {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding {address} for /metrics"))?,
            ),
            None => None,
        };
        let cache = match config.inventory_mode {
            InventoryMode::Redis => Some(NightCache::new(
                redis.clone(),
                &config.redis_key_prefix,
                config.in_flight_ttl,
                config.night_idle_ttl,
            )),
            InventoryMode::Db => None,
        };
        let booker = Booker::new(shards.clone(), cache.clone(), clock.clone(), &config);
        let jobs = Jobs {
            reconciler: Reconciler::new(
                shards.clone(),
                cache,
                clock.clone(),
                config.limits,
                ReconcileSchedule::of(&config),
            ),
            sweeper: Sweeper::new(booker.clone(), shards.clone(), clock.clone()),
            archiver: Archiver::new(shards.clone(), clock.clone(), config.archive_retention_days),
            webhooks: Deliverer::new(shards.clone(), clock.clone(), config.webhook_retry_base)?,
            leases: Leases::new(shards.clone()),
        };
        let state = AppState {
            rate_limits: http::rate_limits(config.rate_limit),
            config: Arc::new(config),
            auth,
            clock,
            metrics,
            health: Arc::new(Health::new(shards.catalog().clone(), redis)),
            booker: Arc::new(booker),
            jobs: Arc::new(jobs),
        };
        Ok(Self {
            listener,
            router: http::app(state.clone()),
            metrics: metrics_listener.map(|listener| (listener, http::metrics_app(state.clone()))),
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served apart, if it is.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves, and runs the background jobs and the metrics upkeep, until `shutdown`
    /// completes; then finishes the requests in flight. The jobs stop with the server (a
    /// job step cut short is repeated by the next process).
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, "innkeeper is serving");
        let config = &self.state.config;
        let jobs = jobs::run_until_stopped(
            Jobs::clone(&self.state.jobs),
            jobs::Intervals {
                reconcile: config.reconcile_interval,
                sweep: config.sweep_interval,
                archive: config.archive_interval,
                webhooks: config.webhook_interval,
            },
        );
        // Each connection gets a clone of the finished router (a reference count), never a
        // router rebuilt per connection (that cost 17 KiB each, 19 MiB of the rush's 1,100).
        let server = http::serve(self.listener, self.router, shutdown);
        // The metrics listener stops with the server: when the select ends, so does it.
        let metrics = async {
            match self.metrics {
                Some((listener, router)) => {
                    http::serve(listener, router, std::future::pending()).await
                }
                None => std::future::pending().await,
            }
        };
        let upkeep = telemetry::run_metrics_upkeep(self.state.metrics.clone());
        tokio::select! {
            () = server => {},
            () = metrics => {},
            () = jobs => {},
            () = upkeep => {},
        }
        // Handing the jobs over now spares the other instances the wait for the leases to
        // lapse; if Postgres cannot be reached they lapse anyway.
        let release = self.state.jobs.leases.release();
        match tokio::time::timeout(Duration::from_secs(2), release).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "releasing the job leases")
            }
            Err(_elapsed) => tracing::warn!("releasing the job leases timed out"),
        }
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("stopping");
}
