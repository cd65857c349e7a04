//! `loadgen`: the load generator and report writer of `loadtest/bench`.
//!
//! ```text
//! loadgen suite  --base-url URL --staff-token T --guest-token T --database-url URL \
//!                --pid PID --mode redis|db --out FILE    # the scenarios, as JSON rows
//! loadgen overload --base-url URL --staff-token T --guest-token T --database-url URL \
//!                --pid PID --mode LABEL --rate-past SUITE.json --out FILE
//!                                                        # the open-loop overload
//! loadgen report --raw raw.json RESULTS.json...          # the markdown tables
//! loadgen topology --dir DIR --shards N                  # a catalog, N shards and a
//!                                                        # Redis Cluster, until SIGTERM
//! loadgen scale --base-url URL --staff-token T --guest-token T --database-url URL \
//!                --redis-url URL --pid PID --out FILE    # reconciler and Redis costs
//!                                                        # at 100 to 10,000 hotels
//! ```
//!
//! It is a closed-loop generator (each connection sends its next request when the answer
//! to the last one arrives), light enough that the server saturates before it does. The
//! k6 scenarios next to it are for load testers; this is for the peak figures.

mod client;
mod report;
mod scale;
mod scenarios;
mod stats;
mod topology;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

use client::Target;
use scenarios::Env;
use stats::Row;

#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the rush, sold-out, spread and availability scenarios against one server.
    Suite(SuiteArgs),
    /// Run the rush at ten times its demand, open loop, well past capacity.
    Overload(OverloadArgs),
    /// Print the markdown report of the raw limits and one or more suites.
    Report {
        /// The raw limits measured by `loadtest/bench` (redis-benchmark, pgbench).
        #[arg(long)]
        raw: PathBuf,
        /// Suite results, in the order they should appear.
        results: Vec<PathBuf>,
    },
    /// Start a PostgreSQL catalog, shard PostgreSQL servers and a Redis Cluster, write
    /// their settings to DIR/env, and keep them up until SIGTERM.
    Topology {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2)]
        shards: usize,
    },
    /// Empty the service's stores and measure, at each size, what the reconciler and
    /// Redis cost (see scale.rs). Destroys the service's data.
    Scale(ScaleArgs),
}

#[derive(Debug, clap::Args)]
struct ScaleArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The service's Redis.
    #[arg(long, env = "BENCH_REDIS_URL")]
    redis_url: String,
    /// Hotels at each size, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<usize>,
    /// Nights on sale per hotel, from today.
    #[arg(long, default_value_t = 365)]
    nights: u64,
    /// Seconds of each booking load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long)]
    out: PathBuf,
}

/// Where the service is and how to observe it.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The service: one instance, or several (comma-separated) that connections are
    /// spread over in turn.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    #[arg(long, env = "STAFF_TOKEN")]
    staff_token: String,
    #[arg(long, env = "GUEST_TOKEN")]
    guest_token: String,
    /// The service's database (the catalog), read for `pg_stat_database` and oversell
    /// checks.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: String,
    /// The shard databases of a service split by hotel (its `INNKEEPER_SHARD_URLS`),
    /// comma-separated; counted with the catalog, which is also reported alone.
    #[arg(long, env = "BENCH_SHARD_URLS", value_delimiter = ',')]
    shard_urls: Vec<String>,
    /// The innkeeper processes (comma-separated), whose peak RSS is reported, added up.
    #[arg(long, value_delimiter = ',', required = true)]
    pid: Vec<u32>,
    /// Seconds to let idle PostgreSQL backends report their transaction counts.
    #[arg(long, default_value_t = 11)]
    settle_seconds: u64,
}

