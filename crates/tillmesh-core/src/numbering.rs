//! Order numbers that never collide, even with every till offline: `<till code>-<sequence>`.
//!
//! Till codes are unique within a shop (the roster guarantees it) and each till counts its own
//! sequence, so two tills can never produce the same number.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::text::TextError;

/// Longest till code.
pub const TILL_CODE_CHARS_MAX: usize = 8;

/// A till's short code within its shop: 1–8 upper-case letters or digits, starting with a letter
/// (`A`, `B`, `BAR2`). Lower case is accepted and stored upper case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TillCode(String);

impl TillCode {
    /// Parses a till code.
    pub fn parse(code: &str) -> Result<TillCode, TextError> {
        let upper = code.to_ascii_uppercase();
        let well_formed = !upper.is_empty()
            && upper.len() <= TILL_CODE_CHARS_MAX
            && upper.starts_with(|c: char| c.is_ascii_uppercase())
            && upper.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if well_formed {
            Ok(TillCode(upper))
        } else {
            Err(TextError::Format {
                field: "tillCode",
                expected: "1-8 letters or digits, starting with a letter",
            })
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The order number with sequence `sequence` on this till.
    pub fn order_number(&self, sequence: u64) -> OrderNumber {
        OrderNumber { till: self.clone(), sequence }
    }
}

impl fmt::Display for TillCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for TillCode {
    type Err = TextError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        TillCode::parse(code)
    }
}

/// An order number: the till's code and that till's sequence, `A-17`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderNumber {
    /// The till that numbered the order.
    pub till: TillCode,
    /// That till's count, from 1.
    pub sequence: u64,
}

impl fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}-{}", self.till, self.sequence))
    }
}

impl FromStr for OrderNumber {
    type Err = TextError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error =
            || TextError::Format { field: "orderNumber", expected: "<till code>-<sequence>, e.g. A-17" };
        let (code, sequence) = text.split_once('-').ok_or_else(error)?;
        let till = TillCode::parse(code).map_err(|_| error())?;
        if sequence.is_empty() || sequence.starts_with('0') || !sequence.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        let sequence = sequence.parse().map_err(|_| error())?;
        Ok(OrderNumber { till, sequence })
    }
}

impl Serialize for TillCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TillCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TillCode::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_and_prints() {
        let number: OrderNumber = "bar2-17".parse().expect("valid");
        assert_eq!(number.to_string(), "BAR2-17");
        for bad in [
            "",
            "A",
            "A-",
            "-1",
            "A-0",
            "A-01",
            "1A-3",
            "A-1-2",
            "ABCDEFGHI-1",
            "A-x",
            "A-99999999999999999999",
        ] {
            assert!(bad.parse::<OrderNumber>().is_err(), "{bad}");
        }
    }

    proptest! {
        /// However many orders each till takes while offline, no two numbers are equal and each
        /// parses back to its till and sequence.
        #[test]
        fn numbers_never_collide_across_tills(
            codes in proptest::collection::hash_set("[A-Z][A-Z0-9]{0,7}", 1..6),
            counts in proptest::collection::vec(0u64..200, 6),
        ) {
            let mut seen = HashSet::new();
            for (code, count) in codes.iter().zip(counts) {
                let till = TillCode::parse(code).expect("generated codes are valid");
                for sequence in 1..=count {
                    let number = till.order_number(sequence);
                    let text = number.to_string();
                    prop_assert_eq!(text.parse::<OrderNumber>().expect("round trip"), number);
                    prop_assert!(seen.insert(text), "duplicate order number");
                }
            }
        }
    }
}
