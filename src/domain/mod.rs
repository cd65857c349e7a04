//! The hotel's own words, as types: a stay, a reservation and its status, a night, the
//! overbooking ratio, who is asking. Request values parse into them once, at the edge, so
//! the rest of the code never sees an out-of-range ratio, an inverted stay or an unknown
//! currency.
//!
//! The bottom layer: it imports no other module of the crate.

mod events;
mod hotel;
mod night;
mod principal;
mod ratio;
mod reservation;
mod restrictions;
mod stay;

pub use events::{EventType, Payment, PaymentEventType, PaymentStatus, WebhookUrl};
pub use hotel::{CurrencyCode, HotelTimezone};
pub use night::{InventoryDay, Night, NightRestrictions};
pub use principal::{Principal, Role};
pub use ratio::OverbookingRatio;
pub use reservation::{
    Ending, NewReservation, Reservation, ReservationId, ReservationStatus, Stay,
};
pub use restrictions::{
    broken_by, broken_on_nights, Restriction, RestrictionChange, RestrictionDay, MAX_STAY_RULE,
};
pub use stay::{BookingLimits, NightRange, RoomCount, StayDates, StayRules, FIRST_DATE, LAST_DATE};

/// A value that failed to parse, naming the request field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// A required, non-blank text field of at most `max_chars` characters, trimmed.
pub fn required_text(
    field: &'static str,
    value: &str,
    max_chars: usize,
) -> Result<String, InvalidField> {
    let trimmed = plain_text(field, value.trim(), max_chars)?;
    if trimmed.is_empty() {
        return Err(InvalidField::new(field, "must not be blank"));
    }
    Ok(trimmed.to_owned())
}

/// Text of at most `max_chars` characters with no control characters: a NUL byte cannot
/// be stored in Postgres text at all, and the others have no place in a hotel's names,
/// addresses or descriptions (or in the log lines that quote them).
pub fn plain_text<'a>(
    field: &'static str,
    value: &'a str,
    max_chars: usize,
) -> Result<&'a str, InvalidField> {
    if value.chars().any(char::is_control) {
        return Err(InvalidField::new(
            field,
            "must not contain control characters",
        ));
    }
    if value.chars().count() > max_chars {
        return Err(InvalidField::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_characters_are_refused() {
        for bad in ["Ritz\0", "Ri\ntz", "\u{7f}", "\u{1b}[31m"] {
            assert_eq!(required_text("name", bad, 10).unwrap_err().field, "name");
            assert_eq!(plain_text("city", bad, 10).unwrap_err().field, "city");
        }
        assert_eq!(plain_text("city", "", 10).unwrap(), "");
        assert_eq!(plain_text("city", "Zürich", 10).unwrap(), "Zürich");
    }

    #[test]
    fn blank_and_long_text_is_refused() {
        assert_eq!(required_text("name", "  Ritz ", 10).unwrap(), "Ritz");
        assert_eq!(required_text("name", "   ", 10).unwrap_err().field, "name");
        assert_eq!(
            required_text("name", "abcdefghijk", 10).unwrap_err().field,
            "name"
        );
    }

    proptest! {
        #[test]
        fn accepted_text_is_trimmed_and_bounded(s in "\\PC{0,30}|[\\x00-\\x1f]{0,3}[a-z]{0,5}") {
            if let Ok(text) = required_text("name", &s, 20) {
                prop_assert!(!text.is_empty());
                prop_assert!(text.chars().count() <= 20);
                prop_assert!(!text.contains('\0'));
                prop_assert_eq!(text.as_str(), s.trim());
            }
        }
    }
}
