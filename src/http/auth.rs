//! Bearer-token authentication and the two roles of API.md.
//!
//! Tokens are HS256 JWTs with `sub`, `role` and `exp`. Only HS256 is accepted: a token
//! that names another algorithm, `none` included, is refused before its signature is read.
//! Expiry is checked with no leeway, so a token is dead the second its `exp` passes.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::AppState;
use crate::config::Secret;

/// Who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Hotel staff: every catalog, inventory and rate write, any reservation, admin.
    Staff,
    /// A guest: books, reads and cancels their own reservations.
    Guest,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    exp: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub role: Role,
}

impl Principal {
    pub fn is_staff(&self) -> bool {
        self.role == Role::Staff
    }
}

/// Signs and checks tokens with the configured secret.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Auth {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// A token for `sub` in `role`, valid for `ttl` from `now`.
    pub fn issue(
        &self,
        sub: &str,
        role: Role,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp: now.timestamp() + i64::try_from(ttl.as_secs())?,
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
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::InvalidSignature => "the token's signature is not valid",
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                    _ => "the token is not valid",
                })
            })?;
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "an Authorization: Bearer token is required",
            ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ))?;
        state.auth.verify(token).map(Caller)
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn auth() -> Auth {
        Auth::new(&Secret::new("test-secret"))
    }

    #[test]
    fn issued_tokens_verify() {
        let auth = auth();
        let token = auth
            .issue("alice", Role::Guest, Duration::from_secs(60), Utc::now())
            .unwrap();
        let principal = auth.verify(&token).unwrap();
        assert_eq!(principal.sub, "alice");
        assert_eq!(principal.role, Role::Guest);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let auth = auth();
        let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
        let token = auth
            .issue("alice", Role::Staff, Duration::from_secs(60), an_hour_ago)
            .unwrap();
        assert_eq!(auth.verify(&token).unwrap_err().code(), "unauthorized");
    }

    #[test]
    fn another_secret_is_refused() {
        let token = Auth::new(&Secret::new("other"))
            .issue("mallory", Role::Staff, Duration::from_secs(60), Utc::now())
            .unwrap();
        assert_eq!(auth().verify(&token).unwrap_err().code(), "unauthorized");
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let exp = Utc::now().timestamp() + 3600;
        let claims =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"mallory","role":"staff","exp":{exp}}}"#));
        for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            assert_eq!(auth().verify(&token).unwrap_err().code(), "unauthorized");
        }
    }
}
