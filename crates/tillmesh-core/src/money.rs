//! Exact money: integer minor units (cents), never binary floating point.
//!
//! JSON carries amounts as decimal numbers (`45.99`) or decimal strings (`"45.99"`). Both are
//! parsed from their text, digit by digit (serde_json's `arbitrary_precision` keeps a number's
//! text), so `0.1` is exactly ten cents and `45.999` is an error, not `46.00` — except at the
//! legacy edge, where a client's doubles are rounded once to the cent from those digits
//! ([`Amount::parse_rounded`]).
//! Every currency tillmesh handles has two decimal places.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Minor units per major unit: tillmesh handles two-decimal currencies only.
pub const MINOR_PER_MAJOR: i64 = 100;

/// Digits a decimal text may have at most (sign, point and exponent not counted).
const DIGITS_MAX: usize = 30;

/// Why a text or a computation is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a decimal number (`12`, `12.5`, `-0.99`, `1.0E7`).
    #[error("{text:?} is not a decimal amount (expected e.g. 45.99)")]
    Invalid {
        /// The rejected text, cut to 40 characters.
        text: String,
    },
    /// NaN or an infinity was given: such values are never money.
    #[error("{text:?} is not a finite amount")]
    NotFinite {
        /// The rejected text.
        text: String,
    },
    /// More than two decimal places that are not zero (`45.999`).
    #[error("{text:?} has more than two decimal places")]
    TooManyDecimals {
        /// The rejected text, cut to 40 characters.
        text: String,
    },
    /// The amount does not fit in 64-bit minor units, or a sum or product overflowed.
    #[error("amount out of range")]
    Overflow,
    /// A negative amount where only zero or more is allowed.
    #[error("negative amount {amount} where only zero or more is allowed")]
    Negative {
        /// The rejected amount.
        amount: Amount,
    },
    /// Not a three-letter ISO 4217 code.
    #[error("{code:?} is not a three-letter currency code")]
    InvalidCurrency {
        /// The rejected code, cut to 40 characters.
        code: String,
    },
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
}

fn cut(text: &str) -> String {
    text.chars().take(40).collect()
}

/// An exact amount in minor units (cents). Its currency comes from the context (an order's or a
/// shop's currency); [`Money`] pairs the two where they travel together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// An amount of `minor` minor units (cents).
    pub const fn from_minor(minor: i64) -> Self {
        Amount(minor)
    }

    /// The amount in minor units (cents).
    pub const fn minor(self) -> i64 {
        self.0
    }

    /// Whether the amount is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// `self + other`, or [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Amount) -> Result<Amount, MoneyError> {
        self.0.checked_add(other.0).map(Amount).ok_or(MoneyError::Overflow)
    }

    /// `self × quantity`, or [`MoneyError::Overflow`].
    pub fn checked_mul(self, quantity: i64) -> Result<Amount, MoneyError> {
        self.0.checked_mul(quantity).map(Amount).ok_or(MoneyError::Overflow)
    }

    /// The amount itself when it is zero or more, else [`MoneyError::Negative`].
    pub fn non_negative(self) -> Result<Amount, MoneyError> {
        if self.is_negative() { Err(MoneyError::Negative { amount: self }) } else { Ok(self) }
    }

    /// `numerator / denominator` of this amount, rounded half away from zero to a whole cent.
    /// This is the one rounding rule tillmesh uses (tax: `rate_bps / 10_000`).
    pub fn mul_ratio_round_half_up(self, numerator: i64, denominator: i64) -> Result<Amount, MoneyError> {
        if denominator <= 0 {
            return Err(MoneyError::Overflow);
        }
        let product = i128::from(self.0) * i128::from(numerator);
        let denominator = i128::from(denominator);
        let half = denominator / 2;
        let rounded =
            if product >= 0 { (product + half) / denominator } else { (product - half) / denominator };
        i64::try_from(rounded).map(Amount).map_err(|_| MoneyError::Overflow)
    }

    /// Parses a decimal text exactly: an optional `-`, digits, an optional fraction and an
    /// optional exponent (`1.0E7`, as some JSON encoders write large doubles). At most two
    /// decimal places may be non-zero.
    pub fn parse(text: &str) -> Result<Amount, MoneyError> {
        Amount::parse_with(text, false)
    }

    /// Parses a decimal text like [`Amount::parse`], but rounds more than two decimal places to
    /// the cent, half away from zero, from the exact digits (never through a float):
    /// `3.3000000000000003` → 3.30, `19.999999999999996` → 20.00, `0.005` → 0.01,
    /// `-0.005` → -0.01. This is how a `DECIMAL(10,2)` column stores a double.
    pub fn parse_rounded(text: &str) -> Result<Amount, MoneyError> {
        Amount::parse_with(text, true)
    }

    fn parse_with(text: &str, round: bool) -> Result<Amount, MoneyError> {
        parse_scaled(text, 2, round).map(Amount).map_err(|refusal| match refusal {
            Refusal::Invalid => MoneyError::Invalid { text: cut(text) },
            Refusal::NotFinite => MoneyError::NotFinite { text: cut(text) },
            Refusal::TooManyDecimals => MoneyError::TooManyDecimals { text: cut(text) },
            Refusal::Overflow => MoneyError::Overflow,
        })
    }
}

