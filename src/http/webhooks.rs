//! `/v1/webhook-endpoints`: staff subscribe other systems to booking events and see what
//! was delivered; `/v1/payments/events`: the payment provider reports payments.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Staff;
use super::error::{ApiError, Problem};
use super::extract::{parse_json, Json, Path, Query};
use super::pagination::PageQuery;
use super::AppState;
use crate::booking::webhooks::{CreatedEndpoint, NewEndpoint};
use crate::domain::{
    plain_text, required_text, EventType, InvalidField, PaymentEventType, ReservationId, WebhookUrl,
};
use crate::store::page::Page;
use crate::store::payments::PaymentEvent;
use crate::store::webhooks::{Delivery, DeliveryStatus, Endpoint};
use crate::telemetry::metrics::PAYMENT_EVENTS;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, delete_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
        .routes(routes!(payment_event))
}

/// An endpoint to subscribe.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// Where events are posted: an `http` or `https` URL without credentials.
    #[schema(max_length = 2000)]
    url: String,
    /// The event types to receive; every type when absent or empty.
    event_types: Option<Vec<String>>,
    /// Only this hotel's events; every hotel's when absent.
    hotel_id: Option<i64>,
}

impl EndpointBody {
    fn parse(self) -> Result<NewEndpoint, ApiError> {
        let event_types = self
            .event_types
            .unwrap_or_default()
            .iter()
            .map(|kind| kind.parse::<EventType>())
            .collect::<Result<Vec<_>, InvalidField>>()?;
        Ok(NewEndpoint {
            url: WebhookUrl::parse(&self.url)?,
            event_types,
            hotel_id: self.hotel_id,
        })
    }
}

/// A new endpoint, with the secret its deliveries are signed with: shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpointBody {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// `whsec_` and base64: verify each delivery's `webhook-signature` with it.
    secret: String,
}

#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks",
    request_body = EndpointBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Subscribed; the secret is shown only here", body = CreatedEndpointBody),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 413, description = "Body over 1 MiB", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn create_endpoint(
    State(state): State<AppState>,
    _staff: Staff,
    Json(body): Json<EndpointBody>,
) -> Result<(StatusCode, axum::Json<CreatedEndpointBody>), ApiError> {
    let CreatedEndpoint { endpoint, secret } = state.booker.create_endpoint(body.parse()?).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedEndpointBody {
            endpoint,
            secret: secret.expose().to_owned(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of endpoints, oldest first", body = Page<Endpoint>),
        (status = 400, description = "Unparseable query", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 422, description = "Invalid limit or cursor", body = Problem),
    ))]
async fn list_endpoints(
    State(state): State<AppState>,
    _staff: Staff,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Page<Endpoint>>, ApiError> {
    Ok(axum::Json(state.booker.endpoints(&query.parse()?).await?))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint (never its secret)", body = Endpoint),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such endpoint", body = Problem),
    ))]
async fn get_endpoint(
    State(state): State<AppState>,
    _staff: Staff,
    Path(endpoint_id): Path<Uuid>,
) -> Result<axum::Json<Endpoint>, ApiError> {
    Ok(axum::Json(state.booker.endpoint(endpoint_id).await?))
}

/// Unsubscribes an endpoint: nothing more is sent to it, and what it still had pending is
/// marked failed.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such endpoint", body = Problem),
    ))]
async fn delete_endpoint(
    State(state): State<AppState>,
    _staff: Staff,
    Path(endpoint_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.booker.delete_endpoint(endpoint_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// Only deliveries in this state: `pending`, `succeeded` or `failed`.
    status: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{endpoint_id}/deliveries", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path), DeliveryListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the endpoint's deliveries, oldest first", body = Page<Delivery>),
        (status = 400, description = "Unparseable query", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such endpoint", body = Problem),
        (status = 422, description = "Invalid status, limit or cursor", body = Problem),
    ))]
