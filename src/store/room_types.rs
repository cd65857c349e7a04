//! Room types: what a guest books, and what inventory is counted by.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::page::PageRequest;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomType {
    pub id: i64,
    pub hotel_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub max_occupancy: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The values a room type is created or replaced with, already validated.
#[derive(Debug, Clone)]
pub struct RoomTypeFields {
    pub name: String,
    pub description: Option<String>,
    pub max_occupancy: i32,
}

const COLUMNS: &str =
    "room_type_id, hotel_id, name, description, max_occupancy, created_at, updated_at";

fn from_row(row: &Row) -> RoomType {
    RoomType {
        id: row.get("room_type_id"),
        hotel_id: row.get("hotel_id"),
        name: row.get("name"),
        description: row.get("description"),
        max_occupancy: row.get("max_occupancy"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

pub async fn insert(
    db: &impl GenericClient,
    hotel_id: i64,
    fields: &RoomTypeFields,
    now: DateTime<Utc>,
) -> Result<RoomType, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO room_types (hotel_id, name, description, max_occupancy, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &db.prepare_cached(&sql).await?,
            &[
                &hotel_id,
                &fields.name,
                &fields.description,
                &fields.max_occupancy,
                &now,
            ],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
) -> Result<Option<RoomType>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM room_types WHERE hotel_id = $1 AND room_type_id = $2");
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&hotel_id, &room_type_id])
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn list(
    db: &impl GenericClient,
    hotel_id: i64,
    page: &PageRequest<i64>,
) -> Result<Vec<RoomType>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM room_types WHERE hotel_id = $1 AND room_type_id > $2 \
         ORDER BY room_type_id LIMIT $3"
    );
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[&hotel_id, &page.after.unwrap_or(0), &(page.limit + 1)],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn update(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
    fields: &RoomTypeFields,
    now: DateTime<Utc>,
) -> Result<Option<RoomType>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE room_types SET name = $3, description = $4, max_occupancy = $5, updated_at = $6 \
         WHERE hotel_id = $1 AND room_type_id = $2 RETURNING {COLUMNS}"
    );
    let row = db
        .query_opt(
            &db.prepare_cached(&sql).await?,
            &[
                &hotel_id,
                &room_type_id,
                &fields.name,
                &fields.description,
                &fields.max_occupancy,
                &now,
            ],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Locks the room type for the rest of the transaction (see `hotels::get_for_update`).
pub async fn lock(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let sql = "SELECT 1 FROM room_types WHERE hotel_id = $1 AND room_type_id = $2 FOR UPDATE";
    let row = db
        .query_opt(&db.prepare_cached(sql).await?, &[&hotel_id, &room_type_id])
        .await?;
    Ok(row.is_some())
}

pub async fn delete(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let sql = "DELETE FROM room_types WHERE hotel_id = $1 AND room_type_id = $2";
    Ok(db
        .execute(&db.prepare_cached(sql).await?, &[&hotel_id, &room_type_id])
        .await?
        == 1)
}
