//! Staff's webhook endpoints and what was delivered to them, and the payment provider's
//! events: the edges of the outbox (see migrations/V14__events_and_payments.sql). Sending
//! is the webhook job's (`jobs::webhooks`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::SubsecRound;
use rand::RngCore;
use uuid::Uuid;

use super::{Booker, BookingError};
use crate::config::Secret;
use crate::domain::{EventType, InvalidField, WebhookUrl};
use crate::store::page::{CreatedKey, Order, Page, PageRequest};
use crate::store::payments::{self, PaymentEvent};
use crate::store::webhooks::{self, Delivery, DeliveryStatus, Endpoint, Retried, RETRY_WINDOW};

/// An endpoint to subscribe, as staff asked for it.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: WebhookUrl,
    /// Every type when empty.
    pub event_types: Vec<EventType>,
    pub hotel_id: Option<i64>,
}

/// A new endpoint and its signing secret, which is shown this once.
#[derive(Debug)]
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub secret: Secret,
}

impl Booker {
    pub async fn create_endpoint(&self, new: NewEndpoint) -> Result<CreatedEndpoint, BookingError> {
        if let Some(hotel_id) = new.hotel_id {
            self.directory
                .hotel(hotel_id)
                .await
                .map_err(|error| match error {
                    BookingError::NotFound(_) => {
                        InvalidField::new("hotel_id", "no such hotel").into()
                    }
                    other => other,
                })?;
        }
        let mut event_types = new.event_types;
        event_types.sort();
        event_types.dedup();
        let endpoint = Endpoint {
            id: Uuid::new_v4(),
            url: new.url.as_str().to_owned(),
            event_types,
            hotel_id: new.hotel_id,
            // Microseconds, as Postgres keeps them: the 201 shows what a read will.
            created_at: self.clock.now().trunc_subsecs(6),
        };
        let secret = Secret::new(new_secret());
        self.bounded(async {
            let db = self.shards.catalog().get().await?;
            webhooks::insert_endpoint(&db, &endpoint, &secret).await?;
            Ok(())
        })
        .await?;
        Ok(CreatedEndpoint { endpoint, secret })
    }

    pub async fn endpoints(
        &self,
        page: &PageRequest<CreatedKey>,
    ) -> Result<Page<Endpoint>, BookingError> {
        let rows = self
            .bounded(async {
                let db = self.shards.catalog().get().await?;
                Ok(webhooks::endpoints(&db, page).await?)
            })
            .await?;
        Ok(Page::from_rows(rows, page, endpoint_key))
    }

    pub async fn endpoint(&self, id: Uuid) -> Result<Endpoint, BookingError> {
        self.bounded(async {
            let db = self.shards.catalog().get().await?;
            Ok(webhooks::endpoint(&db, id).await?)
        })
        .await?
        .ok_or(BookingError::NotFound("webhook endpoint"))
    }

    /// Deletes an endpoint: nothing more is sent to it, and its pending deliveries are
    /// marked failed by each shard's webhook job.
    pub async fn delete_endpoint(&self, id: Uuid) -> Result<(), BookingError> {
        let deleted = self
            .bounded(async {
                let db = self.shards.catalog().get().await?;
                Ok(webhooks::delete_endpoint(&db, id).await?)
            })
            .await?;
        deleted
            .then_some(())
            .ok_or(BookingError::NotFound("webhook endpoint"))
    }

    /// One page of an endpoint's deliveries, oldest first, from every shard.
    pub async fn deliveries(
        &self,
        endpoint_id: Uuid,
        status: Option<DeliveryStatus>,
        page: &PageRequest<CreatedKey>,
    ) -> Result<Page<Delivery>, BookingError> {
        self.endpoint(endpoint_id).await?;
        let rows = self
            .on_every_shard(|db| async move {
                Ok(webhooks::deliveries(&db, endpoint_id, status, page).await?)
            })
            .await?;
        Ok(Page::from_merged(
            rows,
            page,
            delivery_key,
            Order::Ascending,
        ))
    }

    /// Sends a delivery again now, with a new retry window: a failed one, or a pending one
    /// brought forward. One that succeeded is a conflict.
    pub async fn retry_delivery(
        &self,
        endpoint_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<(), BookingError> {
        self.endpoint(endpoint_id).await?;
        let now = self.clock.now();
        let answers = self
            .on_every_shard(|db| async move {
                Ok(webhooks::retry(&db, endpoint_id, delivery_id, now, RETRY_WINDOW).await?)
            })
            .await?;
        if answers.contains(&Retried::Due) {
            Ok(())
        } else if answers.contains(&Retried::Succeeded) {
            Err(BookingError::Conflict(
                "this delivery succeeded; there is nothing to retry".into(),
            ))
        } else {
            Err(BookingError::NotFound("delivery"))
        }
    }

    /// Applies a payment provider's event (already verified as the provider's) on the
    /// shard of the reservation it names, once per `webhook_id`: the saga's step. Answers
    /// what it did. A reservation no shard knows is recorded on the catalog's database and
    /// changes nothing.
    pub async fn payment_event(&self, event: &PaymentEvent) -> Result<String, BookingError> {
        let shard = self.shard_of_reservation(event.reservation_id).await?;
        let pool = match shard {
            Some(shard) => shard.pool.clone(),
            None => self.shards.catalog().clone(),
        };
        let now = self.clock.now();
        self.bounded(async {
            let db = pool.get().await?;
            Ok(payments::apply(&db, event, now).await?)
        })
        .await
    }
}

/// A signing secret as the Standard Webhooks specification writes one: `whsec_` and the
/// base64 of 32 random bytes.
fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// An endpoint's place in its list: oldest first.
fn endpoint_key(endpoint: &Endpoint) -> CreatedKey {
    CreatedKey {
        created_at: endpoint.created_at,
        id: endpoint.id,
    }
}

/// A delivery's place in its list: oldest first.
fn delivery_key(delivery: &Delivery) -> CreatedKey {
    CreatedKey {
        created_at: delivery.created_at,
        id: delivery.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_and_32_random_bytes() {
        let secret = new_secret();
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(new_secret(), secret);
    }
}
