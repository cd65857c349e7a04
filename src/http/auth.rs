//! Bearer-token authentication: who the caller of a request is.
//!
//! Tokens are HS256 JWTs with `sub`, `role` and `exp`, and optionally `iat` and `nbf`.
//! Only HS256 is accepted: a token that names another algorithm, `none` included, is
//! refused before its signature is read. A token not valid yet (`nbf`), or valid for longer
//! than the configured maximum (from its `iat`, or from now), is refused too.
//! Expiry is checked with no leeway against the injected [`Clock`], the same time every
//! other rule of the process reads, so a token is dead the second its `exp` passes on that
//! clock (and tests that move time move token expiry with it).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::AppState;
use crate::clock::Clock;
use crate::config::Secret;
use crate::domain::{Principal, Role};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
}

/// Signs and checks tokens with the configured secret, at the time of its clock.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    clock: Arc<dyn Clock>,
    max_ttl: Duration,
}

impl Auth {
    /// `max_ttl`: the longest a token may be valid for.
    pub fn new(secret: &Secret, clock: Arc<dyn Clock>, max_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is required here but it and `nbf` are compared below, against the clock:
        // jsonwebtoken would compare them with the system time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            clock,
            max_ttl,
        }
    }

    /// A token for `sub` in `role`, valid for `ttl` from the clock's now; `ttl` may not
    /// pass the maximum, since the token would then be refused.
    pub fn issue(&self, sub: &str, role: Role, ttl: Duration) -> anyhow::Result<String> {
        anyhow::ensure!(
            ttl <= self.max_ttl,
            "a token may be valid for at most {} seconds (INNKEEPER_MAX_TOKEN_TTL)",
            self.max_ttl.as_secs()
        );
        let now = self.clock.now().timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp: now + i64::try_from(ttl.as_secs())?,
            iat: Some(now),
            nbf: None,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The caller a bearer token stands for.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                ApiError::Unauthorized(match error.kind() {
                    ErrorKind::InvalidSignature => "the token's signature is not valid",
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                    _ => "the token is not valid",
                })
            })?;
        let now = self.clock.now().timestamp();
        let claims = &data.claims;
        if claims.exp < now {
            return Err(ApiError::Unauthorized("the token has expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(ApiError::Unauthorized("the token is not valid yet"));
        }
        let lifetime = claims
            .exp
            .saturating_sub(claims.iat.unwrap_or(now).min(now));
        if lifetime > i64::try_from(self.max_ttl.as_secs()).unwrap_or(i64::MAX) {
            return Err(ApiError::Unauthorized(
                "the token is valid for longer than this server allows",
            ));
        }
        if data.claims.sub.is_empty() {
            return Err(ApiError::Unauthorized("the token's subject is empty"));
        }
        Ok(Principal {
            sub: data.claims.sub,
            role: data.claims.role,
        })
    }
}

/// Any authenticated caller, staff or guest.
pub struct Caller(pub Principal);

/// An authenticated member of staff.
pub struct Staff(pub Principal);

