//! `serve --seed-demo`: a small hotel to try the API on straight away.

use chrono::{DateTime, Days, Utc};

use crate::domain::{CurrencyCode, HotelTimezone, NightRange, OverbookingRatio};
use crate::store::hotels::{self, HotelFields};
use crate::store::room_types::{self, RoomTypeFields};
use crate::store::rooms::{self, RoomFields};
use crate::store::{inventory, Shards};

const DEMO_HOTEL: &str = "The Demo Inn";

/// Creates the demo hotel (two room types, their rooms, and 90 nights of inventory from
/// today) unless a hotel of that name already exists, so restarting with the flag is safe.
pub async fn seed(shards: &Shards, now: DateTime<Utc>) -> anyhow::Result<()> {
    for shard in shards.all() {
        let exists = shard
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM hotels WHERE name = $1 LIMIT 1",
                &[&DEMO_HOTEL],
            )
            .await?
            .is_some();
        if exists {
            tracing::info!("the demo hotel already exists");
            return Ok(());
        }
    }
    let hotel_id = hotels::next_id(&shards.catalog().get().await?).await?;
    let mut client = shards.of_hotel(hotel_id).pool.get().await?;
    let tx = client.transaction().await?;
    let fields = HotelFields {
        name: DEMO_HOTEL.into(),
        address: "1 Harbour Street".into(),
        city: "Lisbon".into(),
        country: "PT".into(),
        timezone: HotelTimezone::parse("Europe/Lisbon")?,
        currency: CurrencyCode::parse("EUR")?,
        overbooking_ratio: OverbookingRatio::DEFAULT,
    };
    let hotel = hotels::insert(&tx, hotel_id, &fields, now).await?;
    let today = fields.timezone.today(now);
    let nights = NightRange::parse(today, today + Days::new(90), "from", "to")?;
    for (name, occupancy, count, rate) in [("Double", 2, 10, 12_000), ("Suite", 4, 2, 30_000)] {
        let room_type = room_types::insert(
            &tx,
            hotel.id,
            &RoomTypeFields {
                name: name.into(),
                description: Some(format!(
                    "A {} for up to {occupancy} guests",
                    name.to_lowercase()
                )),
                max_occupancy: occupancy,
            },
            now,
        )
        .await?;
        for n in 1..=count {
            let number = format!("{}{n:02}", if name == "Suite" { 9 } else { 1 });
            let room = RoomFields {
                room_type_id: room_type.id,
                number,
                floor: Some(if name == "Suite" { 9 } else { 1 }),
            };
            rooms::insert(&tx, hotel.id, &room, now).await?;
        }
        inventory::put_nights(
            &tx,
            hotel.id,
            room_type.id,
            nights,
            count,
            Some(rate),
            fields.overbooking_ratio,
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(hotel_id = hotel.id, "seeded the demo hotel");
    Ok(())
}
