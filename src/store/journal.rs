//! The night journal and the reconciler's full round (migration V12): which nights changed
//! since the reconciler last looked, and how far its slow walk over every hotel has got.

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;

/// Nights of one room type that changed: `first` to `last`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangedNights {
    pub hotel_id: i64,
    pub room_type_id: i64,
    pub first: NaiveDate,
    pub last: NaiveDate,
}

/// Takes up to `limit` of the oldest entries recorded at least `settled` ago out of the
/// journal, by Postgres' clock. Entries another pass is taking at the same moment are
/// skipped rather than waited for. The caller owns the entries once this commits: it puts
/// back (with [`record`]) whatever it could not look at.
pub async fn take(
    db: &impl GenericClient,
    limit: i64,
    settled: std::time::Duration,
) -> Result<Vec<ChangedNights>, tokio_postgres::Error> {
    let sql = "DELETE FROM night_journal WHERE entry = ANY(ARRAY( \
                   SELECT entry FROM night_journal \
                   WHERE recorded_at <= clock_timestamp() - make_interval(secs => $2) \
                   ORDER BY entry LIMIT $1 FOR UPDATE SKIP LOCKED)) \
               RETURNING hotel_id, room_type_id, first_night, last_night";
    let rows = db
        .query(
            &db.prepare_cached(sql).await?,
            &[&limit, &settled.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ChangedNights {
            hotel_id: row.get(0),
            room_type_id: row.get(1),
            first: row.get(2),
            last: row.get(3),
        })
        .collect())
}

/// Adds entries to the journal, in one statement.
pub async fn record(
    db: &impl GenericClient,
    changes: &[ChangedNights],
) -> Result<(), tokio_postgres::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let column = |field: fn(&ChangedNights) -> i64| changes.iter().map(field).collect::<Vec<_>>();
    let dates =
        |field: fn(&ChangedNights) -> NaiveDate| changes.iter().map(field).collect::<Vec<_>>();
    let sql = "INSERT INTO night_journal (hotel_id, room_type_id, first_night, last_night) \
               SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::date[], $4::date[])";
    db.execute(
        &db.prepare_cached(sql).await?,
        &[
            &column(|change| change.hotel_id),
            &column(|change| change.room_type_id),
            &dates(|change| change.first),
            &dates(|change| change.last),
        ],
    )
    .await?;
    Ok(())
}

/// Where the full round stands on this database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundPosition {
    /// The first hotel id the round has not passed.
    pub next_hotel_id: i64,
    /// Hotels in all.
    pub hotels: i64,
    /// Hotels the round has passed.
    pub passed: i64,
}

pub async fn round_position(
    db: &impl GenericClient,
) -> Result<RoundPosition, tokio_postgres::Error> {
    let sql = "SELECT r.next_hotel_id, (SELECT count(*) FROM hotels), \
                      (SELECT count(*) FROM hotels h WHERE h.hotel_id < r.next_hotel_id) \
               FROM reconcile_round r";
    let row = db.query_one(&db.prepare_cached(sql).await?, &[]).await?;
    Ok(RoundPosition {
        next_hotel_id: row.get(0),
        hotels: row.get(1),
        passed: row.get(2),
    })
}

/// Moves the round on to `next_hotel_id` (0 starts it over).
pub async fn advance_round(
    db: &impl GenericClient,
    next_hotel_id: i64,
) -> Result<(), tokio_postgres::Error> {
    let sql = "UPDATE reconcile_round SET next_hotel_id = $1";
    db.execute(&db.prepare_cached(sql).await?, &[&next_hotel_id])
        .await?;
    Ok(())
}
