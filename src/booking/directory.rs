//! What the booking path needs to know about a hotel before it touches inventory: that it
//! and the room type exist, and its timezone (for "today"). Kept in memory for a few
//! seconds, so the sold-out fast path never waits on Postgres.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::HotelTimezone;
use crate::http::error::ApiError;

/// How long an entry is trusted. A room type deleted within this window may still pass
/// this check; Postgres, which no longer has its nights, then refuses the booking.
const FRESH_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct HotelEntry {
    pub timezone: HotelTimezone,
    room_types: Vec<i64>,
    fetched: Instant,
}

pub struct HotelDirectory {
    db: deadpool_postgres::Pool,
    entries: Mutex<HashMap<i64, HotelEntry>>,
}

impl HotelDirectory {
    pub fn new(db: deadpool_postgres::Pool) -> Self {
        Self {
            db,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The hotel, if it exists and has the room type; 404 otherwise.
    pub async fn lookup(&self, hotel_id: i64, room_type_id: i64) -> Result<HotelEntry, ApiError> {
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hotel_id)
            .filter(|entry| entry.fetched.elapsed() < FRESH_FOR)
            .cloned();
        let entry = match cached {
            // A room type created since the entry was read is looked up afresh.
            Some(entry) if entry.room_types.contains(&room_type_id) => entry,
            _ => self.fetch(hotel_id).await?,
        };
        if entry.room_types.contains(&room_type_id) {
            Ok(entry)
        } else {
            Err(ApiError::NotFound("room type"))
        }
    }

    async fn fetch(&self, hotel_id: i64) -> Result<HotelEntry, ApiError> {
        let db = self.db.get().await?;
        let sql = "SELECT h.timezone, \
                   coalesce(array_agg(rt.room_type_id) FILTER (WHERE rt.room_type_id IS NOT NULL), '{}') \
                   FROM hotels h LEFT JOIN room_types rt ON rt.hotel_id = h.hotel_id \
                   WHERE h.hotel_id = $1 GROUP BY h.timezone";
        let row = db
            .query_opt(&db.prepare_cached(sql).await?, &[&hotel_id])
            .await?
            .ok_or(ApiError::NotFound("hotel"))?;
        let entry = HotelEntry {
            timezone: HotelTimezone::parse(row.get(0))?,
            room_types: row.get(1),
            fetched: Instant::now(),
        };
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(hotel_id, entry.clone());
        Ok(entry)
    }
}
