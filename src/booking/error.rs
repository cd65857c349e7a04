//! The one error type of the booking layer, and the single place where Postgres errors
//! become answers: constraint violations turn into conflicts and validation failures here,
//! and nowhere else.

use tokio_postgres::error::SqlState;

use crate::domain::{InvalidField, Restriction};
use crate::inventory::CacheError;
use crate::store::reservations::BookError;

/// Why a booking, lifecycle or catalog call did not do what it was asked. `http` maps each
/// variant to its problem+json answer.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// A value the database requires was not given (a new night without a rate).
    #[error("{0} is required")]
    Required(String),
    /// A value the database refused as data (SQLSTATE class 22: out of range, malformed):
    /// the request's fault, whatever slipped past the checks before it.
    #[error("a value of the request is out of range or malformed")]
    Malformed,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not enough rooms are left on at least one night of the stay")]
    SoldOut,
    #[error("this guest already holds {0} pending reservations, the most allowed; confirm or cancel one first")]
    HoldLimit(u32),
    /// The stay breaks a restriction the hotel set on that date.
    #[error("the stay breaks the {} restriction set on {night}", restriction.name())]
    RestrictionViolated {
        restriction: Restriction,
        night: chrono::NaiveDate,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("a request with this reservation_id is still being processed; retry shortly")]
    RequestInProgress,
    #[error("this reservation_id was already used with a different request body")]
    IdempotencyConflict,
    #[error("{0} is unavailable; retry shortly")]
    Unavailable(&'static str),
    /// Too much work is queued already: answered at once rather than queued.
    #[error("the booking queue is full; retry shortly")]
    Overloaded,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl BookingError {
    /// Whether a booking refused with this error certainly stored nothing: a refusal the
    /// shard decided, unlike a failure after which the commit may still have happened.
    pub fn stored_nothing(&self) -> bool {
        matches!(
            self,
            Self::SoldOut | Self::HoldLimit(_) | Self::RestrictionViolated { .. }
        )
    }
}

impl From<tokio_postgres::Error> for BookingError {
    /// Constraint names are matched here and nowhere else; any other database failure is
    /// either "unavailable" (the server is down, slow or restarting, which a retry may
    /// cure) or internal.
    fn from(error: tokio_postgres::Error) -> Self {
        let Some(db) = error.as_db_error() else {
            // No server error: the connection broke, the statement timed out client-side,
            // or a column did not convert (a corrupt row).
            return if is_conversion(&error) {
                Self::Internal(error.into())
            } else {
                Self::Unavailable("the database")
            };
        };
        let constraint = db.constraint().unwrap_or_default();
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            return match constraint {
                "rooms_hotel_id_number_key" => {
                    Self::Conflict("a room with this number already exists in the hotel".into())
                }
                _ => Self::Conflict("this resource already exists".into()),
            };
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return match constraint {
                "rooms_room_type_fkey" => Self::Conflict(
                    "the room type still has rooms; delete or move them first".into(),
                ),
                _ => Self::Conflict("the resource is still referenced".into()),
            };
        }
        if *code == SqlState::CHECK_VIOLATION && constraint == "inventory_capacity_holds" {
            return Self::Conflict(
                "the sellable capacity would fall below the rooms already reserved".into(),
            );
        }
        if *code == SqlState::NOT_NULL_VIOLATION {
            return Self::Required(db.column().unwrap_or("a field").to_owned());
        }
        if code.code().starts_with("22") {
            return Self::Malformed;
        }
        // A deadlock or serialization failure rolled the transaction back whole: a retry
        // may well succeed, so it is "unavailable, retry", not an internal error.
        if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::QUERY_CANCELED
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || code.code().starts_with("08")
        {
            return Self::Unavailable("the database");
        }
        Self::Internal(error.into())
    }
}

/// Whether a client-side error is a column that did not convert into its domain type.
/// tokio-postgres exposes no kind for it, only its message.
fn is_conversion(error: &tokio_postgres::Error) -> bool {
    error.to_string().starts_with("error deserializing column")
}

impl From<deadpool_postgres::PoolError> for BookingError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            _ => Self::Unavailable("the database"),
        }
    }
}

impl From<BookError> for BookingError {
    fn from(error: BookError) -> Self {
        match error {
            BookError::Postgres(error) => error.into(),
            BookError::Outcome(_) => Self::Internal(error.into()),
        }
    }
}

impl From<CacheError> for BookingError {
    fn from(_: CacheError) -> Self {
        Self::Unavailable("Redis")
    }
}
