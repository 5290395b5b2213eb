//! Why an edit is refused, and the limits every edit is held to.

use uuid::Uuid;

use crate::kind::DocumentError;
use crate::money::MoneyError;
use crate::status::{OrderStatus, PaymentStatus};
use crate::text::TextError;

/// Limits on what a document may hold. A till enforces them on every edit; HQ on every REST
/// submission.
pub mod limits {
    use crate::money::Amount;
    use crate::quantity::Quantity;
    use crate::text::TextRule;

    /// Items in one order.
    pub const ITEMS_MAX: usize = 200;
    /// Smallest quantity of one item: a thousandth (a gram of goods sold by the kilogram).
    pub const QUANTITY_MIN: Quantity = Quantity::from_thousandths(1);
    /// Largest quantity of one item.
    pub const QUANTITY_MAX: Quantity = Quantity::pieces(10_000);
    /// Price of one item: 10,000,000.00.
    pub const UNIT_PRICE_MAX: Amount = Amount::from_minor(1_000_000_000);
    /// Amount of one payment transaction: 10,000,000.00.
    pub const TRANSACTION_AMOUNT_MAX: Amount = Amount::from_minor(1_000_000_000);
    /// Tax rate: 100 %.
    pub const TAX_RATE_BPS_MAX: u32 = 10_000;
    /// Product code (often a barcode: no card-number guard).
    pub const SKU: TextRule = TextRule::code("productId", 64);
    /// Product name.
    pub const ITEM_NAME: TextRule = TextRule::required("productName", 120);
    /// Order notes.
    pub const NOTES: TextRule = TextRule::notes("notes", 1_000);
    /// Longest order number (the seed's `VARCHAR(50)`).
    pub const ORDER_NUMBER_CHARS_MAX: usize = 50;
    /// An order number.
    pub const ORDER_NUMBER: TextRule = TextRule::required("orderNumber", ORDER_NUMBER_CHARS_MAX);
    /// A legacy device's name of a status or method (the seed's `VARCHAR(50)`).
    pub const LEGACY_NAME: TextRule = TextRule::required("legacyName", 50);
    /// A transaction's reference number.
    pub const REFERENCE: TextRule = TextRule::required("referenceNumber", 50);
    /// A payment processor's reference.
    pub const PROCESSOR_REFERENCE: TextRule = TextRule {
        field: "processorReference",
        chars_max: 100,
        may_be_empty: true,
        multi_line: false,
        card_guard: true,
    };
    /// Longest device id.
    pub const DEVICE_ID_CHARS_MAX: usize = 64;
    /// Items on a shop's menu. Every price change adds a signed entry to the menu's document,
    /// which a peer loads only within `tillmesh_untrusted`'s row limit: a few hundred items
    /// leave room for years of price changes.
    pub const MENU_ITEMS_MAX: usize = 500;
    /// A menu item's SKU (the product code its order lines carry).
    pub const MENU_SKU: TextRule = TextRule::code("sku", 64);
    /// A menu item's name.
    pub const MENU_NAME: TextRule = TextRule::required("name", 120);
    /// A menu item's category (the till screen groups its buttons by it).
    pub const MENU_CATEGORY: TextRule = TextRule::required("category", 60);
    /// A menu item's tax class, a code the shop's accounting knows (`standard`, `reduced`).
    pub const MENU_TAX_CLASS: TextRule = TextRule::code("taxClass", 32);
}

