//! Reservations in Postgres: the booking transaction, lifecycle changes and reads.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

use super::page::{CreatedKey, PageRequest};
use super::Column;
use crate::domain::{
    Ending, NewReservation, Payment, Reservation, ReservationId, Restriction, Stay,
};
use crate::telemetry;

/// How the booking transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    Created(Reservation),
    /// A reservation with this id is already stored.
    Exists,
    /// A night lacks the rooms (or any inventory); nothing was written.
    SoldOut,
    /// The guest already holds as many pending reservations as allowed; nothing was
    /// written.
    HoldLimit,
    /// The stay breaks a restriction, set on that date; nothing was written.
    Restricted {
        restriction: Restriction,
        night: NaiveDate,
    },
}

/// SQLSTATE raised by `book_stay` when a night filled up under its row lock.
const SOLD_OUT_AT_GUARD: &str = "IK409";
/// SQLSTATE raised by `book_stay` when a restriction changed under its row locks; the
/// message is "restriction|night".
const RESTRICTED_AT_GUARD: &str = "IK422";

/// A reservation from a row with every column of the table (see [`COLUMNS`]).
pub fn from_row(row: &Row) -> Result<Reservation, tokio_postgres::Error> {
    Ok(Reservation {
        stay: Stay {
            reservation_id: ReservationId::new(row.try_get("reservation_id")?),
            hotel_id: row.try_get("hotel_id")?,
            room_type_id: row.try_get("room_type_id")?,
            check_in: row.try_get("check_in")?,
            check_out: row.try_get("check_out")?,
            rooms: i64::from(row.try_get::<_, i32>("rooms")?),
        },
        guest_id: row.try_get("guest_id")?,
        status: row.try_get::<_, Column<_>>("status")?.0,
        total_cents: row.try_get("total_cents")?,
        currency: row.try_get("currency")?,
        hold_expires_at: row.try_get("hold_expires_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        payment: Payment {
            status: row.try_get::<_, Column<_>>("payment_status")?.0,
            payment_id: row.try_get("payment_id")?,
            amount_cents: row.try_get("paid_cents")?,
            refunded_cents: row.try_get("refunded_cents")?,
        },
    })
}

const BOOK: &str = "SELECT outcome, total_cents, currency, restriction, restricted_night \
                    FROM book_stay($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

const BOOK_ALL: &str = "SELECT outcome, total_cents, currency \
                        FROM book_stays($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Prepares the booking statements on a connection ahead of time. Preparing is a round
/// trip and, outside a transaction block, a transaction of its own in Postgres' statistics;
/// done at start-up, the first rush on a fresh connection pays neither.
pub async fn prepare(db: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    db.prepare_cached(BOOK).await?;
    book_all_statement(db).await.map(drop)
}

/// The statement [`book_all`] runs, prepared (at start-up, by [`prepare`]).
pub async fn book_all_statement(
    db: &impl GenericClient,
) -> Result<Statement, tokio_postgres::Error> {
    db.prepare_cached(BOOK_ALL).await
}

/// Books a whole batch in one statement (`book_stays()`, as
/// migrations/V13__book_stays.sql defines it): every booking is created or found already
/// stored, each answered in the batch's order, or the statement fails and books none
/// (one that does not fit raises; [`book`] then tells each booking's own outcome). An id
/// twice in the batch is booked by the first and found stored by the second.
///
/// The request is sent the first time the future is polled, so a caller can pipeline it
/// between a BEGIN and a COMMIT.
pub async fn book_all(
    db: &impl GenericClient,
    statement: &Statement,
    bookings: &[&NewReservation],
) -> Result<Vec<Committed>, BookError> {
    let mut ids = Vec::with_capacity(bookings.len());
    let mut hotels = Vec::with_capacity(bookings.len());
    let mut room_types = Vec::with_capacity(bookings.len());
    let mut guests = Vec::with_capacity(bookings.len());
    let mut check_ins = Vec::with_capacity(bookings.len());
    let mut check_outs = Vec::with_capacity(bookings.len());
    let mut rooms = Vec::with_capacity(bookings.len());
    let mut created_ats = Vec::with_capacity(bookings.len());
    let mut hold_expires_ats = Vec::with_capacity(bookings.len());
    let mut hold_limits = Vec::with_capacity(bookings.len());
    let mut overrides = Vec::with_capacity(bookings.len());
    for booking in bookings {
        let stay = &booking.stay;
        ids.push(stay.reservation_id.as_uuid());
        hotels.push(stay.hotel_id);
        room_types.push(stay.room_type_id);
        guests.push(booking.guest_id.as_str());
        check_ins.push(stay.check_in);
        check_outs.push(stay.check_out);
        rooms.push(
            i32::try_from(stay.rooms)
                .map_err(|_| BookError::Outcome(format!("{} rooms", stay.rooms)))?,
        );
        created_ats.push(booking.created_at);
        hold_expires_ats.push(booking.hold_expires_at);
        hold_limits.push(hold_limit(booking));
        overrides.push(booking.override_restrictions);
    }
    let rows = db
        .query(
            statement,
            &[
                &ids,
                &hotels,
                &room_types,
                &guests,
                &check_ins,
                &check_outs,
                &rooms,
                &created_ats,
                &hold_expires_ats,
                &hold_limits,
                &overrides,
            ],
        )
        .await?;
    if rows.len() != bookings.len() {
        return Err(BookError::Outcome(format!(
            "{} answers to {} bookings",
            rows.len(),
            bookings.len()
        )));
    }
    bookings
        .iter()
        .zip(rows)
        .map(|(booking, row)| match row.try_get::<_, &str>("outcome")? {
            "created" => created(booking, &row),
            "exists" => Ok(Committed::Exists),
            other => Err(BookError::Outcome(other.to_owned())),
        })
        .collect()
}

