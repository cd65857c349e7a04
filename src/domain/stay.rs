//! Stays, night ranges and room counts.
//!
//! A stay is the nights `[check_in, check_out)`: a guest arriving on the 1st and leaving on
//! the 3rd sleeps the nights of the 1st and the 2nd, and the 3rd is free for the next guest.

use chrono::{Days, NaiveDate};

use super::InvalidField;

/// Booking rules from API.md that operators may tune (see `config` for their variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingLimits {
    /// The longest stay, in nights: 30 by default.
    pub max_nights: u32,
    /// The most rooms one reservation takes on each night: 10 by default.
    pub max_rooms: u32,
    /// How many days ahead `check_in` may be: 365 by default.
    pub horizon_days: u32,
}

impl Default for BookingLimits {
    fn default() -> Self {
        Self {
            max_nights: 30,
            max_rooms: 10,
            horizon_days: 365,
        }
    }
}

/// The calendar innkeeper accepts: every date it stores and every key it derives from a
/// date (a night's expiry is two days later) must stay far inside what chrono and
/// Postgres can represent, and no hotel sells a night outside it.
pub const FIRST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(date) => date,
    None => panic!("a valid date"),
};
pub const LAST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(date) => date,
    None => panic!("a valid date"),
};

/// A non-empty, half-open range of nights `[from, to)`, as used by inventory writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NightRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl NightRange {
    /// Longest range one inventory call may touch: two booking horizons, so staff can load
    /// a year at once without one request writing an unbounded number of rows.
    pub const MAX_NIGHTS: i64 = 731;

    /// `from_field` and `to_field` name the request fields, which differ between endpoints
    /// (`from`/`to` for inventory, `check_in`/`check_out` for stays).
    pub fn parse(
        from: NaiveDate,
        to: NaiveDate,
        from_field: &'static str,
        to_field: &'static str,
    ) -> Result<Self, InvalidField> {
        for (date, field) in [(from, from_field), (to, to_field)] {
            if !(FIRST_DATE..=LAST_DATE).contains(&date) {
                return Err(InvalidField::new(
                    field,
                    format!("must be a date from {FIRST_DATE} to {LAST_DATE}"),
                ));
            }
        }
        if to <= from {
            return Err(InvalidField::new(
                to_field,
                format!("must be after {from_field}: the range [{from_field}, {to_field}) holds no night"),
            ));
        }
        let range = Self { from, to };
        if range.nights() > Self::MAX_NIGHTS {
            return Err(InvalidField::new(
                to_field,
                format!("the range may hold at most {} nights", Self::MAX_NIGHTS),
            ));
        }
        Ok(range)
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }

    pub fn nights(&self) -> i64 {
        (self.to - self.from).num_days()
    }

    /// Every night in the range, first to last.
    pub fn iter(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from
            .iter_days()
            .take_while(move |night| *night < self.to)
    }
}

/// The booking limits of API.md as seen on one day in one hotel.
#[derive(Debug, Clone, Copy)]
pub struct StayRules {
    pub limits: BookingLimits,
    /// Today in the hotel's timezone.
    pub today: NaiveDate,
}

/// The dates of a stay that a guest may book today: starts today or later, within the horizon, and lasts
/// between one night and the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StayDates(NightRange);

impl StayDates {
    pub fn parse(
        check_in: NaiveDate,
        check_out: NaiveDate,
        rules: &StayRules,
    ) -> Result<Self, InvalidField> {
        if check_in < rules.today {
            return Err(InvalidField::new(
                "check_in",
                format!(
                    "must be today ({}) or later in the hotel's timezone",
                    rules.today
                ),
            ));
        }
        let horizon = rules.today + Days::new(u64::from(rules.limits.horizon_days));
        if check_in > horizon {
            return Err(InvalidField::new(
                "check_in",
                format!("must be at most {} days ahead", rules.limits.horizon_days),
            ));
        }
        if check_out <= check_in {
            return Err(InvalidField::new("check_out", "must be after check_in"));
        }
        let range = NightRange {
            from: check_in,
            to: check_out,
        };
        if range.nights() > i64::from(rules.limits.max_nights) {
            return Err(InvalidField::new(
                "check_out",
                format!("a stay lasts at most {} nights", rules.limits.max_nights),
            ));
        }
        Ok(Self(range))
    }

