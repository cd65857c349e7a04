//! What the booking and availability paths need to know about a hotel before they touch
//! inventory: that it and its room types exist, their names, and the hotel's timezone (for
//! "today"). Kept in memory for a few seconds, so the sold-out fast path and availability
//! reads never wait on Postgres.
//!
//! This process forgets a hotel as soon as it changes the hotel or its room types; changes
//! made by another process are seen within [`FRESH_FOR`]. Staleness cannot oversell: the
//! directory only says whether to try, and Postgres, which holds the nights, decides. A
//! hotel created by another process may answer 404 for up to [`FRESH_FOR`] if its id was
//! asked for (and found missing) just before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BookingError;
use crate::domain::HotelTimezone;
use crate::store::{hotels, Shards};

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
}

impl HotelEntry {
    fn has_room_type(&self, room_type_id: i64) -> bool {
        self.room_types
            .iter()
            .any(|room_type| room_type.id == room_type_id)
    }
}

/// What is known of a hotel id, and since when.
#[derive(Debug, Clone)]
struct Known {
    /// `None`: no such hotel. Remembered too, so a flood of made-up ids costs Postgres one
    /// read per id per [`FRESH_FOR`], not one per request.
    entry: Option<HotelEntry>,
    fetched: Instant,
}

/// Past this many remembered ids, stale ones are dropped before another is added: a flood
/// of made-up ids cannot grow the map without bound.
const SWEEP_ABOVE: usize = 10_000;

pub struct HotelDirectory {
    shards: Shards,
    /// How long one read may wait on Postgres.
    deadline: Duration,
    entries: Mutex<HashMap<i64, Known>>,
    /// One read per hotel at a time: when a rush hits a hotel whose entry just expired, the
    /// first request reads it and the rest find it cached. Other hotels never wait on it,
    /// and no lock is held while waiting for a pool connection.
    loading: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl HotelDirectory {
    pub fn new(shards: Shards, deadline: Duration) -> Self {
        Self {
            shards,
            deadline,
            entries: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
        }
    }

    /// The hotel; 404 if it does not exist.
    pub async fn hotel(&self, hotel_id: i64) -> Result<HotelEntry, BookingError> {
        let known = match self.cached(hotel_id) {
            Some(known) => known,
            None => self.fetch(hotel_id, None).await?,
        };
        known.entry.ok_or(BookingError::NotFound("hotel"))
    }

    /// The hotel, if it exists and has the room type; 404 otherwise.
    pub async fn lookup(
        &self,
        hotel_id: i64,
        room_type_id: i64,
    ) -> Result<HotelEntry, BookingError> {
        let known = match self.cached(hotel_id) {
            // A room type created since the entry was read is looked up afresh.
            Some(known) if known.has(Some(room_type_id)) => known,
            _ => self.fetch(hotel_id, Some(room_type_id)).await?,
        };
        let entry = known.entry.ok_or(BookingError::NotFound("hotel"))?;
        if entry.has_room_type(room_type_id) {
            Ok(entry)
        } else {
            Err(BookingError::NotFound("room type"))
        }
    }

    /// Drops what is known of a hotel, after this process changed (or created) it.
    pub fn forget(&self, hotel_id: i64) {
        lock(&self.entries).remove(&hotel_id);
    }

    fn cached(&self, hotel_id: i64) -> Option<Known> {
        lock(&self.entries)
            .get(&hotel_id)
            .filter(|known| known.fetched.elapsed() < FRESH_FOR)
            .cloned()
    }

    /// Reads the hotel from Postgres, unless another request did while this one waited
    /// its turn (and, when a room type is wanted, found it).
    async fn fetch(&self, hotel_id: i64, wanted: Option<i64>) -> Result<Known, BookingError> {
        let gate = lock(&self.loading).entry(hotel_id).or_default().clone();
        let known = {
            let _turn = gate.lock().await;
            match self.cached(hotel_id) {
                Some(known) if known.has(wanted) => Ok(known),
                _ => self.read(hotel_id).await,
            }
        };
        {
            // The last one through takes the gate away: the map holds only hotels being
            // read. (Two reads of one hotel at once, should this race, are harmless.)
            let mut loading = lock(&self.loading);
            if Arc::strong_count(&gate) <= 2 {
                loading.remove(&hotel_id);
            }
        }
        known
    }

    async fn read(&self, hotel_id: i64) -> Result<Known, BookingError> {
        let found = super::bounded(self.deadline, async {
            let db = self.shards.of_hotel(hotel_id).pool.get().await?;
            Ok(hotels::room_types_of(&db, hotel_id).await?)
        })
        .await?;
        let known = Known {
            entry: found.map(|(timezone, room_types)| HotelEntry {
                timezone,
                room_types: room_types
                    .into_iter()
                    .map(|(id, name)| RoomTypeName { id, name })
                    .collect(),
            }),
            fetched: Instant::now(),
        };
        let mut entries = lock(&self.entries);
        if entries.len() >= SWEEP_ABOVE {
            entries.retain(|_, known| known.fetched.elapsed() < FRESH_FOR);
        }
        entries.insert(hotel_id, known.clone());
        Ok(known)
    }
}

impl Known {
    /// Whether this answers a lookup: the hotel is known not to exist, or exists (with
    /// the wanted room type, if one is wanted).
    fn has(&self, wanted: Option<i64>) -> bool {
        match (&self.entry, wanted) {
            (None, _) | (Some(_), None) => true,
            (Some(entry), Some(room_type_id)) => entry.has_room_type(room_type_id),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