/// The most pending reservations the booking's guest may hold, as the functions take it.
fn hold_limit(booking: &NewReservation) -> Option<i32> {
    booking
        .hold_limit
        .map(|holds| i32::try_from(holds).unwrap_or(i32::MAX))
}

/// Runs the booking transaction (`book_stay()`, as migrations/V8__stay_restrictions.sql defines
/// it): one statement, one round trip, whatever the number of nights.
pub async fn book(
    db: &impl GenericClient,
    booking: &NewReservation,
) -> Result<Committed, BookError> {
    let stay = &booking.stay;
    let rooms = i32::try_from(stay.rooms)
        .map_err(|_| BookError::Outcome(format!("{} rooms", stay.rooms)))?;
    let hold_limit = hold_limit(booking);
    let statement = db.prepare_cached(BOOK).await?;
    let result = db
        .query_one(
            &statement,
            &[
                &stay.reservation_id.as_uuid(),
                &stay.hotel_id,
                &stay.room_type_id,
                &booking.guest_id,
                &stay.check_in,
                &stay.check_out,
                &rooms,
                &booking.created_at,
                &booking.hold_expires_at,
                &hold_limit,
                &booking.override_restrictions,
            ],
        )
        .await;
    let row = match result {
        Ok(row) => row,
        Err(error) if error.code() == Some(&SqlState::from_code(SOLD_OUT_AT_GUARD)) => {
            return Ok(Committed::SoldOut)
        }
        Err(error) if error.code() == Some(&SqlState::from_code(RESTRICTED_AT_GUARD)) => {
            let message = error
                .as_db_error()
                .map(|db| db.message())
                .unwrap_or_default();
            let named = message
                .split_once('|')
                .and_then(|(restriction, night)| Some((restriction, night.parse().ok()?)));
            return restricted(named).ok_or_else(|| BookError::Outcome(message.to_owned()));
        }
        Err(error) => return Err(error.into()),
    };
    match row.try_get::<_, &str>("outcome")? {
        "created" => created(booking, &row),
        "exists" => Ok(Committed::Exists),
        "sold_out" => Ok(Committed::SoldOut),
        "hold_limit" => Ok(Committed::HoldLimit),
        "restricted" => {
            let restriction: Option<&str> = row.try_get("restriction")?;
            let night: Option<NaiveDate> = row.try_get("restricted_night")?;
            restricted(restriction.zip(night))
                .ok_or_else(|| BookError::Outcome("restricted".into()))
        }
        other => Err(BookError::Outcome(other.to_owned())),
    }
}

/// The reservation `booking` became, priced as the booking functions answered.
fn created(booking: &NewReservation, row: &Row) -> Result<Committed, BookError> {
    Ok(Committed::Created(Reservation::created(
        booking,
        row.try_get("total_cents")?,
        row.try_get("currency")?,
    )))
}

/// A restriction `book_stay()` named, with its night.
fn restricted(named: Option<(&str, NaiveDate)>) -> Option<Committed> {
    let (restriction, night) = named?;
    Some(Committed::Restricted {
        restriction: Restriction::from_name(restriction)?,
        night,
    })
}

/// Why the booking statement gave no outcome.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// `book_stay()` answered an outcome this code does not know: the function and the
    /// code disagree (a migration ahead of the binary, or the reverse). Reading it as any
    /// known outcome could answer a guest wrongly, so it is an error.
    #[error("book_stay() answered the unknown outcome {0:?}")]
    Outcome(String),
}

impl BookError {
    /// Whether Postgres rolled the booking back as a deadlock or serialization victim, so
    /// running it again is safe.
    pub fn is_deadlock(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            Self::Postgres(error) => {
                error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
                    || error.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            }
            Self::Outcome(_) => false,
        }
    }
}

/// Every column of `reservations` (and, `archived_at` aside, of `reservations_archive`).
pub const COLUMNS: &str = "reservation_id, hotel_id, room_type_id, guest_id, check_in, \
                           check_out, rooms, status, total_cents, currency, hold_expires_at, \
                           created_at, updated_at, payment_status, payment_id, paid_cents, \
                           refunded_cents";

