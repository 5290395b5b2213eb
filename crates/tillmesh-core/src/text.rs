//! Free text that may enter a document: length limits, no control characters, and never a
//! card number (a CRDT's history is permanent and replicated to every peer).

/// Why a free-text value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The field must not be empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field's name as the API spells it.
        field: &'static str,
    },
    /// Longer than the field allows.
    #[error("{field} is longer than {chars_max} characters")]
    TooLong {
        /// The field's name as the API spells it.
        field: &'static str,
        /// The limit.
        chars_max: usize,
    },
    /// Holds a control character (only notes may hold line breaks and tabs).
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// The field's name as the API spells it.
        field: &'static str,
    },
    /// Holds what looks like a full card number (13–19 digits passing the Luhn check).
    #[error("{field} looks like it contains a card number; store only the last four digits")]
    CardNumber {
        /// The field's name as the API spells it.
        field: &'static str,
    },
    /// Not of the field's required form.
    #[error("{field}: {expected}")]
    Format {
        /// The field's name as the API spells it.
        field: &'static str,
        /// What the field must look like.
        expected: &'static str,
    },
}

/// Rules for one free-text field.
#[derive(Debug, Clone, Copy)]
pub struct TextRule {
    /// The field's name as the API spells it, for errors.
    pub field: &'static str,
    /// Longest allowed value in characters.
    pub chars_max: usize,
    /// Whether the empty string is allowed.
    pub may_be_empty: bool,
    /// Whether line breaks and tabs are allowed (notes).
    pub multi_line: bool,
}

impl TextRule {
    /// A required single-line field of at most `chars_max` characters.
    pub const fn required(field: &'static str, chars_max: usize) -> Self {
        TextRule { field, chars_max, may_be_empty: false, multi_line: false }
    }

    /// An optional multi-line field of at most `chars_max` characters.
    pub const fn notes(field: &'static str, chars_max: usize) -> Self {
        TextRule { field, chars_max, may_be_empty: true, multi_line: true }
    }

    /// Checks `value` against the rule; a card number anywhere in it is refused.
    pub fn check(&self, value: &str) -> Result<(), TextError> {
        let field = self.field;
        if value.is_empty() && !self.may_be_empty {
            return Err(TextError::Empty { field });
        }
        if value.chars().count() > self.chars_max {
            return Err(TextError::TooLong { field, chars_max: self.chars_max });
        }
        let allowed_control = |c: char| self.multi_line && matches!(c, '\n' | '\r' | '\t');
        if value.chars().any(|c| c.is_control() && !allowed_control(c)) {
            return Err(TextError::ControlCharacter { field });
        }
        if contains_card_number(value) {
            return Err(TextError::CardNumber { field });
        }
        Ok(())
    }
}

/// Whether `text` holds something that looks like a full payment card number: 13 to 19 digits,
/// optionally grouped by single spaces or dashes, passing the Luhn check.
///
/// Digits are read in runs of groups (`4111 1111 1111 1111`, `4111-1111-1111-1111`); inside a
/// run every span of whole groups with 13–19 digits is checked, so a stray digit before the card
/// number (`table 5 4111 1111 1111 1111`) does not hide it. A run of more than 19 digits without
/// separators is not a card number (long references stay allowed).
pub fn contains_card_number(text: &str) -> bool {
    let mut groups: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut after_separator = false;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10).filter(|_| c.is_ascii_digit()) {
            current.push(digit as u8);
            after_separator = false;
        } else if (c == ' ' || c == '-') && !current.is_empty() && !after_separator {
            groups.push(std::mem::take(&mut current));
            after_separator = true;
        } else {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            if run_has_card_number(&groups) {
                return true;
            }
            groups.clear();
            after_separator = false;
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    run_has_card_number(&groups)
}

/// Checks every span of consecutive groups holding 13–19 digits.
fn run_has_card_number(groups: &[Vec<u8>]) -> bool {
    for start in 0..groups.len() {
        let mut digits: Vec<u8> = Vec::new();
        for group in &groups[start..] {
            digits.extend_from_slice(group);
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && luhn_valid(&digits) {
                return true;
            }
        }
    }
    false
}

/// The Luhn (mod 10) check used by every card scheme.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_card_numbers_in_any_common_layout() {
        for text in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "card 4111 1111 1111 1111 exp 12/29",
            "table 5 4111 1111 1111 1111",
            "378282246310005",       // Amex, 15 digits
            "6011 0009 9013 9424",   // Discover
            "4222222222222",         // 13 digits
            "ref:5555555555554444;", // Mastercard between punctuation
        ] {
            assert!(contains_card_number(text), "{text}");
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in [
            "",
            "no onions, extra cheese",
            "4111 1111 1111 1112",       // fails Luhn
            "411111111111",              // 12 digits
            "41111111111111111111",      // 20 digits in one run
            "call 555-0100 at 19:30",    // phone number
            "4111  1111  1111  1111",    // double spaces break the run: groups too short
            "ref 2024-11-30 order A-17", // dates and order numbers
        ] {
            assert!(!contains_card_number(text), "{text}");
        }
    }

    #[test]
    fn rules_report_the_field() {
        let rule = TextRule::required("productName", 8);
        assert_eq!(rule.check(""), Err(TextError::Empty { field: "productName" }));
        assert_eq!(rule.check("123456789"), Err(TextError::TooLong { field: "productName", chars_max: 8 }));
        assert_eq!(rule.check("a\u{7}"), Err(TextError::ControlCharacter { field: "productName" }));
        assert_eq!(rule.check("Soup"), Ok(()));
        let notes = TextRule::notes("notes", 100);
        assert_eq!(notes.check("line\nline"), Ok(()));
        assert_eq!(notes.check("pay 4111 1111 1111 1111"), Err(TextError::CardNumber { field: "notes" }));
    }
}