async fn list_deliveries(
    State(state): State<AppState>,
    _staff: Staff,
    Path(endpoint_id): Path<Uuid>,
    Query(query): Query<DeliveryListQuery>,
) -> Result<axum::Json<Page<Delivery>>, ApiError> {
    let status = query
        .status
        .as_deref()
        .map(|status| {
            DeliveryStatus::parse(status)
                .ok_or_else(|| InvalidField::new("status", "must be pending, succeeded or failed"))
        })
        .transpose()?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    Ok(axum::Json(
        state.booker.deliveries(endpoint_id, status, &page).await?,
    ))
}

/// Sends a delivery again now, with a new day of retries: a failed one, or a pending one
/// brought forward.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(("endpoint_id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Due now; the webhook job sends it"),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Not staff", body = Problem),
        (status = 404, description = "No such endpoint or delivery", body = Problem),
        (status = 409, description = "The delivery already succeeded", body = Problem),
    ))]
async fn retry_delivery(
    State(state): State<AppState>,
    _staff: Staff,
    Path((endpoint_id, delivery_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state
        .booker
        .retry_delivery(endpoint_id, delivery_id)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// A payment provider's event.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PaymentEventBody {
    #[serde(rename = "type")]
    kind: PaymentEventType,
    data: PaymentData,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PaymentData {
    #[schema(max_length = 200)]
    payment_id: String,
    reservation_id: ReservationId,
    #[schema(minimum = 0)]
    amount_cents: i64,
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

/// What a payment event did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentEventAnswer {
    /// `confirmed`, `mismatched`, `refund_requested`, `failed`, `refunded`, `duplicate`
    /// (this `webhook-id`, or this payment under another, was processed before),
    /// `unknown_reservation` or `ignored`.
    outcome: String,
}

/// The payment provider reports a payment, signed the Standard Webhooks way with
/// `INNKEEPER_PAYMENT_WEBHOOK_SECRET`. `payment.succeeded` confirms a pending reservation
/// paid in full while its hold lasts; a payment that comes after the hold ended or after a
/// cancel takes no nights back and asks for its refund (`refund.requested`); a failed
/// payment leaves the hold until it expires, so the guest can pay again. A payment of the
/// wrong amount or currency is asked back once the stay ends or another payment replaces
/// it. Each `webhook-id`, and each payment, is processed once; a repeat answers 200 and
/// changes nothing.
#[utoipa::path(post, path = "/v1/payments/events", tag = "webhooks",
    request_body = PaymentEventBody,
    responses(
        (status = 200, description = "Processed (or processed before)", body = PaymentEventAnswer),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "A missing, bad or stale signature", body = Problem),
        (status = 413, description = "Body over 1 MiB", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ))]
async fn payment_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<PaymentEventAnswer>, ApiError> {
    let verified = state
        .config
        .payment_webhook_secret
        .as_ref()
        .and_then(|secret| standardwebhooks::Webhook::new(secret.expose()).ok())
        .is_some_and(|verifier| verifier.verify(&body, &headers).is_ok());
    if !verified {
        ::metrics::counter!(PAYMENT_EVENTS, "outcome" => "bad_signature").increment(1);
        return Err(ApiError::Unauthorized(
            "the payment event's signature is missing, wrong or stale",
        ));
    }
    // verify() has read it: present and printable.
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    let event: PaymentEventBody = parse_json(&body)?;
    let event = PaymentEvent {
        webhook_id: required_text("webhook-id", webhook_id, 200)?,
        kind: event.kind,
        payment_id: required_text("data.payment_id", &event.data.payment_id, 200)?,
        reservation_id: event.data.reservation_id,
        amount_cents: (event.data.amount_cents >= 0)
            .then_some(event.data.amount_cents)
            .ok_or_else(|| InvalidField::new("data.amount_cents", "must not be negative"))?,
        currency: plain_text("data.currency", &event.data.currency, 3)?.to_owned(),
    };
    let outcome = state.booker.payment_event(&event).await?;
    tracing::info!(reservation_id = %event.reservation_id, payment_id = %event.payment_id, kind = event.kind.as_str(), %outcome, "payment event");
    ::metrics::counter!(PAYMENT_EVENTS, "outcome" => outcome.clone()).increment(1);
    Ok(axum::Json(PaymentEventAnswer { outcome }))
}
