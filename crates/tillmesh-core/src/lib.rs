//! tillmesh's domain: exact money, orders and payment transactions as Automerge documents, HQ's
//! signed authority over settlement, order numbering and the canonical hash.
//!
//! This crate does no I/O, reads no clock and makes no random numbers: times, ids and Automerge
//! actor ids are passed in, so the same inputs give the same documents on every run (which the
//! deterministic simulator relies on).
//!
//! # Layout
//! - [`money`]: [`Amount`] in minor units, [`Currency`], exact decimal parsing.
//! - [`text`]: limits on free text and the card-number guard.
//! - [`numbering`]: [`TillCode`] and collision-free [`OrderNumber`]s.
//! - [`status`]: order status (monotone), payment method and payment status.
//! - [`authority`]: HQ's ed25519-signed settlements and how views resolve them (SERVER_WINS).
//! - [`roster`]: HQ-signed roster entries that admit devices to the shop's mesh.
//! - [`order`] and [`payment`]: the order and transaction documents and their effective views.
//! - [`menu`]: the shop's menu, with HQ's signed prices and availability.
//! - [`document`]: what every kind shares (schema header, loading); `layout`: the type of every
//!   field, to name the field a document made elsewhere gets wrong.
//! - [`edit`]: edit errors and limits.
//! - [`hash`]: the canonical hash (`serverHash`).
//! - [`legacy`]: the JSON shapes and conflict rules of the legacy REST sync API.
//! - [`time`]: [`Timestamp`] and the [`Clock`] drivers implement.
//!
//! ```
//! use tillmesh_core::{Amount, Currency, NewItem, NewOrder, OrderDoc, OrderStatus, Quantity, Timestamp, TillCode};
//! use uuid::Uuid;
//!
//! let new = NewOrder {
//!     id: Uuid::from_u128(1),
//!     local_id: Uuid::from_u128(2),
//!     number: TillCode::parse("A").unwrap().order_number(1).to_string(),
//!     device_id: "till-a".into(),
//!     currency: Currency::parse("USD").unwrap(),
//!     tax_rate_bps: 825,
//!     items: vec![NewItem {
//!         id: Uuid::from_u128(3),
//!         sku: "SOUP".into(),
//!         name: "Soup".into(),
//!         quantity: Quantity::pieces(2),
//!         unit_price: "4.50".parse().unwrap(),
//!     }],
//!     notes: String::new(),
//!     created_at: Timestamp(1_700_000_000_000),
//! };
//! let mut on_a = OrderDoc::create(new, automerge::ActorId::from([1u8; 16])).unwrap();
//! let mut on_b = on_a.fork(automerge::ActorId::from([2u8; 16]));
//! on_b.advance(OrderStatus::Sent, "till-b", Timestamp(1_700_000_001_000)).unwrap();
//! on_a.merge(&mut on_b).unwrap();
//! let order = on_a.view(None).unwrap();
//! assert_eq!(order.status, OrderStatus::Sent);
//! assert_eq!(order.total, Amount::from_minor(974)); // 9.00 + 0.74 tax (8.25 %, rounded half up)
//! ```

pub mod authority;
#[macro_use]
mod base;
pub mod document;
pub mod edit;
pub mod hash;
pub mod kind;
mod layout;
pub mod legacy;
pub mod menu;
pub mod money;
pub mod numbering;
pub mod order;
pub mod payment;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod quantity;
mod read;
pub mod roster;
pub mod status;
pub mod text;
pub mod time;

pub use authority::{
    AuthorityViolation, HqPublicKey, HqSigningKey, PaymentConflict, PaymentView, SignedSettlement,
};
pub use document::{Document, View};
pub use edit::{EditError, limits};
pub use hash::{order_hash, transaction_hash};
pub use kind::{DocKind, DocumentError, LayoutError, SCHEMA_VERSION};
pub use menu::{Menu, MenuDoc, MenuItem, MenuItemPatch, MenuItemProblem, NewMenuItem};
pub use money::{Amount, Currency, Money, MoneyError};
pub use numbering::{OrderNumber, TillCode};
pub use order::{NewItem, NewOrder, Order, OrderDoc, OrderItem, Reached};
pub use payment::{NewTransaction, Transaction, TransactionDoc};
pub use quantity::{Quantity, QuantityError};
pub use roster::{Roster, RosterEntry, RosterError, SignedRosterEntry};
pub use status::{OrderStatus, PaymentMethod, PaymentStatus};
pub use text::TextError;
pub use time::{Clock, Timestamp};
