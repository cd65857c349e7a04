//! Group commit: bookings that Redis has already admitted commit together, several to a
//! Postgres transaction, per lane of hotels.
//!
//! In a rush every admitted booking updates the same few night rows, so one-by-one they
//! queue on those row locks and each waits for its own commit flush; across many hotels,
//! every booking pays a commit flush of its own. Here hotels are spread over lanes; the
//! first booking of a lane starts a drainer, bookings arriving while its transaction
//! runs wait in a queue, and the drainer commits them together in the next one. A booking
//! that arrives alone commits at once, so a quiet hotel pays no extra latency. One drainer
//! per lane means a lane's transactions never wait on each other's row locks, and
//! lanes hold disjoint hotels, so they never wait on each other either.
//!
//! A batch is one statement, `book_stays()`, sent with its BEGIN and COMMIT in one write:
//! one round trip and one commit flush for the batch, and a handful of set-based statements
//! in Postgres whatever the batch's size (one booking's `book_stay()` runs nine).
//!
//! The batch books whole or not at all. If any booking of it is refused under the row
//! locks (Redis admitted them all, so it is rare) or the statement fails, the transaction
//! rolls back and each booking runs on its own through `book_stay()`, which answers its
//! own outcome, so one refusal never takes its neighbours down. A failure of the COMMIT
//! itself leaves every booking of the batch uncertain; they are all answered 503 and their
//! Redis deductions given back, as for a single booking (a client retry then replays).
//!
//! Once a batch is answered, its created bookings' deductions are marked committed in
//! Redis with one lua/commit.lua call per hotel, in a task of its own (redis mode): a
//! booking costs Redis two round trips, its pre-deduction and its share of the mark.
//!
//! Every booking waits for its answer with a deadline, and a drainer that panics hands
//! its lane on: the bookings of its batch are answered 503, and those queued behind it
//! get a new drainer, so one bad batch never wedges a lane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::BookingError;
use crate::config::Fault;
use crate::domain::{NewReservation, Stay};
use crate::inventory::NightCache;
use crate::store::reservations::{self, BookError, Committed};
use crate::telemetry;

/// How long the deduction marker of a committed reservation is kept: replays within this
/// time are answered from the marker's path without deducting again.
const COMMITTED_MARKER_TTL: Duration = Duration::from_secs(24 * 3600);

/// Most bookings one transaction commits.
const MAX_BATCH: usize = 64;

/// Most bookings waiting in one lane's queue. Past it a booking is answered 503
/// `overloaded` at once (and its deduction given back): a queue longer than this could not
/// drain within a booking's deadline anyway.
const MAX_QUEUED: usize = 16 * MAX_BATCH;

/// Attempts of a lone booking that Postgres chose as a deadlock victim.
const DEADLOCK_RETRIES: u32 = 3;

type Waiting = (
    NewReservation,
    oneshot::Sender<Result<Committed, BookingError>>,
);

pub struct GroupCommitter {
    db: deadpool_postgres::Pool,
    /// Where the committed deductions are marked (redis mode).
    cache: Option<NightCache>,
    timeout: Duration,
    /// `Fault::PanicInGroupCommit` makes the next drainer panic once, for the test that a
    /// panic wedges nothing.
    panic_once: std::sync::atomic::AtomicBool,
    /// How many lanes hotels are spread over: at most this many batch transactions run
    /// at once.
    lanes: i64,
    /// Per lane: the bookings waiting for the next transaction. A key is present exactly
    /// while a drainer runs for it.
    queues: Mutex<HashMap<i64, Vec<Waiting>>>,
}

