//! Stay restrictions: the controls a hotel shapes stays with, per night of a room type, with
//! the usual channel-manager meaning.
//!
//! - `min_stay` and `max_stay` bind stays arriving on that night: a stay of fewer (more)
//!   nights may not start there.
//! - `closed_to_arrival`: no stay starts on that night.
//! - `closed_to_departure`: no stay ends on that date, that is, has it as its check-out.
//! - `stop_sell`: no stay includes that night.
//!
//! A stay is judged by the first restriction it breaks, in one order that every checker
//! shares (this module, `stay_restriction()` in migrations/V8, lua/reserve.lua): stop-sell
//! on the earliest night that has it, then closed to arrival, minimum stay and maximum
//! stay on the arrival night, then closed to departure on the check-out date.

use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use super::{InvalidField, NightRestrictions};

/// Longest minimum or maximum stay, in nights: past any stay a guest may book.
pub const MAX_STAY_RULE: i32 = 1000;

/// One restriction, by the name the API uses for it (`field` of a 422
/// `restriction_violated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    StopSell,
    ClosedToArrival,
    MinStay,
    MaxStay,
    ClosedToDeparture,
}

impl Restriction {
    /// In the order a stay is judged by.
    pub const ALL: [Restriction; 5] = [
        Restriction::StopSell,
        Restriction::ClosedToArrival,
        Restriction::MinStay,
        Restriction::MaxStay,
        Restriction::ClosedToDeparture,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Restriction::StopSell => "stop_sell",
            Restriction::ClosedToArrival => "closed_to_arrival",
            Restriction::MinStay => "min_stay",
            Restriction::MaxStay => "max_stay",
            Restriction::ClosedToDeparture => "closed_to_departure",
        }
    }

    /// From the name `book_stay()` answers with.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The code reserve.lua answers with (its header lists them).
    pub fn from_script_code(code: i64) -> Option<Self> {
        usize::try_from(code)
            .ok()
            .and_then(|code| code.checked_sub(1))
            .and_then(|index| Self::ALL.get(index).copied())
    }
}

/// The restrictions of one date, as the API shows and takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RestrictionDay {
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub min_stay: Option<i32>,
    pub max_stay: Option<i32>,
    pub closed_to_arrival: bool,
    pub closed_to_departure: bool,
    pub stop_sell: bool,
}

impl RestrictionDay {
    /// A date with nothing set.
    pub fn open(date: NaiveDate) -> Self {
        Self {
            date,
            ..Self::default()
        }
    }
}

/// A change of restrictions: a field left out keeps its value (`None`); a field sent sets
/// it (`Some(Some(value))`) or, sent as `null`, clears it (`Some(None)`; a flag then reads
/// false).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestrictionChange {
    pub min_stay: Option<Option<i32>>,
    pub max_stay: Option<Option<i32>>,
    pub closed_to_arrival: Option<Option<bool>>,
    pub closed_to_departure: Option<Option<bool>>,
    pub stop_sell: Option<Option<bool>>,
}

impl RestrictionChange {
    /// Stays are 1 to [`MAX_STAY_RULE`] nights, and a minimum above the maximum sent with
    /// it would close the night to every stay: a stop-sell says that plainly.
    pub fn check(&self) -> Result<(), InvalidField> {
        for (field, value) in [("min_stay", self.min_stay), ("max_stay", self.max_stay)] {
            if let Some(Some(nights)) = value {
                if !(1..=MAX_STAY_RULE).contains(&nights) {
                    return Err(InvalidField::new(
                        field,
                        format!("must be from 1 to {MAX_STAY_RULE} nights, or null to clear it"),
                    ));
                }
            }
        }
        if let (Some(Some(min)), Some(Some(max))) = (self.min_stay, self.max_stay) {
            if min > max {
                return Err(InvalidField::new(
                    "max_stay",
                    "must not be below min_stay: no stay could arrive (use stop_sell)",
                ));
            }
        }
        Ok(())
    }
}

