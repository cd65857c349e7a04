//! Per-night room-type inventory in Postgres.

use std::collections::HashMap;

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::domain::{Night, NightRange, NightRestrictions, OverbookingRatio};

/// The columns of a night (`i`) with its restrictions (`r`) and the next date's (`n`), as
/// [`from_row`] reads them, and the joins that bring the restrictions in.
const NIGHT: &str = "i.date, i.total_inventory, i.capacity, i.total_reserved, i.rate_cents, \
                     r.stop_sell, r.closed_to_arrival, r.min_stay, r.max_stay, \
                     n.closed_to_departure AS departure_closed_after";
const WITH_RESTRICTIONS: &str = "LEFT JOIN room_type_restrictions r \
        ON r.hotel_id = i.hotel_id AND r.room_type_id = i.room_type_id AND r.date = i.date \
    LEFT JOIN room_type_restrictions n \
        ON n.hotel_id = i.hotel_id AND n.room_type_id = i.room_type_id AND n.date = i.date + 1";

fn from_row(row: &Row) -> Night {
    let flag = |column: &str| row.get::<_, Option<bool>>(column).unwrap_or(false);
    Night {
        date: row.get("date"),
        total_inventory: row.get("total_inventory"),
        capacity: row.get("capacity"),
        total_reserved: row.get("total_reserved"),
        rate_cents: row.get("rate_cents"),
        restrictions: NightRestrictions {
            stop_sell: flag("stop_sell"),
            closed_to_arrival: flag("closed_to_arrival"),
            min_stay: row.get("min_stay"),
            max_stay: row.get("max_stay"),
            departure_closed_after: flag("departure_closed_after"),
        },
    }
}

/// Sets the total (and, when given, the rate) of every night in `nights`, creating the
/// nights that do not exist yet, in one statement.
///
/// A night without a rate keeps its old one; a new night without a rate fails the NOT NULL
/// on `rate_cents` (answered 422). A total whose capacity falls below the rooms already
/// reserved fails `inventory_capacity_holds` (answered 409). Either failure leaves every
/// night as it was.
pub async fn put_nights(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
    nights: NightRange,
    total_inventory: i32,
    rate_cents: Option<i64>,
    ratio: OverbookingRatio,
) -> Result<Vec<Night>, tokio_postgres::Error> {
    let sql = format!(
        "WITH written AS (INSERT INTO room_type_inventory \
                   (hotel_id, room_type_id, date, total_inventory, capacity, rate_cents) \
               SELECT $1, $2, night, $5, $6, COALESCE($7, ( \
                   SELECT rate_cents FROM room_type_inventory i \
                   WHERE i.hotel_id = $1 AND i.room_type_id = $2 AND i.date = night)) \
               FROM generate_series($3::date, $4::date - 1, interval '1 day') AS g(ts), \
                    LATERAL (SELECT ts::date AS night) AS n \
               ON CONFLICT (hotel_id, room_type_id, date) DO UPDATE \
               SET total_inventory = EXCLUDED.total_inventory, \
                   capacity = EXCLUDED.capacity, \
                   rate_cents = EXCLUDED.rate_cents \
               RETURNING *) \
         SELECT {NIGHT} FROM written i {WITH_RESTRICTIONS}"
    );
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[
                &hotel_id,
                &room_type_id,
                &nights.from(),
                &nights.to(),
                &total_inventory,
                &ratio.capacity(total_inventory),
                &rate_cents,
            ],
        )
        .await?;
    let mut nights: Vec<Night> = rows.iter().map(from_row).collect();
    nights.sort_by_key(|night| night.date);
    Ok(nights)
}

/// The stored nights of a room type within `[from, to)`, in date order.
pub async fn get_nights(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Night>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {NIGHT} FROM room_type_inventory i {WITH_RESTRICTIONS} \
         WHERE i.hotel_id = $1 AND i.room_type_id = $2 AND i.date >= $3 AND i.date < $4 \
         ORDER BY i.date"
    );
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[&hotel_id, &room_type_id, &from, &to],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// The stored nights of every room type of a hotel within `[from, to)`, by room type, in
/// date order.
pub async fn nights_of_hotel(
    db: &impl GenericClient,
    hotel_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<i64, Vec<Night>>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT i.room_type_id, {NIGHT} FROM room_type_inventory i {WITH_RESTRICTIONS} \
         WHERE i.hotel_id = $1 AND i.date >= $2 AND i.date < $3 \
         ORDER BY i.room_type_id, i.date"
    );
    let rows = db
        .query(&db.prepare_cached(&sql).await?, &[&hotel_id, &from, &to])
        .await?;
    let mut nights: HashMap<i64, Vec<Night>> = HashMap::new();
    for row in &rows {
        nights
            .entry(row.get("room_type_id"))
            .or_default()
            .push(from_row(row));
    }
    Ok(nights)
}