/// Why a decimal text is not a number of the scale asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a decimal number.
    Invalid,
    /// NaN or an infinity.
    NotFinite,
    /// More non-zero decimal places than the scale has (when not rounding).
    TooManyDecimals,
    /// Beyond 64 bits at that scale.
    Overflow,
}

/// Parses a decimal text exactly into an integer of `places` decimal places (2: cents, 3:
/// thousandths): an optional `-`, digits, an optional fraction and an optional exponent
/// (`1.0E7`, as some JSON encoders write large doubles). Digits below the scale must be zero,
/// or with `round` are rounded half away from zero from the exact digits (never through a
/// float).
pub(crate) fn parse_scaled(text: &str, places: i32, round: bool) -> Result<i64, Refusal> {
    let lowered = text.to_ascii_lowercase();
    let unsigned = lowered.trim_start_matches(['-', '+']);
    if matches!(unsigned, "nan" | "inf" | "infinity") {
        return Err(Refusal::NotFinite);
    }
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => {
            let exp_text = &rest[at + 1..];
            let digits = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refusal::Invalid);
            }
            let exponent: i32 = exp_text.parse().map_err(|_| Refusal::Invalid)?;
            (&rest[..at], exponent)
        }
        None => (rest, 0),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || (mantissa.contains('.') && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
    {
        return Err(Refusal::Invalid);
    }
    let digits: String = [whole, fraction].concat();
    let digits = digits.trim_start_matches('0');
    // value = digits × 10^(exponent − fraction.len()); scale to the places asked for.
    let scale = exponent - fraction.len() as i32 + places;
    // Digits below the scale: dropped when zero, else rounded away (or refused).
    let (digits, scale, round_up) = if scale < 0 {
        let dropped = scale.unsigned_abs() as usize;
        let kept = digits.len().saturating_sub(dropped);
        let below = &digits[kept..];
        if !round && below.bytes().any(|b| b != b'0') {
            return Err(Refusal::TooManyDecimals);
        }
        // The first digit below the scale decides (half away from zero); it is a leading
        // zero that was trimmed when fewer digits than dropped remain.
        let first_below = if dropped > digits.len() { b'0' } else { below.as_bytes()[0] };
        (&digits[..kept], 0, first_below >= b'5')
    } else {
        (digits, scale, false)
    };
    if digits.len() + scale as usize > DIGITS_MAX {
        return Err(Refusal::Overflow);
    }
    let mut minor: i128 = 0;
    for b in digits.bytes() {
        minor = minor * 10 + i128::from(b - b'0');
    }
    for _ in 0..scale {
        minor = minor.checked_mul(10).ok_or(Refusal::Overflow)?;
    }
    if round_up {
        minor += 1;
    }
    if negative {
        minor = -minor;
    }
    i64::try_from(minor).map_err(|_| Refusal::Overflow)
}

