//! The webhook job: on each shard, fans the outbox's new events out to the endpoints that
//! want them, and sends each delivery that is due, signed the Standard Webhooks way.
//!
//! - **At least once.** A delivery stays pending until its endpoint answers 2xx. Anything
//!   else, or no answer within [`ATTEMPT_TIMEOUT`], is tried again after an exponential
//!   backoff with jitter, until its retry window (a day) is over; then it is failed, and
//!   staff may send it again. A crash only delays it: sending a delivery claims it for
//!   [`CLAIM`] first, after which it is due again.
//! - **In order per reservation.** A delivery is sent only when no earlier event of its
//!   reservation is still pending for that endpoint (or still to be fanned out), so a
//!   receiver never hears `confirmed` before `created`. Most deliveries are claimed as
//!   they are fanned out and sent at once; the rest (a later event of the same batch, one
//!   waiting for an earlier, one for a full queue, every retry) are picked when due.
//! - **A slow endpoint delays only itself.** Each endpoint has [`PER_ENDPOINT`]
//!   connections, and a step picks no more for it than its queue has room for (one
//!   connection's worth once an attempt failed); attempts run in tasks of their own, so a
//!   step never waits for an answer, and keeps picking for a second while endpoints have a
//!   backlog. The booking path only ever writes the outbox row, in its own transaction.
//! - **Once per shard.** The step runs on the instance holding the shard's `webhooks`
//!   lease (see `jobs`); two overlapping steps cannot pick the same delivery (its row is
//!   locked and claimed) or fan an event out twice (a delivery is unique per endpoint and
//!   event).
//!
//! The signed body is `{id, type, created_at, data}` (plus `refund` for
//! `refund.requested`), rendered from the event row, so every attempt sends the same bytes
//! under the same `webhook-id` (the event's id).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use tokio::sync::{oneshot, Notify, Semaphore};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::Reservation;
use crate::store::webhooks::{self, Attempt, DeliveryStatus, Due, SigningEndpoint};
use crate::store::{Shard, Shards};
use crate::telemetry::metrics::{WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERIES, WEBHOOK_OLDEST_UNDELIVERED};

/// How long an endpoint has to answer an attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to one endpoint at once, from one instance and shard.
pub const PER_ENDPOINT: usize = 8;

/// Deliveries picked for one endpoint and not yet answered, at most: enough to keep its
/// connections busy between steps, and to claim a rush's deliveries as they are fanned
/// out (one left for a pick costs a statement and a rewrite of its row more). An endpoint
/// whose last attempt failed gets only as many as it has connections, so a dead one holds
/// few deliveries.
const QUEUE: usize = 2048;

/// How long a picked delivery is claimed, so that no other step sends it meanwhile; after
/// a crash it is sent again this much later. Long enough for a full queue to drain through
/// an endpoint that answers within a second.
const CLAIM: Duration = Duration::from_secs(300);

/// What an attempt needs left of its claim to start: its timeout, and a margin for
/// recording it. One still queued when less is left is not sent: its claim lapses and it
/// is picked again, so a slow endpoint's deep queue never sends a delivery that another
/// step may have picked meanwhile.
const CLAIM_NEEDED: Duration = Duration::from_secs(ATTEMPT_TIMEOUT.as_secs() + 20);

/// How long one step keeps picking while endpoints have a backlog.
const STEP_BUDGET: Duration = Duration::from_secs(1);

/// Longest wait between two attempts of a delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How long the first attempt to end waits for others to be recorded with it: a few
/// milliseconds more before a place in the queue is free, against a statement per attempt.
const RECORD_LINGER: Duration = Duration::from_millis(10);

/// How often a shard's step measures the oldest undelivered event and prunes: both read
/// the whole backlog, and the alert on the age waits minutes.
const TIDY_EVERY: Duration = Duration::from_secs(5);

/// The outbox's tables are analyzed once this process has fanned out twice this many
/// events on a shard, and again each time the count doubles (see [`webhooks::analyze`]).
const ANALYZE_FIRST: u64 = 500;

/// Events fanned out per statement.
const FAN_OUT_BATCH: i64 = 1000;

/// How long delivered events and their deliveries stay listable.
const RETENTION: chrono::Duration = chrono::Duration::days(7);

