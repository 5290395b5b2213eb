//! The enumerations of the legacy API (`orderStatus`, `paymentMethod`, `paymentStatus`) and the
//! rules that make them safe to merge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Defines a string enumeration with its wire names, `Display`, `FromStr` and an error naming the
/// accepted values.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name (`"OPEN"`).
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str().eq_ignore_ascii_case(text))
                    .ok_or_else(|| UnknownValue {
                        field: $field,
                        value: text.chars().take(40).collect(),
                        expected: concat!($($wire, " "),+),
                    })
            }
        }
    };
}
pub(crate) use wire_enum;

/// A value that is not one of a field's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: unknown value {value:?} (expected one of: {expected})")]
pub struct UnknownValue {
    /// The field's name as the API spells it.
    pub field: &'static str,
    /// The rejected value, cut to 40 characters.
    pub value: String,
    /// The accepted values, space-separated.
    pub expected: &'static str,
}

wire_enum! {
    /// Where an order is in the kitchen's flow. Status only moves forward:
    /// `OPEN → SENT → READY → SERVED → CLOSED`; `VOIDED` is terminal and outranks every other
    /// state, so a merge of a concurrent close and void is a void.
    OrderStatus, "orderStatus" {
        /// Being taken.
        Open = "OPEN",
        /// Sent to the kitchen.
        Sent = "SENT",
        /// Ready to serve.
        Ready = "READY",
        /// Served to the guest.
        Served = "SERVED",
        /// Paid and done.
        Closed = "CLOSED",
        /// Cancelled.
        Voided = "VOIDED",
    }
}

impl OrderStatus {
    /// Whether no further transition is possible.
    pub const fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Closed | OrderStatus::Voided)
    }

    /// Whether a till may move an order from `self` to `to`: forward only, never out of a
    /// terminal state (a closed order is refunded through HQ, not voided).
    pub fn can_advance_to(self, to: OrderStatus) -> bool {
        !self.is_terminal() && to > self
    }
}

wire_enum! {
    /// How a guest pays.
    PaymentMethod, "paymentMethod" {
        /// Cash in the drawer.
        Cash = "CASH",
        /// A card through a payment processor.
        Card = "CARD",
        /// A phone wallet or transfer.
        Mobile = "MOBILE",
        /// A voucher or gift card.
        Voucher = "VOUCHER",
        /// Anything else.
        Other = "OTHER",
    }
}

wire_enum! {
    /// Payment state of an order or a transaction. `PENDING` and `PAID` are what a till claims;
    /// `CAPTURED`, `DECLINED` and `REFUNDED` are HQ's settlement, signed, and win over any claim.
    PaymentStatus, "paymentStatus" {
        /// Not paid yet.
        Pending = "PENDING",
        /// The till took the payment (its claim, unconfirmed until HQ settles).
        Paid = "PAID",
        /// HQ settled the payment.
        Captured = "CAPTURED",
        /// HQ or the processor declined it.
        Declined = "DECLINED",
        /// HQ approved a refund.
        Refunded = "REFUNDED",
    }
}

impl PaymentStatus {
    /// Whether only HQ may set this value (with its signature).
    pub const fn is_settlement(self) -> bool {
        matches!(self, PaymentStatus::Captured | PaymentStatus::Declined | PaymentStatus::Refunded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_moves_forward_only() {
        use OrderStatus::*;
        assert!(Open.can_advance_to(Sent));
        assert!(Open.can_advance_to(Closed));
        assert!(Served.can_advance_to(Voided));
        assert!(!Sent.can_advance_to(Open));
        assert!(!Sent.can_advance_to(Sent));
        assert!(!Closed.can_advance_to(Voided));
        assert!(!Voided.can_advance_to(Closed));
    }

    #[test]
    fn wire_names_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(*status));
            assert_eq!(serde_json::to_string(status).expect("json"), format!("\"{status}\""));
        }
        assert_eq!("card".parse::<PaymentMethod>(), Ok(PaymentMethod::Card));
        let error = "BITCOIN".parse::<PaymentMethod>().expect_err("unknown");
        assert!(error.to_string().contains("CASH CARD"), "{error}");
    }
}