/// Why an edit was refused. A refused edit changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A text field is not acceptable.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A money field is not acceptable.
    #[error("{field}: {source}")]
    Money {
        /// The field's name as the API spells it.
        field: &'static str,
        /// What is wrong with the amount.
        #[source]
        source: MoneyError,
    },
    /// Quantity outside [`limits::QUANTITY_MIN`] to [`limits::QUANTITY_MAX`].
    #[error("quantity {quantity} is outside {min} to {max}", min = limits::QUANTITY_MIN, max = limits::QUANTITY_MAX)]
    Quantity {
        /// The refused quantity.
        quantity: crate::quantity::Quantity,
    },
    /// Tax rate above 100 %.
    #[error("tax rate {bps} bps is above {max}", max = limits::TAX_RATE_BPS_MAX)]
    TaxRate {
        /// The refused rate.
        bps: u32,
    },
    /// The order already has the most items allowed.
    #[error("an order holds at most {items_max} items")]
    TooManyItems {
        /// The limit.
        items_max: usize,
    },
    /// No item with this id in the order.
    #[error("no item {item_id} in this order")]
    UnknownItem {
        /// The id asked for.
        item_id: Uuid,
    },
    /// An item with this id is already in the order.
    #[error("item {item_id} is already in this order")]
    DuplicateItem {
        /// The repeated id.
        item_id: Uuid,
    },
    /// The item was voided; it can no longer change.
    #[error("item {item_id} is voided")]
    ItemVoided {
        /// The voided item.
        item_id: Uuid,
    },
    /// Status may only move forward, and never out of CLOSED or VOIDED.
    #[error("order status cannot move from {from} to {to}")]
    StatusTransition {
        /// The current status.
        from: OrderStatus,
        /// The refused target.
        to: OrderStatus,
    },
    /// The order is closed or voided: its items and payment no longer change.
    #[error("the order is {status}: it can no longer change")]
    Terminal {
        /// The terminal status.
        status: OrderStatus,
    },
    /// A till tried to write an HQ-owned status.
    #[error("{status} is set by HQ's signed settlement, not by a till")]
    HqOnly {
        /// The refused status.
        status: PaymentStatus,
    },
    /// A settlement must be CAPTURED, DECLINED or REFUNDED.
    #[error("{status} is not a settlement status (CAPTURED, DECLINED, REFUNDED)")]
    NotSettlement {
        /// The refused status.
        status: PaymentStatus,
    },
    /// A menu item is not acceptable.
    #[error(transparent)]
    MenuItem(Box<MenuItemRefused>),
    /// The menu sent has more items than [`limits::MENU_ITEMS_MAX`].
    #[error("a menu holds at most {items_max} items, {sent} were sent")]
    TooManyMenuItems {
        /// The limit.
        items_max: usize,
        /// How many were sent.
        sent: usize,
    },
    /// No item with this SKU on the menu.
    #[error("no item with SKU {sku:?} on the menu")]
    UnknownSku {
        /// The SKU asked for.
        sku: String,
    },
    /// An item with this SKU is on the menu already.
    #[error("an item with SKU {sku:?} is on the menu already: change it instead")]
    SkuTaken {
        /// The SKU sent.
        sku: String,
    },
    /// Two different documents were to be merged.
    #[error("cannot merge document {theirs} into {ours}")]
    DifferentDocument {
        /// This document.
        ours: Uuid,
        /// The other one.
        theirs: Uuid,
    },
    /// The document itself could not be read or written.
    #[error(transparent)]
    Document(#[from] DocumentError),
}

/// Why a menu item was refused: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("menu item {}: {problem}", describe_menu_item(.position.as_ref(), .sku))]
pub struct MenuItemRefused {
    /// Its place in the menu sent, from 1 (none for an edit of one item).
    pub position: Option<usize>,
    /// Its SKU, as sent.
    pub sku: String,
    /// What is wrong, naming the field (`price: …`).
    pub problem: String,
}

/// A menu item as errors name it: its place and SKU.
fn describe_menu_item(position: Option<&usize>, sku: &str) -> String {
    let sku: String = sku.chars().take(64).collect();
    match position {
        Some(position) => format!("{position} (SKU {sku:?})"),
        None => format!("{sku:?}"),
    }
}

/// Checks a device id: 1–64 letters, digits, `.`, `_` or `-`.
pub fn check_device_id(device_id: &str) -> Result<(), TextError> {
    let well_formed = !device_id.is_empty()
        && device_id.len() <= limits::DEVICE_ID_CHARS_MAX
        && device_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if well_formed {
        Ok(())
    } else {
        Err(TextError::Format { field: "deviceId", expected: "1-64 letters, digits, '.', '_' or '-'" })
    }
}
