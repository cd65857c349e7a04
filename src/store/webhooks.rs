//! Webhook endpoints (in the catalog), and on each shard the outbox of events and their
//! deliveries (see migrations/V14__events_and_payments.sql and `jobs::webhooks`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::page::{CreatedKey, PageRequest};
use crate::config::Secret;
use crate::domain::{
    EventType, Payment, PaymentStatus, Reservation, ReservationId, ReservationStatus, Stay,
};

/// A webhook endpoint as staff see it: never its secret, which is shown once, when made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    /// The event types it receives; all of them when it subscribed to none in particular.
    pub event_types: Vec<EventType>,
    /// Only this hotel's events; every hotel's when null.
    pub hotel_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// An endpoint with the secret its deliveries are signed with.
#[derive(Debug, Clone)]
pub struct SigningEndpoint {
    pub endpoint: Endpoint,
    pub secret: Secret,
    /// Subscribed to no type in particular: every type. (An endpoint subscribed only to
    /// types a newer version knows shows none here, and gets none of these.)
    pub every_type: bool,
}

impl SigningEndpoint {
    /// Whether an event of `kind` at `hotel_id` goes to this endpoint.
    pub fn wants(&self, kind: EventType, hotel_id: i64) -> bool {
        let endpoint = &self.endpoint;
        (self.every_type || endpoint.event_types.contains(&kind))
            && endpoint.hotel_id.is_none_or(|hotel| hotel == hotel_id)
    }
}

/// How long a delivery is retried before it is marked failed, from its event's fan-out
/// (or from a staff retry): at least a day, as receivers are promised.
pub const RETRY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

const ENDPOINT_COLUMNS: &str = "endpoint_id, url, event_types, hotel_id, secret, created_at";

fn endpoint_from_row(row: &Row) -> Result<SigningEndpoint, tokio_postgres::Error> {
    let types: Vec<String> = row.try_get("event_types")?;
    Ok(SigningEndpoint {
        endpoint: Endpoint {
            id: row.try_get("endpoint_id")?,
            url: row.try_get("url")?,
            // Written only from parsed types; one this binary does not know (a newer
            // version's) is not this version's to deliver.
            event_types: types.iter().filter_map(|kind| kind.parse().ok()).collect(),
            hotel_id: row.try_get("hotel_id")?,
            created_at: row.try_get("created_at")?,
        },
        secret: Secret::new(row.try_get::<_, String>("secret")?),
        every_type: types.is_empty(),
    })
}

