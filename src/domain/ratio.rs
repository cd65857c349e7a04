//! The overbooking ratio, held as whole basis points.
//!
//! Capacity is `floor(total_inventory * ratio)`. Doing that in floating point gets it wrong
//! at the edges (`100 * 1.15` is `114.999…`), and Postgres, Lua and Rust must all agree on
//! every night, so the ratio lives as an integer number of basis points and capacity is an
//! integer division everywhere.

use super::InvalidField;

/// A hotel's overbooking ratio in `[1.0, 1.5]`, at most four decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OverbookingRatio(u32);

impl OverbookingRatio {
    const SCALE: u32 = 10_000;
    const MIN: u32 = 10_000;
    const MAX: u32 = 15_000;

    /// API.md's default, 1.10.
    pub const DEFAULT: Self = Self(11_000);

    pub fn parse(value: f64) -> Result<Self, InvalidField> {
        let invalid = || {
            InvalidField::new(
                "overbooking_ratio",
                "must be a number from 1.0 to 1.5 with at most four decimal places",
            )
        };
        if !value.is_finite() {
            return Err(invalid());
        }
        let scaled = value * f64::from(Self::SCALE);
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 {
            return Err(invalid());
        }
        Self::from_basis_points(rounded as i64).ok_or_else(invalid)
    }

    /// For values read back from Postgres, where the CHECK already holds the range.
    pub fn from_basis_points(bp: i64) -> Option<Self> {
        (i64::from(Self::MIN)..=i64::from(Self::MAX))
            .contains(&bp)
            .then_some(Self(bp as u32))
    }

    pub fn basis_points(self) -> i32 {
        self.0 as i32
    }

    /// `floor(total_inventory * ratio)`, the rooms a night may hold.
    pub fn capacity(self, total_inventory: i32) -> i32 {
        (i64::from(total_inventory) * i64::from(self.0) / i64::from(Self::SCALE)) as i32
    }
}

/// Shown as the number it was given as (1.1, not 11000): exact, since every ratio has at
/// most four decimal places.
impl serde::Serialize for OverbookingRatio {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(f64::from(self.0) / f64::from(Self::SCALE))
    }
}

impl Default for OverbookingRatio {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn capacity_floors_exactly() {
        let ratio = OverbookingRatio::parse(1.15).unwrap();
        assert_eq!(ratio.capacity(100), 115);
        assert_eq!(OverbookingRatio::DEFAULT.capacity(10), 11);
        assert_eq!(OverbookingRatio::DEFAULT.capacity(9), 9);
        assert_eq!(OverbookingRatio::parse(1.0).unwrap().capacity(7), 7);
        assert_eq!(OverbookingRatio::parse(1.5).unwrap().capacity(7), 10);
    }

    #[test]
    fn a_ratio_shows_as_its_decimal_number() {
        let ratio = OverbookingRatio::parse(1.1234).unwrap();
        assert_eq!(serde_json::to_string(&ratio).unwrap(), "1.1234");
        assert_eq!(
            serde_json::to_string(&OverbookingRatio::DEFAULT).unwrap(),
            "1.1"
        );
    }

    #[test]
    fn out_of_range_and_too_precise_are_refused() {
        for bad in [0.99, 1.51, -1.0, f64::NAN, f64::INFINITY, 1.00001] {
            let err = OverbookingRatio::parse(bad).unwrap_err();
            assert_eq!(err.field, "overbooking_ratio");
        }
    }

    proptest! {
        #[test]
        fn capacity_is_the_floor_of_the_exact_product(bp in 10_000i64..=15_000, total in 0i32..100_000) {
            let ratio = OverbookingRatio::from_basis_points(bp).unwrap();
            let capacity = ratio.capacity(total);
            // capacity * 10000 <= total * bp < (capacity + 1) * 10000
            prop_assert!(i64::from(capacity) * 10_000 <= i64::from(total) * bp);
            prop_assert!(i64::from(total) * bp < (i64::from(capacity) + 1) * 10_000);
            prop_assert!(capacity >= total);
        }

        #[test]
        fn four_decimal_ratios_round_trip(bp in 10_000u32..=15_000) {
            let value = f64::from(bp) / 10_000.0;
            prop_assert_eq!(OverbookingRatio::parse(value).unwrap().basis_points(), bp as i32);
        }
    }
}