impl fmt::Display for Amount {
    /// `-45.99`, `0.10`, `7.00`: always two decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per = MINOR_PER_MAJOR as u64;
        f.pad(&format!("{sign}{}.{:02}", magnitude / per, magnitude % per))
    }
}

impl FromStr for Amount {
    type Err = MoneyError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Amount::parse(text)
    }
}

impl Serialize for Amount {
    /// A JSON number with two decimals (`45.99`), written from its exact text.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let number = serde_json::Number::from_str(&self.to_string()).map_err(serde::ser::Error::custom)?;
        number.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// Accepts a JSON number or a decimal string; both parsed exactly by [`Amount::parse`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(number) => Amount::parse(number.as_str()),
            serde_json::Value::String(text) => Amount::parse(&text),
            other => Err(MoneyError::Invalid { text: cut(&other.to_string()) }),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// An ISO 4217 currency code of three upper-case letters (`USD`, `EUR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a three-letter code; lower case is accepted and stored upper case.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let bytes = code.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => {
                Ok(Currency([a.to_ascii_uppercase(), b.to_ascii_uppercase(), c.to_ascii_uppercase()]))
            }
            _ => Err(MoneyError::InvalidCurrency { code: cut(code) }),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Currency::parse(code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount together with its currency, for arithmetic that must not mix currencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// How much, in minor units.
    pub amount: Amount,
    /// Of which currency.
    pub currency: Currency,
}

impl Money {
    /// `amount` of `currency`.
    pub const fn new(amount: Amount, currency: Currency) -> Self {
        Money { amount, currency }
    }

    /// The sum, or an error when the currencies differ or the sum overflows.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency });
        }
        Ok(Money::new(self.amount.checked_add(other.amount)?, self.currency))
    }
}

