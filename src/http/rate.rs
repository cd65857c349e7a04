//! Rate limits per caller: a guest or member of staff by their token's `sub`, anyone
//! without a valid token by their address. Beyond `INNKEEPER_RATE_LIMIT` (a rate per
//! second and a burst), a request is answered 429 `rate_limited` with the seconds to wait.
//!
//! GCRA from the governor crate: one small state per caller, no timer, no lock shared by
//! callers. Keying by the verified `sub` means a client cannot spread itself over many
//! buckets by inventing subjects; invalid tokens fall back to the address, like no token.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::auth::{bearer_token, Authenticated};
use super::error::ApiError;
use super::AppState;
use crate::config::RateLimit;

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Subject(String),
    Address(IpAddr),
}

/// Callers whose state is indistinguishable from a fresh one are forgotten every this
/// many checks, so a flood of addresses cannot grow the map without bound.
const FORGET_EVERY: u64 = 10_000;

/// The limiter of one process.
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<Bucket>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl RateLimits {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limiter: RateLimiter::keyed(
                Quota::per_second(limit.per_second).allow_burst(limit.burst),
            ),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// `Ok` when `bucket`'s caller may go ahead; otherwise how many whole seconds to wait.
    fn check(&self, bucket: &Bucket) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(bucket).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Counts the request against its caller, or answers 429 when the caller is over. A caller
/// it authenticated is handed on to the handler, which then need not verify the token
/// again.
pub async fn limit_rate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(limits) = &state.rate_limits else {
        return next.run(request).await;
    };
    let principal = bearer_token(request.headers())
        .ok()
        .and_then(|token| state.auth.verify(token).ok());
    let bucket = match &principal {
        Some(principal) => Bucket::Subject(principal.sub.clone()),
        None => Bucket::Address(
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip()),
        ),
    };
    match limits.check(&bucket) {
        Ok(()) => {
            if let Some(principal) = principal {
                request.extensions_mut().insert(Authenticated(principal));
            }
            next.run(request).await
        }
        Err(seconds) => ApiError::RateLimited(seconds.max(1)).into_response(),
    }
}

/// The limiter, shared by every clone of the state.
pub fn limits(limit: Option<RateLimit>) -> Option<Arc<RateLimits>> {
    limit.map(|limit| Arc::new(RateLimits::new(limit)))
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn a_caller_past_its_burst_waits_and_others_do_not() {
        let limits = RateLimits::new(RateLimit {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        });
        let ada = Bucket::Subject("ada".into());
        assert_eq!(limits.check(&ada), Ok(()));
        assert_eq!(limits.check(&ada), Ok(()));
        assert_eq!(limits.check(&ada), Err(1));
        assert_eq!(limits.check(&Bucket::Subject("bob".into())), Ok(()));
        assert_eq!(
            limits.check(&Bucket::Address(IpAddr::V4(Ipv4Addr::LOCALHOST))),
            Ok(())
        );
    }
}
