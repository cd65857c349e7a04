//! The webhook receiver of `suite --webhook`: a local HTTP server subscribed to every
//! event, as a hotel's system would be. It verifies each delivery's Standard Webhooks
//! signature, as a receiver must, and counts the distinct events it heard and how long
//! after its commit each arrived. After a scenario, [`Receiver::settle`] waits until every
//! booking the scenario created has been heard of and reports the delivery as a row: what
//! arrived during the run, its lag, and how long the backlog took to drain.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use hyper::Method;

use crate::client::Conn;
use crate::stats::{nearest_rank_ms, Row};

use super::{Env, GENERATOR};

/// How long a backlog may take to drain after a scenario before the run fails.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

pub struct Receiver {
    heard: Arc<Heard>,
    /// The endpoint it subscribed, deleted by [`Receiver::unsubscribe`].
    endpoint_id: String,
}

struct Heard {
    secret: Mutex<Option<standardwebhooks::Webhook>>,
    inner: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    /// Every event id heard (a redelivery is counted once).
    ids: HashSet<String>,
    /// Each reservation.created event first heard: when it was committed and when it
    /// arrived. What the scenarios' 201s are compared with.
    created: Vec<(DateTime<Utc>, Instant)>,
    /// Per delivery: how long after the event's commit it arrived, in microseconds.
    lags_us: Vec<u32>,
    /// Deliveries whose signature did not verify, or whose body was not an event.
    bad: u64,
}

#[derive(serde::Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created_at: DateTime<Utc>,
}

impl Receiver {
    /// Starts the receiver and subscribes it to every event of every hotel.
    pub async fn subscribe(env: &Env) -> anyhow::Result<Self> {
        let heard = Arc::new(Heard {
            secret: Mutex::new(None),
            inner: Mutex::new(Tally::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(heard.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut conn = Conn::open(&env.target).await?;
        let endpoint = conn
            .expect(
                Method::POST,
                "/v1/webhook-endpoints",
                Some(&env.staff),
                Some(serde_json::json!({ "url": format!("http://{address}/hook") }).to_string()),
                201,
            )
            .await?;
        let secret = endpoint["secret"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("the new endpoint has no secret: {endpoint}"))?;
        *heard.secret.lock().unwrap() = Some(standardwebhooks::Webhook::new(secret)?);
        let endpoint_id = endpoint["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("the new endpoint has no id: {endpoint}"))?
            .to_owned();
        Ok(Self { heard, endpoint_id })
    }

    /// Deletes the endpoint, so that the runs after this one on the same data deliver
    /// nothing.
    pub async fn unsubscribe(self, env: &Env) -> anyhow::Result<()> {
        let mut conn = Conn::open(&env.target).await?;
        let path = format!("/v1/webhook-endpoints/{}", self.endpoint_id);
        conn.expect(Method::DELETE, &path, Some(&env.staff), None, 204)
            .await?;
        Ok(())
    }

    /// Bookings committed since `since` that were heard of, among those heard after the
    /// `from`th.
    fn created_since(&self, from: usize, since: DateTime<Utc>) -> usize {
        let tally = self.heard.inner.lock().unwrap();
        tally.created[from..]
            .iter()
            .filter(|(committed, _)| *committed >= since)
            .count()
    }

    /// Marks the start of a scenario: what was heard before it is not its.
    pub fn start(&self) -> Mark {
        let tally = self.heard.inner.lock().unwrap();
        Mark {
            created: tally.created.len(),
            lags: tally.lags_us.len(),
            at: Instant::now(),
        }
    }

    /// Waits until the `created` bookings of the scenario begun at `mark`, whose load ran
    /// for `seconds`, have all been heard of; the row of their delivery. Fails past
    /// [`DRAIN_DEADLINE`], or when a delivery did not verify.
    pub async fn settle(
        &self,
        env: &Env,
        scenario: &str,
        mark: Mark,
        seconds: f64,
        created: u64,
    ) -> anyhow::Result<Row> {
        // Its bookings are those committed once its load began: a booking its setup made
        // (the rush warms its stay with one) is not one of them.
        let (began, ended) = env
            .load_after(mark.at)
            .ok_or_else(|| anyhow::anyhow!("webhooks: the {scenario} sent no load"))?;
        let waited = Instant::now();
        while (self.created_since(mark.created, began) as u64) < created {
            if waited.elapsed() > DRAIN_DEADLINE {
                anyhow::bail!(
                    "webhooks: {} of {created} bookings heard of {}s after the {scenario}",
                    self.created_since(mark.created, began),
                    DRAIN_DEADLINE.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tally = self.heard.inner.lock().unwrap();
        if tally.bad > 0 {
            anyhow::bail!("webhooks: {} deliveries did not verify", tally.bad);
        }
        let arrivals: Vec<Instant> = tally.created[mark.created..]
            .iter()
            .filter(|(committed, _)| *committed >= began)
            .map(|(_, arrived)| *arrived)
            .collect();
        let heard_by_end = arrivals.iter().filter(|at| **at <= ended).count();
        let drain_s = arrivals.iter().max().map_or(0.0, |last| {
            last.saturating_duration_since(ended).as_secs_f64()
        });
        let mut lags = tally.lags_us[mark.lags..].to_vec();
        let p50 = nearest_rank_ms(&mut lags, 0.50);
        let p99 = nearest_rank_ms(&mut lags, 0.99);
        let max = lags.last().map_or(0.0, |us| f64::from(*us) / 1000.0);
        Ok(Row {
            scenario: format!("webhook deliveries during the {scenario}"),
            mode: env.mode.clone(),
            generator: GENERATOR.into(),
            unit: "bookings heard of/s".into(),
            throughput: heard_by_end as f64 / seconds.max(1e-9),
            // From an event's commit to its arrival.
            p50_ms: p50,
            p99_ms: p99,
            attempts: lags.len() as u64,
            elapsed_s: seconds,
            error_rate: 0.0,
            // A booking acknowledged whose event never came fails the wait above.
            oversell: 0,
            pg_xacts: 0,
            peak_rss_mib: 0.0,
            extra: BTreeMap::from([
                ("created".into(), created as f64),
                ("heard_by_end".into(), heard_by_end as f64),
                ("max_lag_ms".into(), max),
                ("drain_s".into(), drain_s),
            ]),
        })
    }
}

/// Where the receiver's counts stood when a scenario began.
pub struct Mark {
    created: usize,
    lags: usize,
    at: Instant,
}

async fn receive(State(heard): State<Arc<Heard>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (arrived, now) = (Utc::now(), Instant::now());
    let verified = heard
        .secret
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|signer| signer.verify(&body, &headers).is_ok());
    let event = serde_json::from_slice::<Event>(&body).ok();
    let mut tally = heard.inner.lock().unwrap();
    let Some(event) = event.filter(|_| verified) else {
        tally.bad += 1;
        return StatusCode::BAD_REQUEST;
    };
    let lag = (arrived - event.created_at).num_microseconds().unwrap_or(0);
    tally
        .lags_us
        .push(u32::try_from(lag.max(0)).unwrap_or(u32::MAX));
    if tally.ids.insert(event.id) && event.kind == "reservation.created" {
        tally.created.push((event.created_at, now));
    }
    StatusCode::NO_CONTENT
}