/// The stored nights of several hotels within `[from, to)`, by (hotel, room type), in
/// date order.
pub async fn nights_of_hotels(
    db: &impl GenericClient,
    hotel_ids: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<(i64, i64), Vec<Night>>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT i.hotel_id, i.room_type_id, {NIGHT} FROM room_type_inventory i {WITH_RESTRICTIONS} \
         WHERE i.hotel_id = ANY($1) AND i.date >= $2 AND i.date < $3 \
         ORDER BY i.hotel_id, i.room_type_id, i.date"
    );
    let rows = db
        .query(&db.prepare_cached(&sql).await?, &[&hotel_ids, &from, &to])
        .await?;
    Ok(by_room_type(&rows))
}

/// The stored nights within the given spans: (hotel, room type, first night, last night,
/// both included), which must not overlap. By (hotel, room type), in date order. Each span
/// is an index range scan of its own, so the cost follows the nights asked for.
pub async fn nights_in_spans(
    db: &impl GenericClient,
    spans: &[(i64, i64, NaiveDate, NaiveDate)],
) -> Result<HashMap<(i64, i64), Vec<Night>>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT i.hotel_id, i.room_type_id, {NIGHT} \
         FROM unnest($1::bigint[], $2::bigint[], $3::date[], $4::date[]) AS s(h, rt, first, last) \
         JOIN room_type_inventory i \
           ON i.hotel_id = s.h AND i.room_type_id = s.rt AND i.date BETWEEN s.first AND s.last \
         {WITH_RESTRICTIONS} \
         ORDER BY i.hotel_id, i.room_type_id, i.date"
    );
    let hotels: Vec<i64> = spans.iter().map(|span| span.0).collect();
    let room_types: Vec<i64> = spans.iter().map(|span| span.1).collect();
    let firsts: Vec<NaiveDate> = spans.iter().map(|span| span.2).collect();
    let lasts: Vec<NaiveDate> = spans.iter().map(|span| span.3).collect();
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[&hotels, &room_types, &firsts, &lasts],
        )
        .await?;
    Ok(by_room_type(&rows))
}

fn by_room_type(rows: &[Row]) -> HashMap<(i64, i64), Vec<Night>> {
    let mut nights: HashMap<(i64, i64), Vec<Night>> = HashMap::new();
    for row in rows {
        nights
            .entry((row.get("hotel_id"), row.get("room_type_id")))
            .or_default()
            .push(from_row(row));
    }
    nights
}

/// Recomputes the capacity of every night from `from` on after the hotel's ratio changed.
/// Past nights keep the capacity they were sold under.
pub async fn apply_ratio(
    db: &impl GenericClient,
    hotel_id: i64,
    ratio: OverbookingRatio,
    from: NaiveDate,
) -> Result<u64, tokio_postgres::Error> {
    let sql = "UPDATE room_type_inventory \
               SET capacity = (total_inventory::bigint * $2 / 10000)::integer \
               WHERE hotel_id = $1 AND date >= $3";
    db.execute(
        &db.prepare_cached(sql).await?,
        &[&hotel_id, &i64::from(ratio.basis_points()), &from],
    )
    .await
}

/// Locks the nights of a hotel (or of one room type) from `from` on, for the rest of the
/// transaction. A delete takes these locks before it checks for live stays, so a booking
/// cannot commit between the check and the delete.
pub async fn lock_nights_from(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: Option<i64>,
    from: NaiveDate,
) -> Result<(), tokio_postgres::Error> {
    let sql = "SELECT 1 FROM room_type_inventory \
               WHERE hotel_id = $1 AND ($2::bigint IS NULL OR room_type_id = $2) AND date >= $3 \
               ORDER BY room_type_id, date FOR UPDATE";
    db.execute(
        &db.prepare_cached(sql).await?,
        &[&hotel_id, &room_type_id, &from],
    )
    .await?;
    Ok(())
}