#[derive(Clone)]
pub struct Deliverer {
    shards: Shards,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    /// The wait before the first retry; each later one doubles it, up to an hour.
    retry_base: Duration,
    /// Per endpoint: its connections and what is queued for them.
    lanes: Arc<Mutex<HashMap<Uuid, Arc<Lane>>>>,
    /// Wakes a step waiting for room when an attempt ends.
    answered: Arc<Notify>,
    /// Per shard: the attempts that ended and wait to be recorded. A key is present
    /// exactly while a task records that shard's.
    unrecorded: Arc<Mutex<HashMap<usize, Vec<Unrecorded>>>>,
    /// Per shard: what its last step saw, for the work a step need not do every time.
    kept: Arc<Mutex<HashMap<usize, Kept>>>,
}

/// What a shard's last step saw.
#[derive(Default)]
struct Kept {
    /// The endpoints it listed (none before this process's first step on the shard): when
    /// one of them is gone, the next step fails its pending deliveries at once.
    live: Option<Vec<Uuid>>,
    /// When it last measured the oldest undelivered event and pruned.
    tidied_at: Option<std::time::Instant>,
    /// Events this process fanned out on the shard, and how many it had when it last had
    /// the outbox's tables analyzed.
    fanned_out: u64,
    analyzed_at: u64,
}

/// An attempt that ended, to be recorded: its delivery, how it went, when it is due again
/// if it failed, and who waits for the delivery's status after it.
type Unrecorded = (
    Uuid,
    Attempt,
    DateTime<Utc>,
    oneshot::Sender<Option<DeliveryStatus>>,
);

/// Hands a shard's recording on if the task recording it stops before its queue is empty
/// (a panic): the attempts queued then go unrecorded, and their claims lapse.
struct Recording<'a> {
    deliverer: &'a Deliverer,
    shard: usize,
    finished: bool,
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        if !self.finished {
            unpoisoned(&self.deliverer.unrecorded).remove(&self.shard);
        }
    }
}

/// One endpoint's deliveries in flight from this process.
struct Lane {
    connections: Arc<Semaphore>,
    /// Picked and not yet recorded.
    queued: AtomicUsize,
    /// Whether its last attempt succeeded.
    healthy: AtomicBool,
}

impl Lane {
    fn new() -> Self {
        Self {
            connections: Arc::new(Semaphore::new(PER_ENDPOINT)),
            queued: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        }
    }

    /// Takes all the room its queue has now, for one pick: every shard's step shares the
    /// lane, so the room is counted as queued at once and what the pick did not fill is
    /// given back by [`Lane::give_back`].
    fn reserve(&self) -> usize {
        let most = if self.healthy.load(Ordering::Relaxed) {
            QUEUE
        } else {
            PER_ENDPOINT
        };
        let mut queued = self.queued.load(Ordering::Relaxed);
        loop {
            let room = most.saturating_sub(queued);
            match self.queued.compare_exchange_weak(
                queued,
                queued + room,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return room,
                Err(now) => queued = now,
            }
        }
    }

    fn give_back(&self, unused: usize) {
        self.queued.fetch_sub(unused, Ordering::AcqRel);
    }
}

/// One delivery's place in its lane's queue, freed when its attempt is recorded, or if the
/// task carrying it panics, so a lane never stays full of attempts that ended.
struct Place {
    lane: Arc<Lane>,
    answered: Arc<Notify>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.lane.give_back(1);
        self.answered.notify_waiters();
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    pub events_fanned_out: u64,
    pub attempts_started: u64,
}

impl std::iter::Sum for StepReport {
    fn sum<I: Iterator<Item = Self>>(reports: I) -> Self {
        reports.fold(Self::default(), |total, report| Self {
            events_fanned_out: total.events_fanned_out + report.events_fanned_out,
            attempts_started: total.attempts_started + report.attempts_started,
        })
    }
}

/// The body every attempt of a delivery sends.
#[derive(Serialize)]
struct Body<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: DateTime<Utc>,
    data: Reservation,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund: Option<&'a serde_json::Value>,
}

