//! Free text that may enter a document: length limits, no control characters, and never a
//! card number (a CRDT's history is permanent and replicated to every peer).
//!
//! The card-number guard looks for what a card number is — a card network's prefix, one of
//! that network's lengths and a valid Luhn check digit — so product barcodes and long
//! references pass (about one in ten EAN-13 codes passes Luhn alone, e.g. `5449000000996`).
//! It reads digits however they are written: split by spaces, dashes, dots or slashes, with
//! zero-width characters between them, or as fullwidth or Arabic-Indic digits.

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
    /// Holds what looks like a full card number (a card network's prefix and length, passing
    /// the Luhn check).
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
    /// Whether a card number in the value is refused (every field but codes such as product
    /// ids, which are barcodes rather than text a person types).
    pub card_guard: bool,
}

impl TextRule {
    /// A required single-line field of at most `chars_max` characters.
    pub const fn required(field: &'static str, chars_max: usize) -> Self {
        TextRule { field, chars_max, may_be_empty: false, multi_line: false, card_guard: true }
    }

    /// A required single-line code (a product id or barcode): no card-number guard.
    pub const fn code(field: &'static str, chars_max: usize) -> Self {
        TextRule { field, chars_max, may_be_empty: false, multi_line: false, card_guard: false }
    }

    /// An optional multi-line field of at most `chars_max` characters.
    pub const fn notes(field: &'static str, chars_max: usize) -> Self {
        TextRule { field, chars_max, may_be_empty: true, multi_line: true, card_guard: true }
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
        if self.card_guard && contains_card_number(value) {
            return Err(TextError::CardNumber { field });
        }
        Ok(())
    }
}

/// Whether `text` holds something that looks like a full payment card number: a card
/// network's prefix and one of its lengths (13–19 digits), passing the Luhn check.
///
/// Digits are read in runs of groups separated by single spaces, dashes, dots or slashes
/// (`4111 1111 1111 1111`, `4111.1111.1111.1111`); zero-width characters are skipped, and
/// fullwidth (`４１１１`) and Arabic-Indic (`٤١١١`) digits count as digits. Inside a run every
/// span of whole groups is checked, so a stray digit before the card number
/// (`table 5 4111 1111 1111 1111`) does not hide it. A run of more than 19 digits without
/// separators is not a card number (long references stay allowed).
pub fn contains_card_number(text: &str) -> bool {
    let mut groups: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut after_separator = false;
    for c in text.chars() {
        if is_invisible(c) {
            continue;
        }
        if let Some(digit) = digit_value(c) {
            current.push(digit);
            after_separator = false;
        } else if is_group_separator(c) && !current.is_empty() && !after_separator {
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

/// The value of a decimal digit written in ASCII, fullwidth or (extended) Arabic-Indic form.
fn digit_value(c: char) -> Option<u8> {
    let zero = match c {
        '0'..='9' => '0',
        '\u{FF10}'..='\u{FF19}' => '\u{FF10}',
        '\u{0660}'..='\u{0669}' => '\u{0660}',
        '\u{06F0}'..='\u{06F9}' => '\u{06F0}',
        _ => return None,
    };
    u8::try_from(u32::from(c) - u32::from(zero)).ok()
}

/// Characters that show nothing: zero-width spaces and joiners, the word joiner, the byte order
/// mark and the soft hyphen.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}')
}

/// What may stand between groups of a card number's digits.
fn is_group_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | '/' | '\u{00A0}' | '\u{2007}' | '\u{202F}' | '\u{FF0D}' | '\u{FF0E}' | '\u{FF0F}'
    )
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
            if is_card_number(&digits) {
                return true;
            }
        }
    }
    false
}

/// Card networks: (lowest prefix, highest prefix, digits of the prefix, lengths allowed).
const CARD_NETWORKS: &[(u32, u32, usize, &[usize])] = &[
    (4, 4, 1, &[13, 16, 19]),                       // Visa
    (51, 55, 2, &[16]),                             // Mastercard
    (2221, 2720, 4, &[16]),                         // Mastercard 2-series
    (34, 34, 2, &[15]),                             // American Express
    (37, 37, 2, &[15]),                             // American Express
    (6011, 6011, 4, &[16, 17, 18, 19]),             // Discover
    (644, 649, 3, &[16, 17, 18, 19]),               // Discover
    (65, 65, 2, &[16, 17, 18, 19]),                 // Discover
    (62, 62, 2, &[16, 17, 18, 19]),                 // UnionPay
    (3528, 3589, 4, &[16, 17, 18, 19]),             // JCB
    (300, 305, 3, &[14, 15, 16, 17, 18, 19]),       // Diners Club
    (36, 36, 2, &[14, 15, 16, 17, 18, 19]),         // Diners Club
    (38, 39, 2, &[16, 17, 18, 19]),                 // Diners Club
    (2200, 2204, 4, &[16, 17, 18, 19]),             // Mir
    (5018, 5018, 4, &[13, 14, 15, 16, 17, 18, 19]), // Maestro
    (5020, 5020, 4, &[13, 14, 15, 16, 17, 18, 19]), // Maestro
    (5038, 5038, 4, &[13, 14, 15, 16, 17, 18, 19]), // Maestro
    (5893, 5893, 4, &[13, 14, 15, 16, 17, 18, 19]), // Maestro
    (6304, 6304, 4, &[13, 14, 15, 16, 17, 18, 19]), // Maestro
    (6759, 6763, 4, &[13, 14, 15, 16, 17, 18, 19]), // Maestro
];

/// Whether `digits` are a card number: a network's prefix and length, and the Luhn check.
fn is_card_number(digits: &[u8]) -> bool {
    let prefix = |length: usize| digits.iter().take(length).fold(0u32, |value, d| value * 10 + u32::from(*d));
    CARD_NETWORKS.iter().any(|(low, high, prefix_digits, lengths)| {
        lengths.contains(&digits.len()) && (*low..=*high).contains(&prefix(*prefix_digits))
    }) && luhn_valid(digits)
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
            "378282246310005",                          // Amex, 15 digits
            "6011 0009 9013 9424",                      // Discover
            "4222222222222",                            // 13 digits
            "ref:5555555555554444;",                    // Mastercard between punctuation
            "4111.1111.1111.1111",                      // dots
            "4111/1111/1111/1111",                      // slashes
            "4111\u{200B}1111\u{200B}1111\u{200B}1111", // zero-width spaces
            "41\u{00AD}11111111111111",                 // a soft hyphen
            "\u{FF14}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}", // fullwidth
            "٤١١١ ١١١١ ١١١١ ١١١١", // Arabic-Indic
            "۴۱۱۱-۱۱۱۱-۱۱۱۱-۱۱۱۱", // extended Arabic-Indic
            "2221 0000 0000 0009", // Mastercard 2-series
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
            "5449000000996",             // an EAN-13 barcode passing Luhn: no network's length
            "4006381333931",             // an EAN-13 starting with 4 that fails Luhn
            "9780306406157",             // an ISBN-13 barcode
            "1234 5678 9012 3452",       // Luhn-valid, but no network starts with 1
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
        // Codes are not text a person types: a barcode that looks like a card passes there.
        assert_eq!(TextRule::code("productId", 64).check("4111111111111111"), Ok(()));
    }
}