    pub fn check_in(&self) -> NaiveDate {
        self.0.from
    }

    pub fn check_out(&self) -> NaiveDate {
        self.0.to
    }

    pub fn nights(&self) -> i64 {
        self.0.nights()
    }

    pub fn range(&self) -> NightRange {
        self.0
    }
}

/// How many rooms of one room type a reservation takes on each night.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoomCount(u32);

impl RoomCount {
    pub fn parse(value: i64, limits: &BookingLimits) -> Result<Self, InvalidField> {
        if (1..=i64::from(limits.max_rooms)).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(InvalidField::new(
                "rooms",
                format!("must be from 1 to {}", limits.max_rooms),
            ))
        }
    }

    pub fn get(self) -> i32 {
        self.0 as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + Days::new(n)
    }

    fn rules() -> StayRules {
        StayRules {
            limits: BookingLimits::default(),
            today: day(0),
        }
    }

    #[test]
    fn a_stay_is_half_open() {
        let stay = StayDates::parse(day(1), day(3), &rules()).unwrap();
        assert_eq!(stay.nights(), 2);
        assert_eq!(
            stay.range().iter().collect::<Vec<_>>(),
            vec![day(1), day(2)]
        );
    }

    #[test]
    fn stays_outside_the_limits_name_their_field() {
        let yesterday = day(0) - Days::new(1);
        assert_eq!(
            StayDates::parse(yesterday, day(1), &rules())
                .unwrap_err()
                .field,
            "check_in"
        );
        assert_eq!(
            StayDates::parse(day(366), day(367), &rules())
                .unwrap_err()
                .field,
            "check_in"
        );
        assert_eq!(
            StayDates::parse(day(2), day(2), &rules())
                .unwrap_err()
                .field,
            "check_out"
        );
        assert_eq!(
            StayDates::parse(day(3), day(2), &rules())
                .unwrap_err()
                .field,
            "check_out"
        );
        assert_eq!(
            StayDates::parse(day(0), day(31), &rules())
                .unwrap_err()
                .field,
            "check_out"
        );
        assert!(StayDates::parse(day(0), day(30), &rules()).is_ok());
        assert!(StayDates::parse(day(365), day(366), &rules()).is_ok());
    }

    #[test]
    fn room_counts() {
        let limits = BookingLimits::default();
        assert_eq!(RoomCount::parse(10, &limits).unwrap().get(), 10);
        for bad in [0, -1, 11] {
            assert_eq!(RoomCount::parse(bad, &limits).unwrap_err().field, "rooms");
        }
    }

    #[test]
    fn dates_outside_the_calendar_are_refused() {
        let far = NaiveDate::from_ymd_opt(262_142, 12, 30).unwrap();
        let before = NaiveDate::from_ymd_opt(-262_143, 1, 1).unwrap();
        assert_eq!(
            NightRange::parse(day(0), far, "from", "to")
                .unwrap_err()
                .field,
            "to"
        );
        assert_eq!(
            NightRange::parse(before, day(0), "from", "to")
                .unwrap_err()
                .field,
            "from"
        );
        assert!(NightRange::parse(LAST_DATE - Days::new(1), LAST_DATE, "from", "to").is_ok());
    }

    #[test]
    fn inverted_ranges_are_refused() {
        assert_eq!(
            NightRange::parse(day(2), day(1), "from", "to")
                .unwrap_err()
                .field,
            "to"
        );
        assert_eq!(
            NightRange::parse(day(0), day(800), "from", "to")
                .unwrap_err()
                .field,
            "to"
        );
    }

    proptest! {
        #[test]
        fn accepted_stays_respect_every_limit(start in 0u64..400, len in 0u64..40) {
            let rules = rules();
            match StayDates::parse(day(start), day(start + len), &rules) {
                Ok(stay) => {
                    prop_assert!(stay.check_in() >= rules.today);
                    prop_assert!(stay.nights() >= 1 && stay.nights() <= 30);
                    prop_assert!(start <= 365);
                    prop_assert_eq!(stay.range().iter().count() as i64, stay.nights());
                }
                Err(_) => prop_assert!(start > 365 || len == 0 || len > 30),
            }
        }
    }
}