pub async fn insert_endpoint(
    db: &impl GenericClient,
    endpoint: &Endpoint,
    secret: &Secret,
) -> Result<(), tokio_postgres::Error> {
    let types: Vec<&str> = endpoint
        .event_types
        .iter()
        .map(|kind| kind.as_str())
        .collect();
    db.execute(
        &db.prepare_cached(
            "INSERT INTO webhook_endpoints (endpoint_id, url, event_types, hotel_id, secret, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?,
        &[
            &endpoint.id,
            &endpoint.url,
            &types,
            &endpoint.hotel_id,
            &secret.expose(),
            &endpoint.created_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn endpoint(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Endpoint>, tokio_postgres::Error> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE endpoint_id = $1");
    let row = db
        .query_opt(&db.prepare_cached(&sql).await?, &[&id])
        .await?;
    Ok(row
        .as_ref()
        .map(endpoint_from_row)
        .transpose()?
        .map(|signing| signing.endpoint))
}

/// One page of endpoints, oldest first.
pub async fn endpoints(
    db: &impl GenericClient,
    page: &PageRequest<CreatedKey>,
) -> Result<Vec<Endpoint>, tokio_postgres::Error> {
    let (after_time, after_id) = page.after_pair();
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
         WHERE $1::timestamptz IS NULL OR (created_at, endpoint_id) > ($1, $2) \
         ORDER BY created_at, endpoint_id LIMIT $3"
    );
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[&after_time, &after_id, &(page.limit + 1)],
        )
        .await?;
    rows.iter()
        .map(|row| endpoint_from_row(row).map(|signing| signing.endpoint))
        .collect()
}

/// Every endpoint, with its secret: what the webhook job delivers to.
pub async fn signing_endpoints(
    db: &impl GenericClient,
) -> Result<Vec<SigningEndpoint>, tokio_postgres::Error> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints");
    let rows = db.query(&db.prepare_cached(&sql).await?, &[]).await?;
    rows.iter().map(endpoint_from_row).collect()
}

/// Whether an endpoint was there to delete.
pub async fn delete_endpoint(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let deleted = db
        .execute(
            &db.prepare_cached("DELETE FROM webhook_endpoints WHERE endpoint_id = $1")
                .await?,
            &[&id],
        )
        .await?;
    Ok(deleted > 0)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not acknowledged yet; tried again at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// No 2xx within the retry window (or the endpoint was deleted); staff may retry it.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// A status by its name, as the table and the API's `?status=` write it.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// How many candidates a pick reads for each place it has room for.
const CANDIDATES_PER_PICK: i64 = 4;

/// Longest a pick puts back a delivery that waits for an earlier event of its reservation.
const WAIT_AT_MOST: chrono::Duration = chrono::Duration::seconds(10);

/// One event to one endpoint, as staff see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    #[schema(value_type = String)]
    pub event_type: String,
    pub reservation_id: Uuid,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// The HTTP status of the last answer; null when none came (a timeout, a refused
    /// connection) or before the first attempt.
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str = "d.delivery_id, d.endpoint_id, d.event_id, e.type, \
                                d.reservation_id, d.status, d.attempts, d.last_status_code, \
                                d.last_error, d.next_attempt_at, d.created_at, d.updated_at";

fn delivery_from_row(row: &Row) -> Result<Delivery, tokio_postgres::Error> {
    let status: &str = row.try_get("status")?;
    // The table's CHECK allows only the three; anything else is not this code's table.
    let status = DeliveryStatus::parse(status).unwrap_or(DeliveryStatus::Failed);
    Ok(Delivery {
        id: row.try_get("delivery_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("type")?,
        reservation_id: row.try_get("reservation_id")?,
        status,
        attempts: row.try_get("attempts")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        next_attempt_at: (status == DeliveryStatus::Pending)
            .then(|| row.try_get("next_attempt_at"))
            .transpose()?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One page of an endpoint's deliveries on one shard, oldest first.
pub async fn deliveries(
    db: &impl GenericClient,
    endpoint_id: Uuid,
    status: Option<DeliveryStatus>,
    page: &PageRequest<CreatedKey>,
) -> Result<Vec<Delivery>, tokio_postgres::Error> {
    let (after_time, after_id) = page.after_pair();
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e USING (event_id) \
         WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2) \
           AND ($3::timestamptz IS NULL OR (d.created_at, d.delivery_id) > ($3, $4)) \
         ORDER BY d.created_at, d.delivery_id LIMIT $5"
    );
    let rows = db
        .query(
            &db.prepare_cached(&sql).await?,
            &[
                &endpoint_id,
                &status.map(DeliveryStatus::as_str),
                &after_time,
                &after_id,
                &(page.limit + 1),
            ],
        )
        .await?;
    rows.iter().map(delivery_from_row).collect()
}

/// How asking to send a delivery again went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Due now, with a fresh retry window.
    Due,
    /// No such delivery of that endpoint on this shard.
    Missing,
    /// It already succeeded.
    Succeeded,
}

/// Makes a failed (or still pending) delivery due now, with a new retry window of
/// `window` from `now`.
pub async fn retry(
    db: &impl GenericClient,
    endpoint_id: Uuid,
    delivery_id: Uuid,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<Retried, tokio_postgres::Error> {
    let row = db
        .query_opt(
            &db.prepare_cached(
                "WITH found AS (SELECT delivery_id, status FROM webhook_deliveries \
                                WHERE delivery_id = $1 AND endpoint_id = $2 FOR UPDATE), \
                      retried AS (UPDATE webhook_deliveries d \
                                  SET status = 'pending', next_attempt_at = $3, \
                                      give_up_at = $4, updated_at = $3 \
                                  FROM found WHERE d.delivery_id = found.delivery_id \
                                    AND found.status <> 'succeeded' RETURNING 1) \
                 SELECT found.status FROM found",
            )
            .await?,
            &[&delivery_id, &endpoint_id, &now, &(now + window)],
        )
        .await?;
    Ok(match row.map(|row| row.get::<_, String>(0)).as_deref() {
        None => Retried::Missing,
        Some("succeeded") => Retried::Succeeded,
        Some(_) => Retried::Due,
    })
}

/// Fans out up to `limit` of the oldest events not fanned out yet: a pending delivery to
/// each endpoint that wants it, to give up on after `window`. One transaction, so an event
/// is fanned out once however many steps overlap (rows another step holds are skipped).
///
/// A delivery that may be sent at once is claimed here, until `claim_until`, and answered
/// to be sent, while `room[i]` (for `endpoints[i]`, counted down) lasts: the first of its
/// reservation's events in the batch, with none pending for that endpoint and none still
/// to be fanned out before it. That is nearly every delivery on an ordinary day, and it
/// then costs no pick (a statement, and a rewrite of its row). The rest are due now, for
/// [`pick_due`]. Answers how many events it fanned out, and the deliveries it claimed.
pub async fn fan_out(
    db: &mut deadpool_postgres::Object,
    endpoints: &[SigningEndpoint],
    room: &mut [i64],
    now: DateTime<Utc>,
    claim_until: DateTime<Utc>,
    window: chrono::Duration,
    limit: i64,
) -> Result<(u64, Vec<Due>), tokio_postgres::Error> {
    // Its commit is waited on: what it claims is sent at once, and the flush makes the
    // records of earlier attempts durable with it, so a crash of PostgreSQL can never
    // replay a reservation's earlier event after a later one was sent.
    let tx = db.transaction().await?;
    let events = tx
        .query(
            &tx.prepare_cached(
                "WITH due AS ( \
                     DELETE FROM events_to_fan_out WHERE seq IN ( \
                         SELECT seq FROM events_to_fan_out \
                         ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) \
                     RETURNING seq) \
                 SELECT e.event_id, e.seq, e.type, e.reservation_id, e.hotel_id, \
                        e.created_at, e.data, e.refund \
                 FROM events e JOIN due USING (seq) ORDER BY e.seq",
            )
            .await?,
            &[&limit],
        )
        .await?;
    // Every delivery of the batch, in seq order: (its id, endpoint index, event row).
    let mut deliveries = Vec::new();
    for event in &events {
        let kind: &str = event.try_get("type")?;
        let hotel_id: i64 = event.try_get("hotel_id")?;
        let Ok(kind) = kind.parse::<EventType>() else {
            continue;
        };
        for (index, _) in endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.wants(kind, hotel_id))
        {
            // Time-ordered: each insert lands at the end of the primary key's index, not
            // on a random page of it.
            deliveries.push((Uuid::now_v7(), index, event));
        }
    }
    if deliveries.is_empty() {
        tx.commit().await?;
        return Ok((events.len() as u64, Vec::new()));
    }
    let endpoint_ids: Vec<Uuid> = deliveries
        .iter()
        .map(|(_, index, _)| endpoints[*index].endpoint.id)
        .collect();
    let reservation_ids: Vec<Uuid> = deliveries
        .iter()
        .map(|(_, _, event)| event.try_get("reservation_id"))
        .collect::<Result<_, _>>()?;
    let seqs: Vec<i64> = deliveries
        .iter()
        .map(|(_, _, event)| event.try_get("seq"))
        .collect::<Result<_, _>>()?;
    // Which may go at once: the first of their reservation for their endpoint in the
    // batch, with nothing earlier waiting (this transaction already sees its own batch
    // fanned out, so an earlier event still to be fanned out is one another step holds).
    let mut first = std::collections::HashSet::new();
    let firsts: Vec<bool> = endpoint_ids
        .iter()
        .zip(&reservation_ids)
        .map(|key| first.insert(key))
        .collect();
    let blocked: std::collections::HashSet<i32> = tx
        .query(
            &tx.prepare_cached(
                "SELECT c.i FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::int[]) \
                     AS c(endpoint_id, reservation_id, seq, i) \
                 WHERE EXISTS (SELECT 1 FROM webhook_deliveries p \
                               WHERE p.endpoint_id = c.endpoint_id \
                                 AND p.reservation_id = c.reservation_id \
                                 AND p.status = 'pending') \
                    OR EXISTS (SELECT 1 FROM events_to_fan_out q \
                               WHERE q.reservation_id = c.reservation_id \
                                 AND q.seq < c.seq)",
            )
            .await?,
            &[
                &endpoint_ids,
                &reservation_ids,
                &seqs,
                &(0..deliveries.len() as i32).collect::<Vec<i32>>(),
            ],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let claimed: Vec<bool> = deliveries
        .iter()
        .enumerate()
        .map(|(i, (_, index, _))| {
            let claim = firsts[i] && !blocked.contains(&(i as i32)) && room[*index] > 0;
            if claim {
                room[*index] -= 1;
            }
            claim
        })
        .collect();
    let ids: Vec<Uuid> = deliveries.iter().map(|(id, _, _)| *id).collect();
    let event_ids: Vec<Uuid> = deliveries
        .iter()
        .map(|(_, _, event)| event.try_get("event_id"))
        .collect::<Result<_, _>>()?;
    let due_at: Vec<DateTime<Utc>> = claimed
        .iter()
        .map(|claimed| if *claimed { claim_until } else { now })
        .collect();
    let give_up_at = now + window;
    let inserted: std::collections::HashSet<Uuid> = tx
        .query(
            &tx.prepare_cached(
                "INSERT INTO webhook_deliveries (delivery_id, endpoint_id, event_id, seq, \
                     reservation_id, next_attempt_at, give_up_at, created_at, updated_at) \
                 SELECT d.*, $7::timestamptz, $8::timestamptz, $8 \
                 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::uuid[], \
                             $6::timestamptz[]) \
                      AS d(delivery_id, endpoint_id, event_id, seq, reservation_id, \
                           next_attempt_at) \
                 ON CONFLICT (event_id, endpoint_id) DO NOTHING \
                 RETURNING delivery_id",
            )
            .await?,
            &[
                &ids,
                &endpoint_ids,
                &event_ids,
                &seqs,
                &reservation_ids,
                &due_at,
                &give_up_at,
                &now,
            ],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    tx.commit().await?;
    let mut due = Vec::new();
    for ((((id, _, event), endpoint_id), event_id), claimed) in deliveries
        .iter()
        .zip(&endpoint_ids)
        .zip(&event_ids)
        .zip(&claimed)
    {
        if *claimed && inserted.contains(id) {
            due.push(Due {
                delivery_id: *id,
                endpoint_id: *endpoint_id,
                event_id: *event_id,
                attempts: 0,
                give_up_at,
                event_type: event.try_get("type")?,
                event_created_at: event.try_get("created_at")?,
                data: event.try_get("data")?,
                refund: event.try_get("refund")?,
            });
        }
    }
    Ok((events.len() as u64, due))
}

/// Fails the pending deliveries of endpoints that no longer exist: those not in `live`, the
/// endpoints read at `listed_at`, among deliveries made before then (a step beside this
/// one may have fanned out to an endpoint made since).
pub async fn fail_orphans(
    db: &impl GenericClient,
    live: &[Uuid],
    listed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    db.execute(
        &db.prepare_cached(
            "UPDATE webhook_deliveries SET status = 'failed', \
                 last_error = 'the endpoint was deleted', updated_at = $3 \
             WHERE status = 'pending' AND endpoint_id <> ALL ($1) AND created_at < $2",
        )
        .await?,
        &[&live, &listed_at, &now],
    )
    .await
}

/// A delivery picked to be sent now, with what it sends.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub attempts: i32,
    pub give_up_at: DateTime<Utc>,
    pub event_type: String,
    pub event_created_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub refund: Option<serde_json::Value>,
}

/// Picks the deliveries due now, at most `free[i]` for endpoint `endpoints[i]` (so one
/// endpoint's backlog never crowds out another's), longest due first, each only when no
/// earlier event of its reservation is still to be sent to that endpoint (or still to be
/// fanned out): a reservation's events reach an endpoint in order. Picking claims each
/// until `claim_until` (past the attempt's timeout), so no other step sends it meanwhile.
///
/// The candidates are read first, [`CANDIDATES_PER_PICK`] times as many as there is room
/// for, from the due index, and only they are checked for order: checked row by row as the
/// index is walked, a plan that sorted after filtering checked the whole backlog (a second
/// a pick over 40,000 pending), and an anti-join over it went quadratic. A candidate that
/// must wait for an earlier event is put back until that one is next due (at most
/// [`WAIT_AT_MOST`] on: the earlier one's due time may be only its claim, and its record
/// makes the later one due at once), so waiting events never fill the candidates and
/// crowd out a dead endpoint's retries; [`record_attempts`] moves them with the earlier
/// one's retry too.
pub async fn pick_due(
    db: &impl GenericClient,
    endpoints: &[Uuid],
    free: &[i64],
    now: DateTime<Utc>,
    claim_until: DateTime<Utc>,
) -> Result<Vec<Due>, tokio_postgres::Error> {
    let rows = db
        .query(
            &db.prepare_cached(
                "WITH candidates AS MATERIALIZED ( \
                     SELECT c.delivery_id, c.endpoint_id, c.reservation_id, c.seq, \
                            c.next_attempt_at, f.free \
                     FROM unnest($1::uuid[], $2::bigint[]) AS f(endpoint_id, free) \
                     CROSS JOIN LATERAL ( \
                         SELECT d.delivery_id, d.endpoint_id, d.reservation_id, d.seq, \
                                d.next_attempt_at \
                         FROM webhook_deliveries d \
                         WHERE d.endpoint_id = f.endpoint_id AND d.status = 'pending' \
                           AND d.next_attempt_at <= $3 \
                         ORDER BY d.next_attempt_at LIMIT f.free * $5) c), \
                 ready AS ( \
                     SELECT c.delivery_id, c.free, row_number() OVER ( \
                                PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at) AS n \
                     FROM candidates c \
                     WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
                                       WHERE p.endpoint_id = c.endpoint_id \
                                         AND p.reservation_id = c.reservation_id \
                                         AND p.status = 'pending' AND p.seq < c.seq) \
                       AND NOT EXISTS (SELECT 1 FROM events_to_fan_out q \
                                       WHERE q.reservation_id = c.reservation_id \
                                         AND q.seq < c.seq)), \
                 picked AS ( \
                     SELECT d.delivery_id FROM webhook_deliveries d \
                     JOIN ready r ON r.delivery_id = d.delivery_id AND r.n <= r.free \
                     WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
                     FOR UPDATE OF d SKIP LOCKED), \
                 waiting AS ( \
                     SELECT c.delivery_id, \
                            least((SELECT max(p.next_attempt_at) FROM webhook_deliveries p \
                                   WHERE p.endpoint_id = c.endpoint_id \
                                     AND p.reservation_id = c.reservation_id \
                                     AND p.status = 'pending' AND p.seq < c.seq), \
                                  $6::timestamptz) AS until \
                     FROM candidates c \
                     WHERE c.delivery_id NOT IN (SELECT delivery_id FROM ready)), \
                 put_back AS ( \
                     UPDATE webhook_deliveries w SET next_attempt_at = waiting.until \
                     FROM waiting \
                     WHERE w.delivery_id = waiting.delivery_id AND w.status = 'pending' \
                       AND waiting.until > w.next_attempt_at) \
                 UPDATE webhook_deliveries d SET next_attempt_at = $4 \
                 FROM picked, events e \
                 WHERE d.delivery_id = picked.delivery_id AND e.event_id = d.event_id \
                 RETURNING d.delivery_id, d.endpoint_id, d.event_id, d.attempts, d.give_up_at, \
                           e.type, e.created_at AS event_created_at, e.data, e.refund",
            )
            .await?,
            &[
                &endpoints,
                &free,
                &now,
                &claim_until,
                &CANDIDATES_PER_PICK,
                &(now + WAIT_AT_MOST),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Due {
                delivery_id: row.try_get("delivery_id")?,
                endpoint_id: row.try_get("endpoint_id")?,
                event_id: row.try_get("event_id")?,
                attempts: row.try_get("attempts")?,
                give_up_at: row.try_get("give_up_at")?,
                event_type: row.try_get("type")?,
                event_created_at: row.try_get("event_created_at")?,
                data: row.try_get("data")?,
                refund: row.try_get("refund")?,
            })
        })
        .collect()
}

/// What one attempt of a delivery came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The HTTP status, when an answer came.
    pub status_code: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub succeeded: bool,
}

