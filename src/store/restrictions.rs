//! Stay restrictions (migration V8): one row per date where staff set something.

use deadpool_postgres::GenericClient;

use crate::domain::{NightRange, RestrictionChange, RestrictionDay};

/// Applies `change` to every date of `dates`, then answers the dates as they now stand.
///
/// First it locks the inventory rows of those dates and of the night before the first
/// (whose stays check out on it), as `book_stay()` locks a stay's nights before it checks
/// restrictions again: a booking and a change of its restrictions never interleave.
pub async fn put(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
    dates: NightRange,
    change: &RestrictionChange,
) -> Result<Vec<RestrictionDay>, tokio_postgres::Error> {
    let lock = "SELECT 1 FROM room_type_inventory \
                WHERE hotel_id = $1 AND room_type_id = $2 AND date >= $3::date - 1 AND date < $4 \
                ORDER BY date FOR UPDATE";
    let bounds = [
        &hotel_id as _,
        &room_type_id as _,
        &dates.from() as _,
        &dates.to() as _,
    ];
    db.execute(&db.prepare_cached(lock).await?, &bounds).await?;
    // Each field: its new value, and whether it was sent (a field left out keeps its value;
    // one sent as null clears it, which for a flag is false).
    let upsert = "INSERT INTO room_type_restrictions AS r \
                      (hotel_id, room_type_id, date, min_stay, max_stay, closed_to_arrival, \
                       closed_to_departure, stop_sell) \
                  SELECT $1, $2, g::date, $5, $7, coalesce($9, false), coalesce($11, false), \
                         coalesce($13, false) \
                  FROM generate_series($3::date, $4::date - 1, interval '1 day') AS g \
                  ON CONFLICT (hotel_id, room_type_id, date) DO UPDATE SET \
                      min_stay = CASE WHEN $6 THEN EXCLUDED.min_stay ELSE r.min_stay END, \
                      max_stay = CASE WHEN $8 THEN EXCLUDED.max_stay ELSE r.max_stay END, \
                      closed_to_arrival = CASE WHEN $10 THEN EXCLUDED.closed_to_arrival \
                                               ELSE r.closed_to_arrival END, \
                      closed_to_departure = CASE WHEN $12 THEN EXCLUDED.closed_to_departure \
                                                 ELSE r.closed_to_departure END, \
                      stop_sell = CASE WHEN $14 THEN EXCLUDED.stop_sell ELSE r.stop_sell END";
    let (min_stay, max_stay) = (change.min_stay.flatten(), change.max_stay.flatten());
    let flags = [
        change.closed_to_arrival,
        change.closed_to_departure,
        change.stop_sell,
    ]
    .map(|flag| flag.map(|set| set.unwrap_or(false)));
    db.execute(
        &db.prepare_cached(upsert).await?,
        &[
            &hotel_id,
            &room_type_id,
            &dates.from(),
            &dates.to(),
            &min_stay,
            &change.min_stay.is_some(),
            &max_stay,
            &change.max_stay.is_some(),
            &flags[0],
            &flags[0].is_some(),
            &flags[1],
            &flags[1].is_some(),
            &flags[2],
            &flags[2].is_some(),
        ],
    )
    .await?;
    // A date left with nothing set needs no row.
    let prune = "DELETE FROM room_type_restrictions \
                 WHERE hotel_id = $1 AND room_type_id = $2 AND date >= $3 AND date < $4 \
                   AND min_stay IS NULL AND max_stay IS NULL AND NOT closed_to_arrival \
                   AND NOT closed_to_departure AND NOT stop_sell";
    db.execute(&db.prepare_cached(prune).await?, &bounds)
        .await?;
    get(db, hotel_id, room_type_id, dates).await
}

/// Every date of `dates`, with what is set on it.
pub async fn get(
    db: &impl GenericClient,
    hotel_id: i64,
    room_type_id: i64,
    dates: NightRange,
) -> Result<Vec<RestrictionDay>, tokio_postgres::Error> {
    let sql = "SELECT g::date AS date, r.min_stay, r.max_stay, \
                      coalesce(r.closed_to_arrival, false) AS closed_to_arrival, \
                      coalesce(r.closed_to_departure, false) AS closed_to_departure, \
                      coalesce(r.stop_sell, false) AS stop_sell \
               FROM generate_series($3::date, $4::date - 1, interval '1 day') AS g \
               LEFT JOIN room_type_restrictions r \
                 ON r.hotel_id = $1 AND r.room_type_id = $2 AND r.date = g::date \
               ORDER BY 1";
    let rows = db
        .query(
            &db.prepare_cached(sql).await?,
            &[&hotel_id, &room_type_id, &dates.from(), &dates.to()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| RestrictionDay {
            date: row.get("date"),
            min_stay: row.get("min_stay"),
            max_stay: row.get("max_stay"),
            closed_to_arrival: row.get("closed_to_arrival"),
            closed_to_departure: row.get("closed_to_departure"),
            stop_sell: row.get("stop_sell"),
        })
        .collect())
}