pub async fn get(
    db: &impl GenericClient,
    reservation_id: ReservationId,
) -> Result<Option<Reservation>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM reservations WHERE reservation_id = $1");
    let row = db
        .query_opt(
            &db.prepare_cached(&sql).await?,
            &[&reservation_id.as_uuid()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Ends a live reservation and gives its nights back, in one statement. `None` when its
/// state does not allow it (or it does not exist).
pub async fn end_stay(
    db: &impl GenericClient,
    reservation_id: ReservationId,
    ending: Ending,
    now: DateTime<Utc>,
) -> Result<Option<Reservation>, tokio_postgres::Error> {
    let started = Instant::now();
    let sql = format!("SELECT {COLUMNS} FROM end_stay($1, $2, $3)");
    let row = db
        .query_opt(
            &db.prepare_cached(&sql).await?,
            &[&reservation_id.as_uuid(), &ending.status().as_str(), &now],
        )
        .await?;
    telemetry::observe_transaction("end_stay", started);
    row.as_ref().map(from_row).transpose()
}

/// Up to `batch` pending reservations whose hold ran out at or before `now`, the oldest
/// first: what the sweeper registers in Redis before it expires them.
pub async fn due_holds(
    db: &impl GenericClient,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<Reservation>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reservations WHERE status = 'pending' AND hold_expires_at <= $1 \
         ORDER BY hold_expires_at LIMIT $2"
    );
    let rows = db
        .query(&db.prepare_cached(&sql).await?, &[&now, &batch])
        .await?;
    rows.iter().map(from_row).collect()
}

/// Expires those of `holds` that are still pending and due at `now`, giving their nights
/// back (`expire_holds()`, migrations/V6__expire_chosen_holds.sql), and returns them.
pub async fn expire_holds(
    db: &impl GenericClient,
    now: DateTime<Utc>,
    holds: &[Uuid],
) -> Result<Vec<Reservation>, tokio_postgres::Error> {
    let started = Instant::now();
    let sql = format!("SELECT {COLUMNS} FROM expire_holds($1, $2)");
    let rows = db
        .query(&db.prepare_cached(&sql).await?, &[&now, &holds])
        .await?;
    telemetry::observe_transaction("expire_holds", started);
    rows.iter().map(from_row).collect()
}

/// Confirms a pending reservation whose hold has not expired at `now`.
pub async fn confirm(
    db: &impl GenericClient,
    reservation_id: ReservationId,
    now: DateTime<Utc>,
) -> Result<Option<Reservation>, tokio_postgres::Error> {
    let started = Instant::now();
    let sql = format!(
        "UPDATE reservations SET status = 'confirmed', updated_at = $2 \
         WHERE reservation_id = $1 AND status = 'pending' AND hold_expires_at > $2 \
         RETURNING {COLUMNS}"
    );
    let row = db
        .query_opt(
            &db.prepare_cached(&sql).await?,
            &[&reservation_id.as_uuid(), &now],
        )
        .await?;
    telemetry::observe_transaction("confirm", started);
    row.as_ref().map(from_row).transpose()
}

/// A reservation's place in its lists: newest first, ties broken by id.
pub fn list_key(reservation: &Reservation) -> CreatedKey {
    CreatedKey {
        created_at: reservation.created_at,
        id: reservation.id().as_uuid(),
    }
}

/// Whose reservations a list shows.
#[derive(Debug, Clone)]
pub enum Owner<'a> {
    Guest(&'a str),
    Hotel(i64),
    Everyone,
}

/// One page of reservations, newest first.
pub async fn list(
    db: &impl GenericClient,
    owner: Owner<'_>,
    page: &PageRequest<CreatedKey>,
) -> Result<Vec<Reservation>, tokio_postgres::Error> {
    let (after_time, after_id) = page.after_pair();
    let limit = page.limit + 1;
    // One statement per owner kind, so each is planned against its own index.
    let (filter, owner_param): (&str, Option<&(dyn tokio_postgres::types::ToSql + Sync)>) =
        match &owner {
            Owner::Guest(guest) => ("guest_id = $4", Some(guest)),
            Owner::Hotel(hotel) => ("hotel_id = $4", Some(hotel)),
            Owner::Everyone => ("TRUE", None),
        };
    let sql = format!(
        "SELECT {COLUMNS} FROM reservations \
         WHERE {filter} AND ($1::timestamptz IS NULL OR (created_at, reservation_id) < ($1, $2)) \
         ORDER BY created_at DESC, reservation_id DESC LIMIT $3"
    );
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&after_time, &after_id, &limit];
    params.extend(owner_param);
    let rows = db.query(&db.prepare_cached(&sql).await?, &params).await?;
    rows.iter().map(from_row).collect()
}

/// Which of `ids` are stored (committed) reservations, as text: what the reconciler asks
/// of its snapshot about the deductions it found in flight.
pub async fn stored_among(
    db: &impl GenericClient,
    ids: &[Uuid],
) -> Result<std::collections::HashSet<String>, tokio_postgres::Error> {
    let sql = "SELECT reservation_id::text FROM reservations WHERE reservation_id = ANY($1)";
    let rows = db.query(&db.prepare_cached(sql).await?, &[&ids]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
