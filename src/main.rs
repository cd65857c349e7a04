//! The `innkeeper` command: parse the command line, build, run until stopped.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use innkeeper::app::{self, Application, Backends};
use innkeeper::clock::{Clock, SystemClock};
use innkeeper::config::{Config, InventoryMode};
use innkeeper::domain::Role;
use innkeeper::http::auth::Auth;
use innkeeper::inventory::{NightCache, RedisLink};
use innkeeper::jobs::{ReconcileSchedule, Reconciler};
use innkeeper::{demo, telemetry};

/// Hotel reservations for peak-season booking surges.
#[derive(Debug, Parser)]
#[command(name = "innkeeper", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default). Without DATABASE_URL and REDIS_URL, starts private
    /// PostgreSQL and Redis servers under INNKEEPER_DATA_DIR.
    Serve {
        /// Address to listen on [env: INNKEEPER_BIND] [default: 127.0.0.1:8080].
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Load a small demo hotel unless it exists.
        #[arg(long)]
        seed_demo: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Run one reconciler pass (Redis repaired from Postgres) and print its report.
    Reconcile,
    /// Print a bearer token signed with this configuration's secret.
    Token {
        /// staff or guest.
        #[arg(long)]
        role: Role,
        /// The token's subject: the guest id for guests.
        #[arg(long)]
        sub: String,
        /// How long the token is valid, such as 30m, 1h or 7d; bare numbers are seconds.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

fn parse_ttl(value: &str) -> Result<Duration, String> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(value).map_err(|error| error.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("innkeeper: {error}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init_logging(config.log_format);
    match run(cli.command, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("innkeeper: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Option<Command>, config: Config) -> anyhow::Result<()> {
    match command.unwrap_or(Command::Serve {
        bind: None,
        seed_demo: false,
    }) {
        Command::Serve { bind, seed_demo } => {
            let mut config = config;
            if let Some(bind) = bind {
                config.bind = bind;
            }
            on_backends(&config.clone(), async |backends| {
                let clock: Arc<dyn Clock> = Arc::new(SystemClock);
                let seed_config = config.clone();
                let application = Application::build(config, backends, clock.clone()).await?;
                if seed_demo {
                    demo::seed(&backends.shards(&seed_config).await?, clock.now()).await?;
                }
                application.run_until_stopped(app::shutdown_signal()).await
            })
        }
        Command::Migrate => on_backends(&config, async |backends| {
            let shards = backends.shards(&config).await?;
            println!(
                "migrations applied to the catalog and {} shard(s)",
                shards.all().len()
            );
            Ok(())
        }),
        Command::Reconcile => on_backends(&config, async |backends| {
            let shards = backends.shards(&config).await?;
            let cache = match config.inventory_mode {
                InventoryMode::Redis => Some(NightCache::new(
                    RedisLink::open(&backends.redis, config.redis_pool_size)?,
                    &config.redis_key_prefix,
                    config.in_flight_ttl,
                    config.night_idle_ttl,
                )),
                InventoryMode::Db => None,
            };
            let report = Reconciler::new(
                shards,
                cache,
                Arc::new(SystemClock),
                config.limits,
                ReconcileSchedule::of(&config),
            )
            .run_once()
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }),
        Command::Token { role, sub, ttl } => {
            let secret = app::jwt_secret(&config)?;
            println!(
                "{}",
                Auth::new(&secret, Arc::new(SystemClock), config.max_token_ttl)
                    .issue(&sub, role, ttl)?
            );
            Ok(())
        }
    }
}

/// Runs `work` against the configured backends on a fresh runtime, then stops any private
/// servers, whether `work` succeeded or not.
fn on_backends(
    config: &Config,
    work: impl AsyncFnOnce(&Backends) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // Started on the main thread, which lives as long as the process (see Backends::start).
    let backends = Backends::start(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(work(&backends));
    runtime.shutdown_timeout(Duration::from_secs(5));
    backends.stop();
    outcome
}