impl TargetArgs {
    async fn env(&self, mode: &str) -> anyhow::Result<Env> {
        Ok(Env {
            target: Target::parse(&self.base_url).await?,
            staff: self.staff_token.clone(),
            guest: self.guest_token.clone(),
            mode: mode.to_owned(),
            database_url: self.database_url.clone(),
            shard_urls: self.shard_urls.clone(),
            pids: self.pid.clone(),
            settle: Duration::from_secs(self.settle_seconds),
            loads: Default::default(),
        })
    }
}

/// What every load run needs: where the service is, what the report calls the run, where
/// its rows go, and the rush's hot room type.
#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A label for the report, e.g. `redis`, `db` or `redis, admission on`: the server,
    /// not this label, decides the mode.
    #[arg(long)]
    mode: String,
    #[arg(long)]
    out: PathBuf,
    /// The hot room type's total inventory; sellable = floor(total * 1.10).
    #[arg(long, default_value_t = 100)]
    rush_inventory: i64,
}

impl RunArgs {
    async fn env(&self) -> anyhow::Result<Env> {
        self.target.env(&self.mode).await
    }

    /// Writes the run's rows, as `loadgen report` reads them.
    fn write(&self, rows: Vec<Row>) -> anyhow::Result<()> {
        let result = SuiteResult {
            mode: self.mode.clone(),
            rows,
        };
        std::fs::write(&self.out, serde_json::to_string_pretty(&result)?)?;
        Ok(())
    }
}

#[derive(Debug, clap::Args)]
struct SuiteArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Demand as a multiple of the sellable capacity.
    #[arg(long, default_value_t = 20)]
    rush_demand: u64,
    /// Connections opened before the rush and released at once.
    #[arg(long, default_value_t = 1100)]
    rush_connections: usize,
    /// Connections of the timed scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds each timed scenario runs.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    #[arg(long, default_value_t = 1000)]
    hotels: usize,
    /// Run only the commit-path scenarios (spread and availability) or only the rush and
    /// its sold-out phase, for a quicker look while tuning; the bench runs both.
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Load stay restrictions that the rush's stay meets on all its nights, to measure
    /// what checking them costs.
    #[arg(long)]
    restrictions: bool,
    /// Subscribe a local receiver to every event first, and after the rush and the
    /// spread report how their bookings' events were delivered (see
    /// scenarios/webhooks.rs).
    #[arg(long)]
    webhook: bool,
}

#[derive(Debug, clap::Args)]
struct OverloadArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Demand as a multiple of the sellable capacity: ten times the rush's.
    #[arg(long, default_value_t = 200)]
    demand: u64,
    /// Arrivals a second. Without it, `--rate-factor` times the sold-out rejections a
    /// second that the suite in `--rate-past` measured: past capacity by construction.
    #[arg(long, required_unless_present = "rate_past")]
    rate: Option<f64>,
    #[arg(long)]
    rate_past: Option<PathBuf>,
    #[arg(long, default_value_t = 2.0)]
    rate_factor: f64,
    /// Connections opened beforehand: more than the service admits at once.
    #[arg(long, default_value_t = 4096)]
    connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Rush,
    Spread,
}

/// What one suite wrote: its rows.
#[derive(Debug, Serialize, Deserialize)]
pub struct SuiteResult {
    pub mode: String,
    pub rows: Vec<Row>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Suite(args) => runtime()?.block_on(suite(args)),
        Command::Overload(args) => runtime()?.block_on(overload(args)),
        Command::Report { raw, results } => {
            print!("{}", report::render(&raw, &results)?);
            Ok(())
        }
        Command::Topology { dir, shards } => topology::run(&dir, shards),
        Command::Scale(args) => runtime()?.block_on(async {
            let env = args.target.env("redis").await?;
            scale::run(
                &env,
                &args.redis_url,
                &args.sizes,
                args.nights,
                args.seconds,
                &args.out,
            )
            .await
        }),
    }
}

