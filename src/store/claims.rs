//! The reservation-id directory (`reservation_claims`), kept only when PostgreSQL is split
//! into several shards: which hotel a reservation id was claimed for. Each id's row lives
//! on the id's home shard (`Shards::home_of`), so the directory grows and scales with the
//! shards, and no single database is written on every booking.
//!
//! A booking claims its id on the home shard, in a transaction of its own, before its
//! commit on the hotel's shard: a reservation is never stored without its claim. The
//! failure cases, and why each is safe, are in SCALING.md.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// What the home shard said to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The id was free and is now this hotel's, claimed at the returned time (the token
    /// that lets this request, and no other, take it back on refusal).
    Made(chrono::DateTime<chrono::Utc>),
    /// The id was already claimed for the same hotel: that hotel's shard decides (a replay,
    /// a different body, a request in progress), as it would without shards.
    Joined,
    /// The id is claimed for another hotel, `age` ago.
    Elsewhere { hotel_id: i64, age: Duration },
}

/// Claims `reservation_id` for `hotel_id`, or joins the claim already made for it.
pub async fn claim(
    db: &impl GenericClient,
    reservation_id: Uuid,
    hotel_id: i64,
) -> Result<Claim, tokio_postgres::Error> {
    // One statement: a fresh claim, or, for the same hotel, the mark that the claim is now
    // relied on by a second request.
    let sql = "INSERT INTO reservation_claims AS c (reservation_id, hotel_id, claimed_at) \
               VALUES ($1, $2, clock_timestamp()) \
               ON CONFLICT (reservation_id) DO UPDATE SET shared = true \
               WHERE c.hotel_id = EXCLUDED.hotel_id \
               RETURNING (xmax = 0) AS made, claimed_at";
    if let Some(row) = db
        .query_opt(
            &db.prepare_cached(sql).await?,
            &[&reservation_id, &hotel_id],
        )
        .await?
    {
        return Ok(if row.get("made") {
            Claim::Made(row.get("claimed_at"))
        } else {
            Claim::Joined
        });
    }
    let sql = "SELECT hotel_id, extract(epoch FROM clock_timestamp() - claimed_at)::float8 AS age \
               FROM reservation_claims WHERE reservation_id = $1";
    match db
        .query_opt(&db.prepare_cached(sql).await?, &[&reservation_id])
        .await?
    {
        Some(row) => Ok(Claim::Elsewhere {
            hotel_id: row.get("hotel_id"),
            age: Duration::from_secs_f64(row.get::<_, f64>("age").max(0.0)),
        }),
        // Taken back between the two statements: claim again.
        None => Box::pin(claim(db, reservation_id, hotel_id)).await,
    }
}

/// Takes back a claim this request made and no other relies on, after its booking was
/// refused with nothing stored.
pub async fn withdraw(
    db: &impl GenericClient,
    reservation_id: Uuid,
    hotel_id: i64,
    claimed_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), tokio_postgres::Error> {
    let sql = "DELETE FROM reservation_claims \
               WHERE reservation_id = $1 AND hotel_id = $2 AND claimed_at = $3 AND NOT shared";
    db.execute(
        &db.prepare_cached(sql).await?,
        &[&reservation_id, &hotel_id, &claimed_at],
    )
    .await?;
    Ok(())
}

/// The hotel `reservation_id` is claimed for, if any: where to look for the reservation.
pub async fn hotel_of(
    db: &impl GenericClient,
    reservation_id: Uuid,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let sql = "SELECT hotel_id FROM reservation_claims WHERE reservation_id = $1";
    let row = db
        .query_opt(&db.prepare_cached(sql).await?, &[&reservation_id])
        .await?;
    Ok(row.map(|row| row.get(0)))
}
