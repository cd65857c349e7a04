//! Hotel attributes that must be valid before they are stored: its currency and timezone.

use chrono::{DateTime, NaiveDate, Utc};

use super::InvalidField;

/// An ISO 4217 alphabetic code: three upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidField::new(
                "currency",
                "must be an ISO 4217 code of three upper-case letters, such as EUR",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for CurrencyCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Default for CurrencyCode {
    fn default() -> Self {
        Self("USD".to_owned())
    }
}

/// An IANA timezone name. A stay's first night must not be in the past *where the hotel
/// is*, so "today" is always asked of the hotel's timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotelTimezone(chrono_tz::Tz);

impl HotelTimezone {
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        value.parse().map(Self).map_err(|_| {
            InvalidField::new(
                "timezone",
                "must be an IANA timezone name, such as Europe/Paris",
            )
        })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The hotel's calendar date at the instant `now`.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.0).date_naive()
    }
}

impl serde::Serialize for HotelTimezone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl Default for HotelTimezone {
    fn default() -> Self {
        Self(chrono_tz::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn currency_codes() {
        assert_eq!(CurrencyCode::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["eur", "EURO", "E1R", "", "€"] {
            assert_eq!(CurrencyCode::parse(bad).unwrap_err().field, "currency");
        }
    }

    #[test]
    fn today_depends_on_the_hotel() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 23, 30, 0).unwrap();
        let tokyo = HotelTimezone::parse("Asia/Tokyo").unwrap();
        let lima = HotelTimezone::parse("America/Lima").unwrap();
        assert_eq!(
            tokyo.today(now),
            NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()
        );
        assert_eq!(
            lima.today(now),
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
        );
        assert_eq!(
            HotelTimezone::parse("Mars/Olympus").unwrap_err().field,
            "timezone"
        );
    }

    proptest! {
        #[test]
        fn only_three_upper_case_letters_are_currencies(s in "\\PC{0,5}") {
            let valid = s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase());
            prop_assert_eq!(CurrencyCode::parse(&s).is_ok(), valid);
        }
    }
}
