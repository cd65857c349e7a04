//! PostgreSQL, the source of truth: the connection pool, migrations, and one module of
//! queries per table family.
//!
//! Queries are prepared once per connection (`prepare_cached`) and always parameterised.

pub mod claims;
pub mod hotels;
pub mod inventory;
pub mod journal;
pub mod leases;
pub mod page;
pub mod payments;
pub mod reservations;
pub mod restrictions;
pub mod room_types;
pub mod rooms;
pub mod shards;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{FromSql, Type};

use crate::config::Config;
pub use shards::{Shard, Shards};

use crate::domain::{
    CurrencyCode, HotelTimezone, OverbookingRatio, PaymentStatus, ReservationStatus,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A pool of connections to the database at `url`.
///
/// Waiting for a connection is bounded, so that when Postgres is down or saturated requests
/// are answered 503 quickly instead of piling up; statements are bounded by
/// `statement_timeout` for the same reason.
pub fn connect(url: &str, config: &Config) -> anyhow::Result<Pool> {
    let mut pg = tokio_postgres::Config::from_str(url).context("not a valid PostgreSQL URL")?;
    pg.application_name("innkeeper");
    pg.connect_timeout(Duration::from_secs(5));
    // DateStyle ISO: book_stay() names a restricted night in an error message, which this
    // code parses as YYYY-MM-DD whatever the server's default style.
    pg.options(format!(
        "-c statement_timeout={} -c DateStyle=ISO",
        config.db_statement_timeout.as_millis()
    ));
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.db_pool_size)
        .runtime(Runtime::Tokio1)
        // A booking's wait for a connection is bounded like its statement (see
        // Config::check, which relies on both bounds).
        .wait_timeout(Some(config.db_statement_timeout))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building the PostgreSQL pool")
}

/// Opens every connection of the pool and prepares the booking statement on each, so the
/// first burst of bookings after a start does not wait for connections to be made.
pub async fn prewarm(pool: &Pool) -> anyhow::Result<()> {
    let size = pool.status().max_size;
    let mut connections = Vec::with_capacity(size);
    for _ in 0..size {
        let connection = pool.get().await.context("opening the PostgreSQL pool")?;
        reservations::prepare(&connection).await?;
        connections.push(connection);
    }
    Ok(())
}

/// Any number that no other advisory lock of this database uses: held while migrating.
const MIGRATION_LOCK: i64 = 0x1_4e4b_4545_5045;

/// Applies every migration in `migrations/` that the database has not seen yet.
///
/// Instances started together on a fresh database would each try to create refinery's
/// history table and fail on the other's: they take turns, under a session advisory lock
/// (released with the session if the process dies), and the later ones find nothing left
/// to apply.
pub async fn migrate(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool
        .get()
        .await
        .context("connecting to PostgreSQL to migrate")?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("waiting for another instance's migrations")?;
    let report = embedded::migrations::runner()
        .run_async(&mut **client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .context("releasing the migration lock")?;
    let report = report.context("applying migrations")?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    Ok(())
}

/// Whether the database answers `SELECT 1` within `timeout`: for readiness and the
/// `innkeeper_backend_up` gauge.
pub async fn ping(pool: &Pool, timeout: Duration) -> bool {
    let probe = async {
        let client = pool.get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(_)))
}

/// A column read straight into a domain type. The tables' CHECKs and the code that writes
/// them keep these valid, so a value the domain refuses means a corrupt row: it becomes a
/// conversion error of the query (answered 500), never a panic and never a default.
pub(crate) struct Column<T>(pub T);

type ConversionError = Box<dyn std::error::Error + Sync + Send>;

/// A domain type stored as text, parsed by its own rules when read back.
trait TextColumn: Sized {
    fn parse_column(text: &str) -> Result<Self, ConversionError>;
}

impl TextColumn for HotelTimezone {
    fn parse_column(text: &str) -> Result<Self, ConversionError> {
        Ok(HotelTimezone::parse(text)?)
    }
}

impl TextColumn for CurrencyCode {
    fn parse_column(text: &str) -> Result<Self, ConversionError> {
        Ok(CurrencyCode::parse(text)?)
    }
}

impl TextColumn for PaymentStatus {
    fn parse_column(text: &str) -> Result<Self, ConversionError> {
        Ok(text.parse()?)
    }
}

impl TextColumn for ReservationStatus {
    fn parse_column(text: &str) -> Result<Self, ConversionError> {
        Ok(text.parse()?)
    }
}

impl<'a, T: TextColumn> FromSql<'a> for Column<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        T::parse_column(<&str as FromSql>::from_sql(ty, raw)?).map(Column)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// `overbooking_ratio_bp`: whole basis points.
impl<'a> FromSql<'a> for Column<OverbookingRatio> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let bp = i32::from_sql(ty, raw)?;
        OverbookingRatio::from_basis_points(i64::from(bp))
            .map(Column)
            .ok_or_else(|| format!("{bp} basis points is not an overbooking ratio").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i32 as FromSql>::accepts(ty)
    }
}
