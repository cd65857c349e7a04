//! What the booking and availability paths need to know about a hotel before they touch
//! inventory: that it and its room types exist, their names, and the hotel's timezone (for
//! "today"). Kept in memory for a few seconds, so the sold-out fast path and availability
//! reads never wait on Postgres.
//!
//! This process forgets a hotel as soon as it changes the hotel or its room types; changes
//! made by another process are seen within [`FRESH_FOR`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BookingError;
use crate::domain::HotelTimezone;
use crate::store::hotels;

/// How long an entry is trusted. A room type another process deleted within this window may
/// still pass the booking check; Postgres, which no longer has its nights, then refuses.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// A room type as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTypeName {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct HotelEntry {
    pub timezone: HotelTimezone,
    /// In id order.
    pub room_types: Arc<[RoomTypeName]>,
    fetched: Instant,
}

impl HotelEntry {
    fn has_room_type(&self, room_type_id: i64) -> bool {
        self.room_types
            .iter()
            .any(|room_type| room_type.id == room_type_id)
    }
}

pub struct HotelDirectory {
    db: deadpool_postgres::Pool,
    entries: Mutex<HashMap<i64, HotelEntry>>,
    /// One fetch at a time: when a rush hits a hotel whose entry just expired, the first
    /// request reads it and the rest find it cached, instead of all reading it at once.
    fetching: tokio::sync::Mutex<()>,
}

impl HotelDirectory {
    pub fn new(db: deadpool_postgres::Pool) -> Self {
        Self {
            db,
            entries: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The hotel; 404 if it does not exist.
    pub async fn hotel(&self, hotel_id: i64) -> Result<HotelEntry, BookingError> {
        match self.cached(hotel_id) {
            Some(entry) => Ok(entry),
            None => self.fetch(hotel_id, None).await,
        }
    }

    /// The hotel, if it exists and has the room type; 404 otherwise.
    pub async fn lookup(
        &self,
        hotel_id: i64,
        room_type_id: i64,
    ) -> Result<HotelEntry, BookingError> {
        let entry = match self.cached(hotel_id) {
            // A room type created since the entry was read is looked up afresh.
            Some(entry) if entry.has_room_type(room_type_id) => entry,
            _ => self.fetch(hotel_id, Some(room_type_id)).await?,
        };
        if entry.has_room_type(room_type_id) {
            Ok(entry)
        } else {
            Err(BookingError::NotFound("room type"))
        }
    }

    /// Drops what is known of a hotel, after this process changed it.
    pub fn forget(&self, hotel_id: i64) {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&hotel_id);
    }

    fn cached(&self, hotel_id: i64) -> Option<HotelEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hotel_id)
            .filter(|entry| entry.fetched.elapsed() < FRESH_FOR)
            .cloned()
    }

    /// Reads the hotel from Postgres, unless another request did while this one waited
    /// its turn (and, when a room type is wanted, found it).
    async fn fetch(&self, hotel_id: i64, wanted: Option<i64>) -> Result<HotelEntry, BookingError> {
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(entry) = self.cached(hotel_id) {
            if wanted.is_none_or(|room_type_id| entry.has_room_type(room_type_id)) {
                return Ok(entry);
            }
        }
        let db = self.db.get().await?;
        let (timezone, room_types) = hotels::room_types_of(&db, hotel_id)
            .await?
            .ok_or(BookingError::NotFound("hotel"))?;
        let entry = HotelEntry {
            timezone,
            room_types: room_types
                .into_iter()
                .map(|(id, name)| RoomTypeName { id, name })
                .collect(),
            fetched: Instant::now(),
        };
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(hotel_id, entry.clone());
        Ok(entry)
    }
}