/// The caller a request was already authenticated as, earlier in its handling (by the
/// rate limit), so that its token is verified once.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// The bearer token of a request, or why there is none.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers.get(AUTHORIZATION).ok_or(ApiError::Unauthorized(
        "an Authorization: Bearer token is required",
    ))?;
    header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Authenticated(principal)) = parts.extensions.get::<Authenticated>() {
            return Ok(Caller(principal.clone()));
        }
        state.auth.verify(bearer_token(&parts.headers)?).map(Caller)
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        if principal.is_staff() {
            Ok(Staff(principal))
        } else {
            Err(ApiError::Forbidden(
                "this operation is for hotel staff only",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use chrono::{DateTime, TimeZone, Utc};

    fn clock_at(now: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock::new(now))
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn auth(clock: Arc<ManualClock>) -> Auth {
        Auth::new(&Secret::new("test-secret-of-thirty-two-bytes!"), clock, DAY)
    }

    /// A token signed with the test secret over hand-written claims.
    fn signed(claims: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::from_str::<serde_json::Value>(claims).unwrap(),
            &EncodingKey::from_secret(b"test-secret-of-thirty-two-bytes!"),
        )
        .unwrap()
    }

    #[test]
    fn tokens_not_valid_yet_are_refused() {
        let now = Utc::now();
        let auth = auth(clock_at(now));
        let later = now.timestamp() + 60;
        let token = signed(&format!(
            r#"{{"sub":"a","role":"guest","exp":{},"nbf":{later}}}"#,
            later + 60
        ));
        assert_eq!(
            auth.verify(&token).unwrap_err().to_string(),
            "the token is not valid yet"
        );
        let token = signed(&format!(
            r#"{{"sub":"a","role":"guest","exp":{},"nbf":{}}}"#,
            later + 60,
            now.timestamp()
        ));
        assert!(auth.verify(&token).is_ok());
    }

    #[test]
    fn tokens_living_past_the_maximum_are_refused() {
        let now = Utc::now();
        let auth = auth(clock_at(now));
        let year_3000 = 32_503_680_000_i64;
        for claims in [
            format!(r#"{{"sub":"a","role":"staff","exp":{year_3000}}}"#),
            format!(
                r#"{{"sub":"a","role":"staff","exp":{},"iat":{}}}"#,
                now.timestamp() + 3600,
                now.timestamp() - 2 * 86_400
            ),
        ] {
            let error = auth.verify(&signed(&claims)).unwrap_err();
            assert_eq!(error.code(), "unauthorized", "{claims}");
        }
        assert!(auth
            .issue("a", Role::Staff, DAY + Duration::from_secs(1))
            .is_err());
        let token = auth.issue("a", Role::Staff, DAY).unwrap();
        assert!(auth.verify(&token).is_ok());
    }

    #[test]
    fn issued_tokens_verify() {
        let auth = auth(clock_at(Utc::now()));
        let token = auth
            .issue("alice", Role::Guest, Duration::from_secs(60))
            .unwrap();
        let principal = auth.verify(&token).unwrap();
        assert_eq!(principal.sub, "alice");
        assert_eq!(principal.role, Role::Guest);
    }

    /// Expiry is read from the injected clock, not the machine's: a token issued at the
    /// clock's 23:30 of a day long past is still valid on that clock, whatever the hour
    /// of the machine running the test, and dies the second after its `exp` on it.
    #[test]
    fn expiry_follows_the_injected_clock() {
        let late = Utc.with_ymd_and_hms(2031, 3, 14, 23, 30, 0).unwrap();
        let clock = clock_at(late);
        let auth = auth(clock.clone());
        let token = auth
            .issue("alice", Role::Staff, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(auth.verify(&token).unwrap().sub, "alice");
        clock.advance(chrono::Duration::seconds(3600));
        assert!(auth.verify(&token).is_ok(), "valid through its exp second");
        clock.advance(chrono::Duration::seconds(1));
        let error = auth.verify(&token).unwrap_err();
        assert_eq!(error.code(), "unauthorized");
        assert_eq!(error.to_string(), "the token has expired");
    }

    #[test]
    fn expired_tokens_are_refused() {
        let clock = clock_at(Utc::now() - chrono::Duration::hours(1));
        let token = auth(clock)
            .issue("alice", Role::Staff, Duration::from_secs(60))
            .unwrap();
        let verifier = auth(clock_at(Utc::now()));
        assert_eq!(verifier.verify(&token).unwrap_err().code(), "unauthorized");
    }

    #[test]
    fn another_secret_is_refused() {
        let clock = clock_at(Utc::now());
        let token = Auth::new(
            &Secret::new("another-secret-of-thirty-two-b!!"),
            clock.clone(),
            DAY,
        )
        .issue("mallory", Role::Staff, Duration::from_secs(60))
        .unwrap();
        assert_eq!(
            auth(clock).verify(&token).unwrap_err().code(),
            "unauthorized"
        );
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let exp = Utc::now().timestamp() + 3600;
        let claims =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"mallory","role":"staff","exp":{exp}}}"#));
        let auth = auth(clock_at(Utc::now()));
        for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            assert_eq!(auth.verify(&token).unwrap_err().code(), "unauthorized");
        }
    }
}