impl GroupCommitter {
    /// One lane per core, at least two, and never more than half the pool (the rest is
    /// for bookings that commit alone and every other query). Fewer lanes batch more:
    /// with a lane per two pool connections, bookings spread across 1,000 hotels took
    /// 1.0 transactions each; with two lanes, 0.23, and 10 to 20% more of them commit
    /// per second. Two keep one lane's statements running while the other's commit
    /// waits for its flush.
    pub fn new(db: deadpool_postgres::Pool, timeout: Duration, fault: Option<Fault>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let lanes = cores.max(2).min(db.status().max_size / 2).max(1) as i64;
        Self {
            db,
            cache: None,
            timeout,
            panic_once: (fault == Some(Fault::PanicInGroupCommit)).into(),
            lanes,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Marks each committed batch's deductions in `cache` (redis mode).
    pub fn marking_in(mut self, cache: Option<NightCache>) -> Self {
        self.cache = cache;
        self
    }

    /// The longest a booking waits for its group's answer: a connection (bounded by the
    /// pool's wait, one statement timeout), the batch ahead of it and its own (each
    /// bounded by `timeout`). Past it the answer is 503 and the deduction given back.
    fn deadline(&self) -> Duration {
        self.timeout * 3
    }

    /// Commits one admitted booking, together with others of its lane.
    pub async fn commit(self: &Arc<Self>, stay: NewReservation) -> Result<Committed, BookingError> {
        let key = stay.stay.hotel_id.rem_euclid(self.lanes);
        let (sender, receiver) = oneshot::channel();
        let start_drainer = {
            let mut queues = self.lock();
            match queues.get_mut(&key) {
                Some(queue) if queue.len() >= MAX_QUEUED => return Err(BookingError::Overloaded),
                Some(queue) => {
                    queue.push((stay, sender));
                    false
                }
                None => {
                    queues.insert(key, vec![(stay, sender)]);
                    true
                }
            }
        };
        if start_drainer {
            self.start_drainer(key);
        }
        match tokio::time::timeout(self.deadline(), receiver).await {
            Ok(Ok(answer)) => answer,
            // The drainer panicked with this booking in its batch: whether it committed
            // is unknown, as after a failed COMMIT.
            Ok(Err(_dropped)) => Err(BookingError::Unavailable("the database")),
            Err(_elapsed) => Err(BookingError::Unavailable("the database")),
        }
    }

    fn start_drainer(self: &Arc<Self>, key: i64) {
        let committer = self.clone();
        tokio::spawn(async move {
            let _hands_on_if_it_panics = Lane {
                committer: committer.clone(),
                key,
            };
            committer.drain(key).await;
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<Waiting>>> {
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn drain(&self, key: i64) {
        loop {
            let batch: Vec<Waiting> = {
                let mut queues = self.lock();
                let Some(queue) = queues.get_mut(&key) else {
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&key);
                    return;
                }
                let take = queue.len().min(MAX_BATCH);
                // A booking whose caller stopped waiting (its deadline passed, it was
                // answered 503 and its deduction given back) is not committed after all.
                queue
                    .drain(..take)
                    .filter(|(_, answer)| !answer.is_closed())
                    .collect()
            };
            if batch.is_empty() {
                continue;
            }
            self.run(batch).await;
        }
    }

    async fn run(&self, mut batch: Vec<Waiting>) {
        if self
            .panic_once
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            panic!("INNKEEPER_FAULT=panic_in_group_commit: a group-commit drainer panics");
        }
        // Rows are then locked in key order (hotel, room type, night), as a lone booking
        // locks its own: fewer deadlocks with the transactions running beside the batch.
        batch.sort_by_key(|(booking, _)| {
            let stay = &booking.stay;
            (stay.hotel_id, stay.room_type_id, stay.check_in)
        });
        let created = if batch.len() > 1 {
            let stays: Vec<&NewReservation> = batch.iter().map(|(stay, _)| stay).collect();
            match self.together(&stays).await {
                Together::Committed(outcomes) => batch
                    .into_iter()
                    .zip(outcomes)
                    .filter_map(|(waiting, outcome)| answer(waiting, Ok(outcome)))
                    .collect(),
                Together::Uncertain(error) => {
                    tracing::warn!(%error, bookings = batch.len(), "a group commit failed");
                    for (_, answer) in batch {
                        let _ = answer.send(Err(BookingError::Unavailable("the database")));
                    }
                    return;
                }
                Together::OneByOne => self.one_by_one(batch).await,
            }
        } else {
            self.one_by_one(batch).await
        };
        self.mark_committed(created);
    }

    /// Each booking on its own connection, at once, each answered as soon as its own
    /// transaction ends: one by one, a refused batch of 64 would make its last booking
    /// wait for 63 transactions. Returns the stays created.
    async fn one_by_one(&self, batch: Vec<Waiting>) -> Vec<Stay> {
        let created = batch.into_iter().map(|waiting| async move {
            let outcome = self.alone(&waiting.0).await;
            answer(waiting, outcome)
        });
        futures::future::join_all(created)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Marks the batch's committed deductions in Redis, in a task of its own: the guests
    /// need not wait for it, and the next batch need not either. Until it lands a replay
    /// finds the marker still set and reads the reservation from Postgres; if it fails, the
    /// in-flight entries lapse at their deadline and the reconciler takes Postgres' count.
    fn mark_committed(&self, created: Vec<Stay>) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        if created.is_empty() {
            return;
        }
        tokio::spawn(async move {
            if let Err(error) = cache.mark_committed(&created, COMMITTED_MARKER_TTL).await {
                tracing::warn!(%error, bookings = created.len(), "could not mark deductions as committed");
            }
        });
    }

    /// One booking in its own transaction: a batch of one, the `db` mode, and bookings
    /// that bypassed Redis. Postgres' statement_timeout cannot fire while the server is
    /// frozen (SIGSTOP, a stalled disk), so the wait is bounded here too; the caller then
    /// compensates.
    /// A deadlock with a batch or a cancel (Postgres picks one transaction to roll back)
    /// is retried: the booking was rolled back whole, so running it again is safe.
    pub async fn alone(&self, stay: &NewReservation) -> Result<Committed, BookingError> {
        let db = self.db.get().await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let started = Instant::now();
            let Ok(result) =
                tokio::time::timeout(self.timeout, reservations::book(&db, stay)).await
            else {
                discard(db);
                return Err(BookingError::Unavailable("the database"));
            };
            telemetry::observe_transaction("book", started);
            match result {
                Err(error) if attempts < DEADLOCK_RETRIES && error.is_deadlock() => {
                    tracing::debug!(%error, attempts, "retrying a booking after a deadlock");
                }
                result => return Ok(result?),
            }
        }
    }

    /// Every booking of the batch in one transaction of one statement (`book_stays()`),
    /// sent with its BEGIN and COMMIT in one write: one round trip for the batch.
    async fn together(&self, stays: &[&NewReservation]) -> Together {
        let Ok(db) = self.db.get().await else {
            return Together::OneByOne;
        };
        let Ok(statement) = reservations::book_all_statement(&db).await else {
            return Together::OneByOne;
        };
        let started = Instant::now();
        // Requests go out in the order their futures are first polled, and join! polls
        // them in the order written: BEGIN, the batch, COMMIT.
        let attempt = async {
            futures::join!(
                db.batch_execute("BEGIN"),
                reservations::book_all(&db, &statement, stays),
                db.batch_execute("COMMIT"),
            )
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Err(_elapsed) => {
                discard(db);
                Together::Uncertain(anyhow::anyhow!("the group commit timed out"))
            }
            Ok((begun, booked, committed)) => match booked {
                // Postgres refused the statement, so its transaction rolled back (the
                // COMMIT answers ROLLBACK): a booking that does not fit, or a deadlock.
                // Each runs on its own, which tells its own outcome.
                Err(BookError::Postgres(error)) if error.as_db_error().is_some() => {
                    tracing::debug!(%error, bookings = stays.len(), "a batch did not book whole; booking one by one");
                    Together::OneByOne
                }
                Err(error) => Together::Uncertain(error.into()),
                Ok(outcomes) => match begun.and(committed) {
                    Ok(()) => Together::Committed(outcomes),
                    Err(error) => Together::Uncertain(error.into()),
                },
            },
        };
        telemetry::observe_transaction("book", started);
        result
    }
}

/// Closes a connection whose transaction outlived its deadline rather than giving it back to
/// the pool: no other booking then queues behind it, and a transaction that has not
/// reached its COMMIT is rolled back by the server once it finds its client gone. One
/// that commits all the same was answered 503 (uncertain) and its deductions given back:
/// it journaled its nights in the same transaction, so the reconciler's next pass puts
/// Redis right, Postgres' own capacity check bars any oversell meanwhile, and the guest's
/// retry with the same id answers what happened.
fn discard(db: deadpool_postgres::Object) {
    drop(deadpool_postgres::Object::take(db));
}

/// Sends a booking its answer; the stay when the answer is that it was created.
fn answer((booking, answer): Waiting, outcome: Result<Committed, BookingError>) -> Option<Stay> {
    let created = matches!(outcome, Ok(Committed::Created(_))).then(|| booking.stay);
    let _ = answer.send(outcome);
    created
}

/// A lane's drainer while it runs. Dropped by a panic's unwinding, it hands the lane
/// on: bookings queued behind the failed batch get a new drainer rather than waiting for
/// one that will never come, or the key leaves the map when none are queued. (A drainer
/// that returns has already removed its key, so then the drop does nothing.)
struct Lane {
    committer: Arc<GroupCommitter>,
    key: i64,
}

impl Drop for Lane {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        tracing::error!(
            lane = self.key,
            "a group-commit drainer panicked; restarting it"
        );
        // One lock for the look and the removal, so no booking can queue in between and
        // find the key present but no drainer coming.
        let queued = {
            let mut queues = self.committer.lock();
            match queues.get(&self.key) {
                Some(queue) if !queue.is_empty() => true,
                _ => {
                    queues.remove(&self.key);
                    false
                }
            }
        };
        if queued {
            self.committer.start_drainer(self.key);
        } else {
            self.committer.lock().remove(&self.key);
        }
    }
}

/// How a batch transaction ended.
enum Together {
    Committed(Vec<Committed>),
    /// Rolled back before its commit: each booking may safely run on its own.
    OneByOne,
    /// The commit failed or timed out: whether it happened is unknown.
    Uncertain(anyhow::Error),
}