impl fmt::Display for Money {
    /// `USD 45.99`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{} {}", self.currency, self.amount))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_decimal_texts_exactly() {
        let table: &[(&str, i64)] = &[
            ("45.99", 4599),
            ("0.1", 10),
            ("0.10", 10),
            ("0.01", 1),
            ("7", 700),
            ("0", 0),
            ("-0", 0),
            ("-1.5", -150),
            ("45.990000", 4599),
            ("1.0E7", 1_000_000_000),
            ("4599e-2", 4599),
            ("4.599E+1", 4599),
            ("92233720368547758.07", i64::MAX),
            ("-92233720368547758.08", i64::MIN),
            ("000123.40", 12340),
        ];
        for (text, minor) in table {
            assert_eq!(Amount::parse(text), Ok(Amount::from_minor(*minor)), "{text}");
        }
    }

    #[test]
    fn rejects_bad_decimal_texts_with_typed_errors() {
        use MoneyError::*;
        type Expect = fn(&MoneyError) -> bool;
        let table: &[(&str, Expect)] = &[
            ("45.999", |e| matches!(e, TooManyDecimals { .. })),
            ("0.001", |e| matches!(e, TooManyDecimals { .. })),
            ("1e-3", |e| matches!(e, TooManyDecimals { .. })),
            ("NaN", |e| matches!(e, NotFinite { .. })),
            ("Infinity", |e| matches!(e, NotFinite { .. })),
            ("-inf", |e| matches!(e, NotFinite { .. })),
            ("92233720368547758.08", |e| matches!(e, Overflow)),
            ("1e30", |e| matches!(e, Overflow)),
            ("", |e| matches!(e, Invalid { .. })),
            ("-", |e| matches!(e, Invalid { .. })),
            ("1.", |e| matches!(e, Invalid { .. })),
            (".5", |e| matches!(e, Invalid { .. })),
            ("1,50", |e| matches!(e, Invalid { .. })),
            (" 1.50", |e| matches!(e, Invalid { .. })),
            ("1.5.0", |e| matches!(e, Invalid { .. })),
            ("--1", |e| matches!(e, Invalid { .. })),
            ("+1", |e| matches!(e, Invalid { .. })),
            ("1e", |e| matches!(e, Invalid { .. })),
            ("1e99999", |e| matches!(e, Invalid { .. })),
            ("0x10", |e| matches!(e, Invalid { .. })),
            ("١٢", |e| matches!(e, Invalid { .. })),
        ];
        for (text, expected) in table {
            let error = Amount::parse(text).expect_err(text);
            assert!(expected(&error), "{text}: {error:?}");
        }
    }

    #[test]
    fn rounds_doubles_to_the_cent_half_away_from_zero() {
        let table: &[(&str, i64)] = &[
            ("3.3000000000000003", 330),
            ("0.30000000000000004", 30),
            ("19.999999999999996", 2000),
            ("3.794175", 379),
            ("0.005", 1),
            ("0.0049999", 0),
            ("-0.005", -1),
            ("-2.675", -268),
            ("1.5e-3", 0),
            ("5e-3", 1),
            ("45.99", 4599),
            ("7", 700),
            ("0.0000000000000000000000000000000001", 0),
        ];
        for (text, minor) in table {
            assert_eq!(Amount::parse_rounded(text), Ok(Amount::from_minor(*minor)), "{text}");
        }
        assert!(matches!(Amount::parse_rounded("NaN"), Err(MoneyError::NotFinite { .. })));
        assert!(matches!(Amount::parse_rounded("1e30"), Err(MoneyError::Overflow)));
        assert!(matches!(Amount::parse("3.3000000000000003"), Err(MoneyError::TooManyDecimals { .. })));
    }

    #[test]
    fn json_numbers_and_strings_round_trip_without_floats() {
        let parsed: Vec<Amount> =
            serde_json::from_str(r#"[45.99, "45.99", 0.1, 12345678901234567.89]"#).expect("valid amounts");
        assert_eq!(parsed[0], Amount::from_minor(4599));
        assert_eq!(parsed[1], Amount::from_minor(4599));
        assert_eq!(parsed[2], Amount::from_minor(10));
        // 1234567890123456789 cents is beyond f64's 53-bit mantissa: exact only without floats.
        assert_eq!(parsed[3], Amount::from_minor(1_234_567_890_123_456_789));
        assert_eq!(
            serde_json::to_string(&parsed).expect("serialise"),
            "[45.99,45.99,0.10,12345678901234567.89]"
        );
        for bad in ["45.999", "true", "null", r#""abc""#, "[1]", r#"{"a":1}"#] {
            assert!(serde_json::from_str::<Amount>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Amount::from_minor(-5).to_string(), "-0.05");
        assert_eq!(format!("[{:>6}]", Amount::from_minor(450)), "[  4.50]");
        assert_eq!(Amount::from_minor(i64::MIN).to_string(), "-92233720368547758.08");
        assert_eq!(
            Money::new(Amount::from_minor(4599), Currency::parse("usd").expect("code")).to_string(),
            "USD 45.99"
        );
    }

    #[test]
    fn rounds_half_away_from_zero() {
        let tax = |minor, bps| Amount::from_minor(minor).mul_ratio_round_half_up(bps, 10_000).expect("fits");
        assert_eq!(tax(1000, 825), Amount::from_minor(83)); // 82.5 → 83
        assert_eq!(tax(1001, 825), Amount::from_minor(83)); // 82.58 → 83
        assert_eq!(tax(999, 825), Amount::from_minor(82)); // 82.41 → 82
        assert_eq!(tax(-1000, 825), Amount::from_minor(-83));
    }

    #[test]
    fn arithmetic_errors_are_typed() {
        let usd = Currency::parse("USD").expect("code");
        let eur = Currency::parse("EUR").expect("code");
        assert!(matches!(
            Money::new(Amount::ZERO, usd).checked_add(Money::new(Amount::ZERO, eur)),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(
            Amount::from_minor(i64::MAX).checked_add(Amount::from_minor(1)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Amount::from_minor(i64::MAX / 2 + 1).checked_mul(2), Err(MoneyError::Overflow));
        assert!(matches!(Amount::from_minor(-1).non_negative(), Err(MoneyError::Negative { .. })));
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("US1").is_err());
    }
}
