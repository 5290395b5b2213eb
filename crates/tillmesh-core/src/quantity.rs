//! Exact quantities: whole pieces (`2`) or weighed goods (`0.5` kg), in integer thousandths.
//!
//! Like money, a quantity is parsed from its decimal text, never through a float: `0.5` is
//! exactly 500 thousandths and `0.0005` is an error — except at the legacy edge, where a
//! client's doubles are rounded once to the thousandth ([`Quantity::parse_rounded`]). A line's
//! total is its unit price times its quantity, rounded once, half away from zero, to the cent
//! ([`Quantity::price`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::money::{Amount, MoneyError, Refusal, parse_scaled};

/// Thousandths in one unit (a piece, a kilogram).
pub const THOUSANDTHS_PER_UNIT: i64 = 1_000;

/// Why a text is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a finite decimal number.
    #[error("{text:?} is not a decimal quantity (expected e.g. 2 or 0.5)")]
    Invalid {
        /// The rejected text, cut to 40 characters.
        text: String,
    },
    /// More than three decimal places that are not zero (`0.0005`).
    #[error("{text:?} has more than three decimal places")]
    TooManyDecimals {
        /// The rejected text, cut to 40 characters.
        text: String,
    },
    /// Beyond what 64-bit thousandths hold.
    #[error("quantity out of range")]
    Overflow,
}

/// An exact quantity in thousandths of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(i64);

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity(0);

    /// `count` whole pieces (saturating far beyond any limit).
    pub const fn pieces(count: i64) -> Quantity {
        Quantity(count.saturating_mul(THOUSANDTHS_PER_UNIT))
    }

    /// A quantity of `thousandths` thousandths of a unit.
    pub const fn from_thousandths(thousandths: i64) -> Quantity {
        Quantity(thousandths)
    }

    /// The quantity in thousandths.
    pub const fn thousandths(self) -> i64 {
        self.0
    }

    /// Whole pieces, when the quantity has no fraction.
    pub const fn whole(self) -> Option<i64> {
        if self.0 % THOUSANDTHS_PER_UNIT == 0 { Some(self.0 / THOUSANDTHS_PER_UNIT) } else { None }
    }

    /// `unit_price × self`, rounded once, half away from zero, to the cent: exact for whole
    /// pieces.
    pub fn price(self, unit_price: Amount) -> Result<Amount, MoneyError> {
        unit_price.mul_ratio_round_half_up(self.0, THOUSANDTHS_PER_UNIT)
    }

    /// Parses a decimal text exactly (`2`, `0.5`, `1.250`, `"3"`): at most three decimal
    /// places may be non-zero.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        Quantity::parse_with(text, false)
    }

    /// Parses like [`Quantity::parse`] but rounds more than three decimal places to the
    /// thousandth, half away from zero, from the exact digits (a legacy client's doubles:
    /// `0.30000000000000004` → 0.3).
    pub fn parse_rounded(text: &str) -> Result<Quantity, QuantityError> {
        Quantity::parse_with(text, true)
    }

    fn parse_with(text: &str, round: bool) -> Result<Quantity, QuantityError> {
        let cut = || text.chars().take(40).collect();
        parse_scaled(text, 3, round).map(Quantity).map_err(|refusal| match refusal {
            Refusal::Invalid | Refusal::NotFinite => QuantityError::Invalid { text: cut() },
            Refusal::TooManyDecimals => QuantityError::TooManyDecimals { text: cut() },
            Refusal::Overflow => QuantityError::Overflow,
        })
    }

    /// Deserializes a JSON number or decimal string, rounding to the thousandth: for a legacy
    /// client's fields (`#[serde(deserialize_with = "Quantity::deserialize_rounded")]`).
    pub fn deserialize_rounded<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Quantity, D::Error> {
        Quantity::from_json(serde_json::Value::deserialize(deserializer)?, true)
            .map_err(serde::de::Error::custom)
    }

    fn from_json(value: serde_json::Value, round: bool) -> Result<Quantity, QuantityError> {
        match value {
            serde_json::Value::Number(number) => Quantity::parse_with(number.as_str(), round),
            serde_json::Value::String(text) => Quantity::parse_with(&text, round),
            other => Err(QuantityError::Invalid { text: other.to_string().chars().take(40).collect() }),
        }
    }
}

impl fmt::Display for Quantity {
    /// `2`, `0.5`, `1.25`, `0.001`: no trailing zeros, no point for whole pieces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per = THOUSANDTHS_PER_UNIT.unsigned_abs();
        let (whole, fraction) = (magnitude / per, magnitude % per);
        if fraction == 0 {
            return f.pad(&format!("{sign}{whole}"));
        }
        let fraction = format!("{fraction:03}");
        f.pad(&format!("{sign}{whole}.{}", fraction.trim_end_matches('0')))
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Quantity::parse(text)
    }
}

impl Serialize for Quantity {
    /// A JSON number written from its exact text (`2`, `0.5`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let number = serde_json::Number::from_str(&self.to_string()).map_err(serde::ser::Error::custom)?;
        number.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// Accepts a JSON number or a decimal string; both parsed exactly by [`Quantity::parse`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Quantity::from_json(serde_json::Value::deserialize(deserializer)?, false)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_is_parsed_exactly_and_written_back_the_same() {
        for (text, thousandths, shown) in [
            ("2", 2_000, "2"),
            ("0.5", 500, "0.5"),
            ("1.250", 1_250, "1.25"),
            ("0.001", 1, "0.001"),
            ("1e1", 10_000, "10"),
        ] {
            let quantity = Quantity::parse(text).expect(text);
            assert_eq!((quantity.thousandths(), quantity.to_string()), (thousandths, shown.to_string()));
        }
        assert!(matches!(Quantity::parse("0.0005"), Err(QuantityError::TooManyDecimals { .. })));
        for bad in ["", "abc", "NaN", "1.", "--1"] {
            assert!(matches!(Quantity::parse(bad), Err(QuantityError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn a_legacy_double_is_rounded_once_to_the_thousandth() {
        assert_eq!(Quantity::parse_rounded("0.30000000000000004"), Ok(Quantity::from_thousandths(300)));
        assert_eq!(Quantity::parse_rounded("0.0005"), Ok(Quantity::from_thousandths(1)));
        assert_eq!(Quantity::parse_rounded("2.4994999"), Ok(Quantity::from_thousandths(2_499)));
    }

    #[test]
    fn a_line_is_priced_once_half_away_from_zero() {
        let price = |quantity: &str, unit: &str| {
            Quantity::parse(quantity)
                .expect("quantity")
                .price(Amount::parse(unit).expect("unit"))
                .expect("price")
        };
        assert_eq!(price("3", "1.10"), Amount::from_minor(330));
        assert_eq!(price("0.5", "12.99"), Amount::from_minor(650));
        assert_eq!(price("0.333", "3.00"), Amount::from_minor(100));
        assert_eq!(price("1.005", "1.00"), Amount::from_minor(101));
        assert_eq!(Quantity::pieces(4).whole(), Some(4));
        assert_eq!(Quantity::from_thousandths(4_500).whole(), None);
    }

    #[test]
    fn json_numbers_and_strings_round_trip() {
        let quantity: Quantity = serde_json::from_str("0.25").expect("number");
        assert_eq!(serde_json::to_string(&quantity).expect("json"), "0.25");
        let quantity: Quantity = serde_json::from_str("\"3\"").expect("string");
        assert_eq!(serde_json::to_string(&quantity).expect("json"), "3");
        assert!(serde_json::from_str::<Quantity>("0.0001").is_err());
        assert!(serde_json::from_str::<Quantity>("true").is_err());
    }
}
