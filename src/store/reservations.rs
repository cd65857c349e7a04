//! Reservations in Postgres: the booking transaction, lifecycle changes and reads.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::pagination::{CursorKey, PageRequest};
use crate::telemetry;

/// A reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Reservation {
    pub reservation_id: Uuid,
    pub hotel_id: i64,
    pub room_type_id: i64,
    pub guest_id: String,
    #[schema(value_type = String, format = Date)]
    pub check_in: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub check_out: NaiveDate,
    pub rooms: i32,
    /// `pending`, `confirmed`, `canceled` or `expired`.
    pub status: String,
    pub total_cents: i64,
    pub currency: String,
    /// Until when a pending reservation holds its rooms.
    pub hold_expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a booking asks Postgres to commit.
#[derive(Debug, Clone)]
pub struct NewStay {
    pub reservation_id: Uuid,
    pub hotel_id: i64,
    pub room_type_id: i64,
    pub guest_id: String,
    pub check_in: NaiveDate,
    pub check_out: NaiveDate,
    pub rooms: i32,
    pub now: DateTime<Utc>,
    pub hold_expires_at: DateTime<Utc>,
}

/// How the booking transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    Created(Reservation),
    /// A reservation with this id is already stored.
    Exists,
    /// A night lacks the rooms (or any inventory); nothing was written.
    SoldOut,
}

/// SQLSTATE raised by `book_stay` when a night filled up under its row lock.
const SOLD_OUT_AT_GUARD: &str = "IK409";

impl Reservation {
    /// A reservation from a row with every column of the table.
    pub fn from_row(row: &Row) -> Self {
        Self {
            reservation_id: row.get("reservation_id"),
            hotel_id: row.get("hotel_id"),
            room_type_id: row.get("room_type_id"),
            guest_id: row.get("guest_id"),
            check_in: row.get("check_in"),
            check_out: row.get("check_out"),
            rooms: row.get("rooms"),
            status: row.get("status"),
            total_cents: row.get("total_cents"),
            currency: row.get("currency"),
            hold_expires_at: row.get("hold_expires_at"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

const BOOK: &str =
    "SELECT outcome, total_cents, currency FROM book_stay($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Prepares the booking statement on a connection ahead of time. Preparing is a round trip
/// and, outside a transaction block, a transaction of its own in Postgres' statistics;
/// done at start-up, the first rush on a fresh connection pays neither.
pub async fn prepare(db: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    db.prepare_cached(BOOK).await.map(drop)
}

/// Runs the booking transaction (`book_stay`, see migrations/V2__booking.sql): one
/// statement, one round trip, whatever the number of nights.
pub async fn book(
    db: &impl GenericClient,
    stay: &NewStay,
) -> Result<Committed, tokio_postgres::Error> {
    let statement = db.prepare_cached(BOOK).await?;
    let result = db
        .query_one(
            &statement,
            &[
                &stay.reservation_id,
                &stay.hotel_id,
                &stay.room_type_id,
                &stay.guest_id,
                &stay.check_in,
                &stay.check_out,
                &stay.rooms,
                &stay.now,
                &stay.hold_expires_at,
            ],
        )
        .await;
    let row = match result {
        Ok(row) => row,
        Err(error) if error.code() == Some(&SqlState::from_code(SOLD_OUT_AT_GUARD)) => {
            return Ok(Committed::SoldOut)
        }
        Err(error) => return Err(error),
    };
    Ok(match row.get::<_, &str>("outcome") {
        "created" => Committed::Created(Reservation {
            reservation_id: stay.reservation_id,
            hotel_id: stay.hotel_id,
            room_type_id: stay.room_type_id,
            guest_id: stay.guest_id.clone(),
            check_in: stay.check_in,
            check_out: stay.check_out,
            rooms: stay.rooms,
            status: "pending".to_owned(),
            total_cents: row.get("total_cents"),
            currency: row.get("currency"),
            hold_expires_at: stay.hold_expires_at,
            created_at: stay.now,
            updated_at: stay.now,
        }),
        "exists" => Committed::Exists,
        _ => Committed::SoldOut,
    })
}

const COLUMNS: &str = "reservation_id, hotel_id, room_type_id, guest_id, check_in, check_out, \
                       rooms, status, total_cents, currency, hold_expires_at, created_at, updated_at";

pub async fn get(
    db: &impl GenericClient,
    reservation_id: Uuid,
) -> Result<Option<Reservation>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM reservations WHERE reservation_id = $1");
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&reservation_id])
        .await?;
    Ok(row.as_ref().map(Reservation::from_row))
}

/// Ends a live reservation as `canceled` or `expired` and gives its nights back, in one
/// statement. `None` when its state does not allow it (or it does not exist).
pub async fn end_stay(
    db: &impl GenericClient,
    reservation_id: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> Result<Option<Reservation>, tokio_postgres::Error> {
    let started = Instant::now();
    let sql = format!("SELECT {COLUMNS} FROM end_stay($1, $2, $3)");
    let row = db
        .query_opt(
            &db.prepare_cached(&sql).await?,
            &[&reservation_id, &status, &now],
        )
        .await?;
    telemetry::observe_transaction("end_stay", started);
    Ok(row.as_ref().map(Reservation::from_row))
}

/// Confirms a pending reservation whose hold has not expired at `now`.
pub async fn confirm(
    db: &impl GenericClient,
    reservation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Reservation>, tokio_postgres::Error> {
    let started = Instant::now();
    let sql = format!(
        "UPDATE reservations SET status = 'confirmed', updated_at = $2 \
         WHERE reservation_id = $1 AND status = 'pending' AND hold_expires_at > $2 \
         RETURNING {COLUMNS}"
    );
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&reservation_id, &now])
        .await?;
    telemetry::observe_transaction("confirm", started);
    Ok(row.as_ref().map(Reservation::from_row))
}

/// The key reservation lists are ordered by: newest first, ties broken by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKey {
    pub created_at: DateTime<Utc>,
    pub reservation_id: Uuid,
}

impl CursorKey for ListKey {
    fn to_cursor_text(&self) -> String {
        format!(
            "{}|{}",
            self.created_at.timestamp_micros(),
            self.reservation_id
        )
    }

    fn from_cursor_text(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('|')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            reservation_id: id.parse().ok()?,
        })
    }
}

impl Reservation {
    pub fn list_key(&self) -> ListKey {
        ListKey {
            created_at: self.created_at,
            reservation_id: self.reservation_id,
        }
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
    page: &PageRequest<ListKey>,
) -> Result<Vec<Reservation>, tokio_postgres::Error> {
    let (after_time, after_id) = match &page.after {
        Some(key) => (Some(key.created_at), Some(key.reservation_id)),
        None => (None, None),
    };
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
    Ok(rows.iter().map(Reservation::from_row).collect())
}
