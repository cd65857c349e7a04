//! The reservation engine, in both inventory modes: contention, overlapping stays, retry
//! storms, the lifecycle, a cold cache and the Postgres re-check.

mod contention;
mod fair_holds;
mod idempotency;
mod lifecycle;
mod recheck;

use std::collections::HashMap;

use innkeeper::config::InventoryMode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::TestApp;

pub(crate) const MODES: [InventoryMode; 2] = [InventoryMode::Redis, InventoryMode::Db];

pub(crate) async fn available(app: &TestApp, hotel: i64, from: u64, to: u64) -> Value {
    let (status, body) = app
        .get(&format!(
            "/v1/hotels/{hotel}/availability?check_in={}&check_out={}",
            app.night(from),
            app.night(to)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["room_types"][0].clone()
}

/// The rooms each live reservation holds, keyed by reservation id.
type Ledger = HashMap<Uuid, (u64, u64, i64)>;