impl Deliverer {
    pub fn new(
        shards: Shards,
        clock: Arc<dyn Clock>,
        retry_base: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            // A redirect could lead a signed body somewhere its endpoint never named.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(PER_ENDPOINT)
            .user_agent(concat!("innkeeper-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            shards,
            clock,
            client,
            retry_base,
            lanes: Arc::new(Mutex::new(HashMap::new())),
            answered: Arc::new(Notify::new()),
            unrecorded: Arc::new(Mutex::new(HashMap::new())),
            kept: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// One step on every shard; waits for the attempts it started (tests).
    pub async fn run_once(&self) -> anyhow::Result<StepReport> {
        let report = self.start_once().await?;
        self.settled().await;
        Ok(report)
    }

    /// One step on every shard, leaving its attempts running.
    pub async fn start_once(&self) -> anyhow::Result<StepReport> {
        super::on_every_shard(&self.shards, |shard| self.run_on(shard)).await
    }

    /// Waits until no attempt of this process is in flight.
    pub async fn settled(&self) {
        loop {
            let busy = unpoisoned(&self.lanes)
                .values()
                .any(|lane| lane.queued.load(Ordering::Relaxed) > 0);
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Fans out what is new and starts the attempts that are due, again while endpoints
    /// have a backlog (within [`STEP_BUDGET`]); then, if an endpoint is gone since the last
    /// step, fails what was meant for it, and every [`TIDY_EVERY`] does that whatever the
    /// last step saw, reports how old the oldest undelivered event is, and prunes.
    pub async fn run_on(&self, shard: &Shard) -> anyhow::Result<StepReport> {
        let listed_at = self.clock.now();
        let endpoints = webhooks::signing_endpoints(&self.shards.catalog().get().await?).await?;
        let live: Vec<Uuid> = endpoints.iter().map(|e| e.endpoint.id).collect();
        let lanes: Vec<Arc<Lane>> = {
            let mut lanes = unpoisoned(&self.lanes);
            lanes.retain(|id, lane| live.contains(id) || lane.queued.load(Ordering::Relaxed) > 0);
            live.iter()
                .map(|id| {
                    lanes
                        .entry(*id)
                        .or_insert_with(|| Arc::new(Lane::new()))
                        .clone()
                })
                .collect()
        };
        let mut db = shard.pool.get().await?;
        let mut report = StepReport::default();
        let started = std::time::Instant::now();
        loop {
            let now = self.clock.now();
            let claim_until = now + chrono::Duration::from_std(CLAIM)?;
            let reserved: Vec<usize> = lanes.iter().map(|lane| lane.reserve()).collect();
            let taken = self
                .take_due(
                    &mut db,
                    &endpoints,
                    &reserved,
                    (now, claim_until),
                    started,
                    &mut report,
                )
                .await;
            let due = match taken {
                Ok(due) => due,
                Err(error) => {
                    for (lane, room) in lanes.iter().zip(&reserved) {
                        lane.give_back(*room);
                    }
                    return Err(error);
                }
            };
            let mut backlog = false;
            for (index, (lane, room)) in lanes.iter().zip(&reserved).enumerate() {
                let picked = due
                    .iter()
                    .filter(|delivery| delivery.endpoint_id == live[index])
                    .count();
                lane.give_back(room - picked.min(*room));
                backlog |= *room > 0 && picked == *room;
            }
            for delivery in due {
                let Some(index) = live.iter().position(|id| *id == delivery.endpoint_id) else {
                    continue;
                };
                let place = Place {
                    lane: lanes[index].clone(),
                    answered: self.answered.clone(),
                };
                let deliverer = self.clone();
                let endpoint = endpoints[index].clone();
                let (pool, shard_index) = (shard.pool.clone(), shard.index);
                tokio::spawn(async move {
                    let lane = place.lane.clone();
                    // Closed never: the semaphore lives as long as its lane.
                    let connection = lane.connections.clone().acquire_owned().await;
                    if deliverer.in_time(claim_until) {
                        let ok = deliverer
                            .attempt(&pool, shard_index, &endpoint, delivery, connection)
                            .await;
                        lane.healthy.store(ok, Ordering::Relaxed);
                    }
                    drop(place);
                });
                report.attempts_started += 1;
            }
            if reserved.iter().all(|room| *room == 0) {
                break;
            }
            if !backlog || started.elapsed() >= STEP_BUDGET {
                break;
            }
            // Room frees as answers come; new events arrive meanwhile too.
            let _ = tokio::time::timeout(Duration::from_millis(50), self.answered.notified()).await;
        }

        let (endpoint_gone, tidy, analyze) = {
            let mut kept = unpoisoned(&self.kept);
            let kept = kept.entry(shard.index).or_default();
            kept.fanned_out += report.events_fanned_out;
            let analyze = kept.fanned_out >= kept.analyzed_at.max(ANALYZE_FIRST) * 2;
            if analyze {
                kept.analyzed_at = kept.fanned_out;
            }
            let gone = kept
                .live
                .as_ref()
                .is_none_or(|before| before.iter().any(|id| !live.contains(id)));
            let tidy = kept.tidied_at.is_none_or(|at| at.elapsed() >= TIDY_EVERY);
            if tidy {
                kept.tidied_at = Some(std::time::Instant::now());
            }
            (gone, tidy, analyze)
        };
        if analyze {
            webhooks::analyze(&db).await?;
        }
        let now = self.clock.now();
        // Every so often too: a step beside this one (a lease changing hands) may have fanned
        // out to an endpoint after this one's list no longer had it.
        if endpoint_gone || tidy {
            let orphaned = webhooks::fail_orphans(&db, &live, listed_at, now).await?;
            ::metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "failed").increment(orphaned);
        }
        // Only once its orphans are failed: a step that could not fail them tries again.
        unpoisoned(&self.kept).entry(shard.index).or_default().live = Some(live);
        if tidy {
            let oldest = webhooks::oldest_undelivered(&db).await?;
            let age = oldest.map_or(0.0, |at| {
                (now - at).num_milliseconds().max(0) as f64 / 1000.0
            });
            ::metrics::gauge!(WEBHOOK_OLDEST_UNDELIVERED, "shard" => (shard.index + 1).to_string())
                .set(age);
            webhooks::prune(&db, now - RETENTION).await?;
        }
        Ok(report)
    }

    /// What to send now, within the room `reserved` for each endpoint: what fanning out
    /// the new events claimed (again while a batch comes back full, within the step's
    /// budget), then the due deliveries picked for the room left.
    async fn take_due(
        &self,
        db: &mut deadpool_postgres::Object,
        endpoints: &[SigningEndpoint],
        reserved: &[usize],
        (now, claim_until): (DateTime<Utc>, DateTime<Utc>),
        started: std::time::Instant,
        report: &mut StepReport,
    ) -> anyhow::Result<Vec<Due>> {
        let mut room: Vec<i64> = reserved.iter().map(|room| *room as i64).collect();
        let mut due = Vec::new();
        loop {
            let (fanned, claimed) = webhooks::fan_out(
                db,
                endpoints,
                &mut room,
                now,
                claim_until,
                webhooks::RETRY_WINDOW,
                FAN_OUT_BATCH,
            )
            .await?;
            report.events_fanned_out += fanned;
            due.extend(claimed);
            if fanned < FAN_OUT_BATCH as u64 || started.elapsed() >= STEP_BUDGET {
                break;
            }
        }
        let (ids, free): (Vec<Uuid>, Vec<i64>) = endpoints
            .iter()
            .zip(&room)
            .filter(|(_, room)| **room > 0)
            .map(|(endpoint, room)| (endpoint.endpoint.id, *room))
            .unzip();
        if !ids.is_empty() {
            due.extend(webhooks::pick_due(&*db, &ids, &free, now, claim_until).await?);
        }
        Ok(due)
    }

    /// Whether an attempt claimed until `claim_until` may still start (see
    /// [`CLAIM_NEEDED`]).
    fn in_time(&self, claim_until: DateTime<Utc>) -> bool {
        chrono::Duration::from_std(CLAIM_NEEDED)
            .is_ok_and(|needed| self.clock.now() + needed <= claim_until)
    }

    /// Sends one delivery and records how it went; whether the endpoint acknowledged it.
    /// The connection's permit is given back as soon as the answer is in, before the
    /// attempt is recorded.
    async fn attempt<P>(
        &self,
        pool: &deadpool_postgres::Pool,
        shard: usize,
        endpoint: &SigningEndpoint,
        due: Due,
        connection: P,
    ) -> bool {
        let sent = self.send(endpoint, &due).await;
        drop(connection);
        let outcome = match sent {
            Ok(status) if status.is_success() => Attempt {
                status_code: Some(status.as_u16()),
                error: None,
                succeeded: true,
            },
            Ok(status) => Attempt {
                status_code: Some(status.as_u16()),
                error: Some(format!("the endpoint answered {status}")),
                succeeded: false,
            },
            Err(error) => Attempt {
                status_code: None,
                error: Some(error),
                succeeded: false,
            },
        };
        let result = match (outcome.succeeded, outcome.status_code) {
            (true, _) => "ok",
            (false, Some(_)) => "rejected",
            (false, None) => "unreachable",
        };
        ::metrics::counter!(WEBHOOK_ATTEMPTS, "result" => result).increment(1);
        let retry_at = self.clock.now() + self.backoff(due.attempts + 1);
        let succeeded = outcome.succeeded;
        match self
            .record(pool, shard, due.delivery_id, outcome, retry_at)
            .await
        {
            Some(Some(DeliveryStatus::Succeeded)) => {
                ::metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "succeeded").increment(1);
            }
            Some(Some(DeliveryStatus::Failed)) => {
                tracing::warn!(delivery = %due.delivery_id, endpoint = %due.endpoint_id, "a webhook delivery failed for good; staff may retry it");
                ::metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "failed").increment(1);
            }
            // Its claim lapses and it is sent again: at least once.
            None => {
                tracing::warn!(delivery = %due.delivery_id, "could not record a webhook attempt")
            }
            Some(_) => {}
        }
        succeeded
    }

    /// Records an attempt together with the others of its shard that end meanwhile: the
    /// first to arrive starts a task that records, after [`RECORD_LINGER`], every attempt
    /// queued by then, in one statement, and again while more arrive; each waits for its
    /// own answer. None when it could not be recorded.
    async fn record(
        &self,
        pool: &deadpool_postgres::Pool,
        shard: usize,
        delivery_id: Uuid,
        attempt: Attempt,
        retry_at: DateTime<Utc>,
    ) -> Option<Option<DeliveryStatus>> {
        let (answer, answered) = oneshot::channel();
        let records = {
            let mut queues = unpoisoned(&self.unrecorded);
            let records = !queues.contains_key(&shard);
            queues
                .entry(shard)
                .or_default()
                .push((delivery_id, attempt, retry_at, answer));
            records
        };
        if records {
            // In a task of its own: the attempt that starts the recording frees its place
            // when its own answer is in, not when the queue it records runs dry.
            let (deliverer, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move { deliverer.record_queued(&pool, shard).await });
        }
        answered.await.ok()
    }

    /// Records the shard's queued attempts until none is left. If this panics, the guard
    /// hands the shard on: the attempts it held are unrecorded (their claims lapse), and
    /// the next attempt to end records again.
    async fn record_queued(&self, pool: &deadpool_postgres::Pool, shard: usize) {
        let mut guard = Recording {
            deliverer: self,
            shard,
            finished: false,
        };
        loop {
            tokio::time::sleep(RECORD_LINGER).await;
            let batch = {
                let mut queues = unpoisoned(&self.unrecorded);
                let queue = queues.entry(shard).or_default();
                if queue.is_empty() {
                    queues.remove(&shard);
                    guard.finished = true;
                    return;
                }
                std::mem::take(queue)
            };
            let now = self.clock.now();
            let (attempts, answers): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|(id, attempt, retry_at, answer)| ((id, attempt, retry_at), answer))
                .unzip();
            let recorded = async {
                let mut db = pool.get().await?;
                anyhow::Ok(webhooks::record_attempts(&mut db, &attempts, now).await?)
            };
            match recorded.await {
                Ok(statuses) => {
                    for (answer, status) in answers.into_iter().zip(statuses) {
                        let _ = answer.send(status);
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        attempts = attempts.len(),
                        error = format!("{error:#}"),
                        "could not record webhook attempts"
                    )
                }
            }
        }
    }

    /// Posts the delivery's signed body; the status of the answer, or why none came.
    async fn send(
        &self,
        endpoint: &SigningEndpoint,
        due: &Due,
    ) -> Result<reqwest::StatusCode, String> {
        let data = webhooks::reservation_of(&due.data)
            .map_err(|error| format!("the event's reservation is unreadable: {error}"))?;
        let body = serde_json::to_vec(&Body {
            id: due.event_id,
            kind: &due.event_type,
            created_at: due.event_created_at,
            data,
            refund: due.refund.as_ref(),
        })
        .map_err(|error| error.to_string())?;
        let id = due.event_id.to_string();
        // The wall clock, not the service's: receivers check it against theirs.
        let timestamp = Utc::now().timestamp();
        let signature = standardwebhooks::Webhook::new(endpoint.secret.expose())
            .and_then(|signer| signer.sign(&id, timestamp, &body))
            .map_err(|_| "the endpoint's secret cannot sign".to_owned())?;
        let answer = self
            .client
            .post(&endpoint.endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|error| describe(&error))?;
        Ok(answer.status())
    }

    /// The wait after `attempts` failed attempts: the base doubled each time, at most an
    /// hour, spread by ±50% so that a receiver back from an outage is not hit by every
    /// retry at once.
    fn backoff(&self, attempts: i32) -> chrono::Duration {
        let doublings = attempts.clamp(1, 30) as u32 - 1;
        let wait = self
            .retry_base
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(MAX_BACKOFF);
        let spread = rand::thread_rng().gen_range(0.5..1.5);
        chrono::Duration::from_std(wait.mul_f64(spread)).unwrap_or(chrono::Duration::hours(1))
    }
}

/// The job's maps stay usable after a task panicked holding one: they only save work
/// (lanes' room, what a step saw, attempts waiting to be recorded), and whatever a panic
/// loses of them a lapsing claim makes good.
fn unpoisoned<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why an attempt got no answer, in words that name no internals of ours.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        "the request failed".into()
    }
}
