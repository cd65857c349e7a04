//! The payment saga's steps in Postgres: `apply_payment()` (see
//! migrations/V14__events_and_payments.sql) records a provider event once and makes its
//! change, with the events it emits, in one transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::domain::{PaymentEventType, ReservationId};

/// A payment provider's event, as `POST /v1/payments/events` received it.
#[derive(Debug, Clone)]
pub struct PaymentEvent {
    /// Its `webhook-id`: the same on the provider's every retry.
    pub webhook_id: String,
    pub kind: PaymentEventType,
    pub payment_id: String,
    pub reservation_id: ReservationId,
    pub amount_cents: i64,
    pub currency: String,
}

/// Records `event` and applies it; answers what it did (`apply_payment()` lists the
/// answers), for the log and the metric.
pub async fn apply(
    db: &impl GenericClient,
    event: &PaymentEvent,
    now: DateTime<Utc>,
) -> Result<String, tokio_postgres::Error> {
    let row = db
        .query_one(
            &db.prepare_cached("SELECT apply_payment($1, $2, $3, $4, $5, $6, $7)")
                .await?,
            &[
                &event.webhook_id,
                &event.kind.as_str(),
                &event.payment_id,
                &event.reservation_id.as_uuid(),
                &event.amount_cents,
                &event.currency,
                &now,
            ],
        )
        .await?;
    row.try_get(0)
}