/// Records attempts, one statement for all of them: each succeeded, failed for good (its
/// window is over), or due again at its `retry_at`, and the later events of its
/// reservation for that endpoint due no sooner than it (due now once it is done). Answers
/// each delivery's status after it, in the order given (None for one no longer pending: a
/// staff retry or a lapsed claim raced it). The commit is not waited on (`synchronous_commit = off`): a record lost with
/// a crash of PostgreSQL leaves its delivery claimed, so it is sent again when the claim
/// lapses, which at least once allows, and a flush per batch of attempts is what made
/// deliveries cost the booking path its commit flushes.
pub async fn record_attempts(
    db: &mut deadpool_postgres::Object,
    attempts: &[(Uuid, Attempt, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<Option<DeliveryStatus>>, tokio_postgres::Error> {
    let ids: Vec<Uuid> = attempts.iter().map(|(id, _, _)| *id).collect();
    let codes: Vec<Option<i32>> = attempts
        .iter()
        .map(|(_, attempt, _)| attempt.status_code.map(i32::from))
        .collect();
    let errors: Vec<Option<&str>> = attempts
        .iter()
        .map(|(_, attempt, _)| attempt.error.as_deref())
        .collect();
    let succeeded: Vec<bool> = attempts.iter().map(|(_, a, _)| a.succeeded).collect();
    let retry_at: Vec<DateTime<Utc>> = attempts.iter().map(|(_, _, at)| *at).collect();
    let tx = db.transaction().await?;
    let statement = tx
        .prepare_cached(
            "WITH recorded AS ( \
                 UPDATE webhook_deliveries d SET attempts = d.attempts + 1, \
                     last_status_code = a.code, last_error = a.error, updated_at = $6, \
                     status = CASE WHEN a.succeeded THEN 'succeeded' \
                                   WHEN a.retry_at >= d.give_up_at THEN 'failed' \
                                   ELSE 'pending' END, \
                     next_attempt_at = CASE WHEN a.succeeded THEN d.next_attempt_at \
                                            ELSE a.retry_at END \
                 FROM unnest($1::uuid[], $2::int[], $3::text[], $4::bool[], \
                             $5::timestamptz[]) AS a(delivery_id, code, error, succeeded, retry_at) \
                 WHERE d.delivery_id = a.delivery_id AND d.status = 'pending' \
                 RETURNING d.delivery_id, d.status, d.endpoint_id, d.reservation_id, d.seq, \
                           d.next_attempt_at), \
             later AS ( \
                 UPDATE webhook_deliveries s \
                 SET next_attempt_at = CASE WHEN r.status = 'pending' \
                                            THEN greatest(s.next_attempt_at, r.next_attempt_at) \
                                            ELSE least(s.next_attempt_at, $6) END \
                 FROM recorded r \
                 WHERE s.endpoint_id = r.endpoint_id AND s.reservation_id = r.reservation_id \
                   AND s.status = 'pending' AND s.seq > r.seq) \
             SELECT delivery_id, status FROM recorded",
        )
        .await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    let rows = tx
        .query(
            &statement,
            &[&ids, &codes, &errors, &succeeded, &retry_at, &now],
        )
        .await?;
    tx.commit().await?;
    let mut recorded = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let status: &str = row.try_get("status")?;
        recorded.insert(
            row.try_get::<_, Uuid>("delivery_id")?,
            DeliveryStatus::parse(status),
        );
    }
    Ok(ids
        .iter()
        .map(|id| recorded.get(id).copied().flatten())
        .collect())
}

/// When the oldest event still undelivered was made: the oldest pending delivery's event,
/// or the oldest event not fanned out yet.
pub async fn oldest_undelivered(
    db: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    let row = db
        .query_one(
            &db.prepare_cached(
                "SELECT least( \
                     (SELECT min(e.created_at) FROM webhook_deliveries d \
                      JOIN events e USING (event_id) WHERE d.status = 'pending'), \
                     (SELECT created_at FROM events \
                      WHERE seq = (SELECT min(seq) FROM events_to_fan_out)))",
            )
            .await?,
            &[],
        )
        .await?;
    row.try_get(0)
}

/// Gathers the planner's statistics of the outbox's tables. They go from empty to tens of
/// thousands of rows within a minute of a rush, before autovacuum (which looks once a
/// minute) analyzes them; until then the planner takes `endpoint_id`, which has a value or
/// two, for a selective column, and looks up a reservation's pending deliveries through
/// the due index, reading an endpoint's whole backlog for each (a second a pick, measured
/// at 40,000 pending). The webhook job asks for it as the tables grow. Only the columns
/// the job's statements filter and join on: the events' bodies are most of what a whole
/// ANALYZE reads and compares (300 ms of a spread's 25,000 bookings, four times).
pub async fn analyze(db: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    db.batch_execute(
        "ANALYZE webhook_deliveries (endpoint_id, reservation_id, status, seq, \
                                     next_attempt_at, event_id, created_at), \
                 events (event_id, seq, created_at), events_to_fan_out",
    )
    .await
}

/// Deletes events made before `before` that have nothing left to send, with their
/// deliveries: the history staff can list goes back that far.
pub async fn prune(
    db: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    db.execute(
        &db.prepare_cached(
            "DELETE FROM events e WHERE e.event_id IN ( \
                 SELECT event_id FROM events WHERE created_at < $1 \
                   AND NOT EXISTS (SELECT 1 FROM events_to_fan_out q WHERE q.seq = events.seq) \
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                                   WHERE d.event_id = events.event_id \
                                     AND d.status = 'pending') \
                 LIMIT 5000)",
        )
        .await?,
        &[&before],
    )
    .await
}

/// A reservation row as an event keeps it (`to_jsonb` of the row at the change).
#[derive(Debug, Deserialize)]
struct StoredRow {
    reservation_id: Uuid,
    hotel_id: i64,
    room_type_id: i64,
    guest_id: String,
    check_in: chrono::NaiveDate,
    check_out: chrono::NaiveDate,
    rooms: i64,
    status: ReservationStatus,
    total_cents: i64,
    currency: String,
    hold_expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    payment_status: PaymentStatus,
    payment_id: Option<String>,
    paid_cents: i64,
    refunded_cents: i64,
}

/// The reservation an event carries, as the API shows reservations.
pub fn reservation_of(data: &serde_json::Value) -> Result<Reservation, serde_json::Error> {
    let row = StoredRow::deserialize(data)?;
    Ok(Reservation {
        stay: Stay {
            reservation_id: ReservationId::new(row.reservation_id),
            hotel_id: row.hotel_id,
            room_type_id: row.room_type_id,
            check_in: row.check_in,
            check_out: row.check_out,
            rooms: row.rooms,
        },
        guest_id: row.guest_id,
        status: row.status,
        total_cents: row.total_cents,
        currency: row.currency,
        hold_expires_at: row.hold_expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
        payment: Payment {
            status: row.payment_status,
            payment_id: row.payment_id,
            amount_cents: row.paid_cents,
            refunded_cents: row.refunded_cents,
        },
    })
}