async fn suite(args: SuiteArgs) -> anyhow::Result<()> {
    let env = args.run.env().await?;
    let duration = Duration::from_secs(args.seconds);
    let mut rows = Vec::new();
    let receiver = match args.webhook {
        true => Some(scenarios::Receiver::subscribe(&env).await?),
        false => None,
    };
    if args.only != Some(Part::Spread) {
        eprintln!("[{}] rush and sold-out", env.mode);
        let mark = receiver.as_ref().map(scenarios::Receiver::start);
        let (rush, sold_out) = scenarios::rush_and_sold_out(
            &env,
            args.run.rush_inventory,
            args.restrictions,
            args.rush_demand,
            args.rush_connections,
            args.connections,
            duration,
        )
        .await?;
        let heard = match (&receiver, mark) {
            (Some(receiver), Some(mark)) => {
                let created = rush.extra.get("created").copied().unwrap_or(0.0) as u64;
                Some(
                    receiver
                        .settle(&env, "rush", mark, rush.elapsed_s, created)
                        .await?,
                )
            }
            _ => None,
        };
        rows.extend([rush, sold_out]);
        rows.extend(heard);
        eprintln!("[{}] the rush's burst on /healthz", env.mode);
        let demand = scenarios::sellable(args.run.rush_inventory) as u64 * args.rush_demand;
        rows.push(scenarios::burst_floor(&env, demand, args.rush_connections).await?);
        eprintln!("[{}] /healthz at full speed", env.mode);
        rows.push(scenarios::healthz_loop(&env, args.connections, duration).await?);
    }
    if args.only != Some(Part::Rush) {
        spread_and_availability(
            &env,
            args.hotels,
            args.connections,
            duration,
            receiver.as_ref(),
            &mut rows,
        )
        .await?;
    }
    if let Some(receiver) = receiver {
        receiver.unsubscribe(&env).await?;
    }
    args.run.write(rows)
}

async fn spread_and_availability(
    env: &Env,
    hotels: usize,
    connections: usize,
    duration: Duration,
    receiver: Option<&scenarios::Receiver>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("[{}] creating {} hotels", env.mode, hotels);
    let spread = Arc::new(scenarios::create_spread(env, hotels, 16).await?);
    eprintln!("[{}] spread bookings", env.mode);
    let mark = receiver.map(scenarios::Receiver::start);
    let bookings = scenarios::spread_bookings(env, spread.clone(), connections, duration).await?;
    let heard = match (receiver, mark) {
        (Some(receiver), Some(mark)) => {
            let created = bookings.extra.get("created").copied().unwrap_or(0.0) as u64;
            Some(
                receiver
                    .settle(env, "spread", mark, bookings.elapsed_s, created)
                    .await?,
            )
        }
        _ => None,
    };
    rows.push(bookings);
    rows.extend(heard);
    eprintln!("[{}] availability reads", env.mode);
    rows.push(scenarios::availability_reads(env, spread, connections, duration).await?);
    Ok(())
}

async fn overload(args: OverloadArgs) -> anyhow::Result<()> {
    let rate = match (args.rate, &args.rate_past) {
        (Some(rate), _) => rate,
        (None, Some(suite)) => {
            let measured: SuiteResult = serde_json::from_str(&std::fs::read_to_string(suite)?)?;
            let sold_out = measured
                .rows
                .iter()
                .find(|row| row.scenario.starts_with("sold out"))
                .ok_or_else(|| anyhow::anyhow!("{} has no sold-out row", suite.display()))?;
            args.rate_factor * sold_out.throughput
        }
        (None, None) => anyhow::bail!("give --rate or --rate-past"),
    };
    let env = args.run.env().await?;
    let arrivals = scenarios::Arrivals {
        attempts: scenarios::sellable(args.run.rush_inventory) as u64 * args.demand,
        rate,
        connections: args.connections,
    };
    eprintln!(
        "[{}] overload: {} attempts at {rate:.0}/s",
        env.mode, arrivals.attempts
    );
    let row = scenarios::overload(&env, args.run.rush_inventory, &arrivals).await?;
    args.run.write(vec![row])
}
