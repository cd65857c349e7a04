//! Physical rooms of a hotel.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::page::PageRequest;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Room {
    pub id: i64,
    pub hotel_id: i64,
    pub room_type_id: i64,
    /// The room's number or name on the door, unique within the hotel.
    pub number: String,
    pub floor: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The values a room is created or replaced with, already validated.
#[derive(Debug, Clone)]
pub struct RoomFields {
    pub room_type_id: i64,
    pub number: String,
    pub floor: Option<i32>,
}

const COLUMNS: &str = "room_id, hotel_id, room_type_id, number, floor, created_at, updated_at";

fn from_row(row: &Row) -> Room {
    Room {
        id: row.get("room_id"),
        hotel_id: row.get("hotel_id"),
        room_type_id: row.get("room_type_id"),
        number: row.get("number"),
        floor: row.get("floor"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

pub async fn insert(
    db: &impl GenericClient,
    hotel_id: i64,
    fields: &RoomFields,
    now: DateTime<Utc>,
) -> Result<Room, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO rooms (hotel_id, room_type_id, number, floor, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &db.prepare_cached(&sql).await?,
            &[
                &hotel_id,
                &fields.room_type_id,
                &fields.number,
                &fields.floor,
                &now,
            ],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(
    db: &impl GenericClient,
    hotel_id: i64,
    room_id: i64,
) -> Result<Option<Room>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM rooms WHERE hotel_id = $1 AND room_id = $2");
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&hotel_id, &room_id])
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// One page of a hotel's rooms by id, optionally of one room type.
pub async fn list(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: Option<i64>,
    page: &PageRequest<i64>,
) -> Result<Vec<Room>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM rooms WHERE hotel_id = $1 \
         AND ($2::bigint IS NULL OR room_type_id = $2) AND room_id > $3 \
         ORDER BY room_id LIMIT $4"
    );
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[
                &hotel_id,
                &room_type_id,
                &page.after.unwrap_or(0),
                &(page.limit + 1),
            ],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn update(
    db: &impl GenericClient,
    hotel_id: i64,
    room_id: i64,
    fields: &RoomFields,
    now: DateTime<Utc>,
) -> Result<Option<Room>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE rooms SET room_type_id = $3, number = $4, floor = $5, updated_at = $6 \
         WHERE hotel_id = $1 AND room_id = $2 RETURNING {COLUMNS}"
    );
    let row = db
        .query_opt(
            &db.prepare_cached(&sql).await?,
            &[
                &hotel_id,
                &room_id,
                &fields.room_type_id,
                &fields.number,
                &fields.floor,
                &now,
            ],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn delete(
    db: &impl GenericClient,
    hotel_id: i64,
    room_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let sql = "DELETE FROM rooms WHERE hotel_id = $1 AND room_id = $2";
    Ok(db
        .execute(&db.prepare_cached(sql).await?, &[&hotel_id, &room_id])
        .await?
        == 1)
}
