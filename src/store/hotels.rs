//! Hotels.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::page::PageRequest;
use super::Column;
use crate::domain::{CurrencyCode, HotelTimezone, OverbookingRatio};

/// A hotel as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Hotel {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    /// IANA timezone; "today" for booking rules is the hotel's today.
    #[schema(value_type = String)]
    pub timezone: HotelTimezone,
    /// ISO 4217 code of every price of the hotel.
    #[schema(value_type = String)]
    pub currency: CurrencyCode,
    /// A night may hold floor(total_inventory * overbooking_ratio) reservations.
    #[schema(value_type = f64)]
    pub overbooking_ratio: OverbookingRatio,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The values a hotel is created or replaced with, already validated.
#[derive(Debug, Clone)]
pub struct HotelFields {
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub timezone: HotelTimezone,
    pub currency: CurrencyCode,
    pub overbooking_ratio: OverbookingRatio,
}

const COLUMNS: &str = "hotel_id, name, address, city, country, timezone, currency, \
                       overbooking_ratio_bp, created_at, updated_at";

/// A hotel row. The table's CHECKs hold the ratio's range, the migrations' code the
/// timezone and currency, so a row that does not parse is a corrupt database: an error, not
/// a default.
fn from_row(row: &Row) -> Result<Hotel, tokio_postgres::Error> {
    Ok(Hotel {
        id: row.get("hotel_id"),
        name: row.get("name"),
        address: row.get("address"),
        city: row.get("city"),
        country: row.get("country"),
        timezone: row.try_get::<_, Column<_>>("timezone")?.0,
        currency: row.try_get::<_, Column<_>>("currency")?.0,
        overbooking_ratio: row.try_get::<_, Column<_>>("overbooking_ratio_bp")?.0,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// A new hotel id, from the catalog's sequence: ids name one hotel whatever shard holds it.
pub async fn next_id(catalog: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let sql = "SELECT nextval('hotel_ids')";
    Ok(catalog
        .query_one(&catalog.prepare_cached(sql).await?, &[])
        .await?
        .get(0))
}

/// Stores a hotel under an id from [`next_id`].
pub async fn insert(
    db: &impl GenericClient,
    hotel_id: i64,
    fields: &HotelFields,
    now: DateTime<Utc>,
) -> Result<Hotel, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO hotels (hotel_id, name, address, city, country, timezone, currency, \
         overbooking_ratio_bp, created_at, updated_at) OVERRIDING SYSTEM VALUE \
         VALUES ($9, $1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &db.prepare_cached(&sql).await?,
            &[
                &fields.name,
                &fields.address,
                &fields.city,
                &fields.country,
                &fields.timezone.name(),
                &fields.currency.as_str(),
                &fields.overbooking_ratio.basis_points(),
                &now,
                &hotel_id,
            ],
        )
        .await?;
    from_row(&row)
}

pub async fn get(
    db: &impl GenericClient,
    hotel_id: i64,
) -> Result<Option<Hotel>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM hotels WHERE hotel_id = $1");
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&hotel_id])
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Locks the hotel row for the rest of the transaction, so a concurrent write to the same
/// hotel (a ratio change, a delete) waits instead of interleaving.
pub async fn get_for_update(
    db: &impl GenericClient,
    hotel_id: i64,
) -> Result<Option<Hotel>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM hotels WHERE hotel_id = $1 FOR UPDATE");
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&hotel_id])
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Reads the hotel and keeps it from changing until the transaction ends, while letting
/// other readers that also only need it stable go ahead.
pub async fn get_for_share(
    db: &impl GenericClient,
    hotel_id: i64,
) -> Result<Option<Hotel>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM hotels WHERE hotel_id = $1 FOR SHARE");
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&hotel_id])
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// One page of hotels by id, optionally in one city (matched without regard to case).
pub async fn list(
    db: &impl GenericClient,
    city: Option<&str>,
    page: &PageRequest<i64>,
) -> Result<Vec<Hotel>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM hotels \
         WHERE ($1::text IS NULL OR lower(city) = lower($1)) AND hotel_id > $2 \
         ORDER BY hotel_id LIMIT $3"
    );
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[&city, &page.after.unwrap_or(0), &(page.limit + 1)],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Replaces a hotel's fields. The caller holds the row lock (see [`get_for_update`]).
pub async fn update(
    db: &impl GenericClient,
    hotel_id: i64,
    fields: &HotelFields,
    now: DateTime<Utc>,
) -> Result<Hotel, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE hotels SET name = $2, address = $3, city = $4, country = $5, timezone = $6, \
         currency = $7, overbooking_ratio_bp = $8, updated_at = $9 \
         WHERE hotel_id = $1 RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &db.prepare_cached(&sql).await?,
            &[
                &hotel_id,
                &fields.name,
                &fields.address,
                &fields.city,
                &fields.country,
                &fields.timezone.name(),
                &fields.currency.as_str(),
                &fields.overbooking_ratio.basis_points(),
                &now,
            ],
        )
        .await?;
    from_row(&row)
}

/// Whether pending or confirmed stays of the hotel (or of one of its room types) end after
/// `today`: those guests are still coming, so their hotel or room type must not vanish.
pub async fn has_live_stays(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: Option<i64>,
    today: NaiveDate,
) -> Result<bool, tokio_postgres::Error> {
    let sql = "SELECT EXISTS (SELECT 1 FROM reservations \
               WHERE hotel_id = $1 AND ($2::bigint IS NULL OR room_type_id = $2) \
               AND status IN ('pending', 'confirmed') AND check_out > $3)";
    let row = db
        .query_one(
            &db.prepare_cached(sql).await?,
            &[&hotel_id, &room_type_id, &today],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn delete(db: &impl GenericClient, hotel_id: i64) -> Result<bool, tokio_postgres::Error> {
    let sql = "DELETE FROM hotels WHERE hotel_id = $1";
    Ok(db
        .execute(&db.prepare_cached(sql).await?, &[&hotel_id])
        .await?
        == 1)
}

/// A hotel's timezone and its room types (id and name, in id order), or `None` when the
/// hotel does not exist: what the booking path must know before it touches inventory.
pub async fn room_types_of(
    db: &impl GenericClient,
    hotel_id: i64,
) -> Result<Option<(HotelTimezone, Vec<(i64, String)>)>, tokio_postgres::Error> {
    let sql = "SELECT h.timezone, rt.room_type_id, rt.name \
               FROM hotels h LEFT JOIN room_types rt ON rt.hotel_id = h.hotel_id \
               WHERE h.hotel_id = $1 ORDER BY rt.room_type_id";
    let rows = db
        .query(&db.prepare_cached(sql).await?, &[&hotel_id])
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let timezone = first.try_get::<_, Column<HotelTimezone>>("timezone")?.0;
    let mut room_types = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(id) = row.try_get::<_, Option<i64>>("room_type_id")? {
            room_types.push((id, row.try_get("name")?));
        }
    }
    Ok(Some((timezone, room_types)))
}

/// Up to `limit` hotel ids from `from` on, in order.
pub async fn ids_from(
    db: &impl GenericClient,
    from: i64,
    limit: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let sql = "SELECT hotel_id FROM hotels WHERE hotel_id >= $1 ORDER BY hotel_id LIMIT $2";
    let rows = db
        .query(&db.prepare_cached(sql).await?, &[&from, &limit])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Every hotel id, in order.
pub async fn all_ids(db: &impl GenericClient) -> Result<Vec<i64>, tokio_postgres::Error> {
    let rows = db
        .query(
            &db.prepare_cached("SELECT hotel_id FROM hotels ORDER BY hotel_id")
                .await?,
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