/// What a stay breaks, judged on the restrictions its nights carry into Redis (one per
/// night, in date order; the last one's `departure_closed_after` closes the check-out).
pub fn broken_on_nights(
    check_in: NaiveDate,
    nights: &[NightRestrictions],
) -> Vec<(Restriction, NaiveDate)> {
    let check_out = check_in + Days::new(nights.len() as u64);
    broken_by(check_in, check_out, |date| {
        let index = (date - check_in).num_days();
        if date == check_out {
            let last = nights.last()?;
            return Some(RestrictionDay {
                closed_to_departure: last.departure_closed_after,
                ..RestrictionDay::open(date)
            });
        }
        let night = nights.get(usize::try_from(index).ok()?)?;
        Some(RestrictionDay {
            date,
            min_stay: night.min_stay,
            max_stay: night.max_stay,
            closed_to_arrival: night.closed_to_arrival,
            closed_to_departure: false,
            stop_sell: night.stop_sell,
        })
    })
}

/// What a stay breaks, first (by the shared order) to last, with the date each is set on.
/// `day` gives the restrictions of a date (`None`: nothing set), and is asked for every
/// night of the stay and for the check-out date.
pub fn broken_by(
    check_in: NaiveDate,
    check_out: NaiveDate,
    day: impl Fn(NaiveDate) -> Option<RestrictionDay>,
) -> Vec<(Restriction, NaiveDate)> {
    let nights = (check_out - check_in).num_days();
    let mut broken = Vec::new();
    let stop_sell = check_in
        .iter_days()
        .take_while(|night| *night < check_out)
        .find(|night| day(*night).is_some_and(|d| d.stop_sell));
    if let Some(night) = stop_sell {
        broken.push((Restriction::StopSell, night));
    }
    if let Some(arrival) = day(check_in) {
        if arrival.closed_to_arrival {
            broken.push((Restriction::ClosedToArrival, check_in));
        }
        if arrival.min_stay.is_some_and(|min| i64::from(min) > nights) {
            broken.push((Restriction::MinStay, check_in));
        }
        if arrival.max_stay.is_some_and(|max| i64::from(max) < nights) {
            broken.push((Restriction::MaxStay, check_in));
        }
    }
    if day(check_out).is_some_and(|d| d.closed_to_departure) {
        broken.push((Restriction::ClosedToDeparture, check_out));
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 12, day).unwrap()
    }

    #[test]
    fn each_restriction_binds_only_its_own_date() {
        let calendar =
            |restrict: RestrictionDay| move |d: NaiveDate| (d == restrict.date).then_some(restrict);
        let min3 = RestrictionDay {
            min_stay: Some(3),
            ..RestrictionDay::open(date(10))
        };
        // Arriving on the 10th for two nights breaks it; arriving the 9th does not.
        assert_eq!(
            broken_by(date(10), date(12), calendar(min3)),
            [(Restriction::MinStay, date(10))]
        );
        assert_eq!(broken_by(date(9), date(11), calendar(min3)), []);
        assert_eq!(broken_by(date(10), date(13), calendar(min3)), []);
        let ctd = RestrictionDay {
            closed_to_departure: true,
            ..RestrictionDay::open(date(12))
        };
        assert_eq!(
            broken_by(date(10), date(12), calendar(ctd)),
            [(Restriction::ClosedToDeparture, date(12))]
        );
        // The 12th as a night of the stay, not its check-out, is fine.
        assert_eq!(broken_by(date(10), date(13), calendar(ctd)), []);
        let stop = RestrictionDay {
            stop_sell: true,
            ..RestrictionDay::open(date(11))
        };
        assert_eq!(
            broken_by(date(10), date(13), calendar(stop)),
            [(Restriction::StopSell, date(11))]
        );
        // Checking out on a stop-sell date sells no night of it.
        assert_eq!(broken_by(date(10), date(11), calendar(stop)), []);
    }

    #[test]
    fn script_codes_follow_the_shared_order() {
        for (index, restriction) in Restriction::ALL.into_iter().enumerate() {
            assert_eq!(
                Restriction::from_script_code(index as i64 + 1),
                Some(restriction)
            );
            assert_eq!(
                Restriction::from_name(restriction.name()),
                Some(restriction)
            );
        }
        assert_eq!(Restriction::from_script_code(0), None);
        assert_eq!(Restriction::from_script_code(6), None);
    }
}
