//! The canonical hash of an order or a transaction: the legacy API's `serverHash`.
//!
//! SHA-256 over a canonical JSON text of the effective view: object keys sorted by their bytes,
//! no white space, strings escaped as JSON requires (serde_json's escaping), integers in decimal,
//! money as integer minor units, quantities as decimal numbers (`2`, `0.5`), items sorted by item id, absent values as `null`. Sync metadata
//! (`localId`, `deviceId`, `syncVersion`, `syncStatus`), `updatedAt`, HQ's signatures and the
//! Automerge history are left out, so two peers with the same content agree whatever their map
//! order, history or platform. `docs/DOCUMENTS.md` lists the fields; `tests/` pins golden vectors.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::order::Order;
use crate::payment::Transaction;

/// A value of the canonical encoding.
#[derive(Debug, Clone)]
enum Canonical {
    Null,
    Bool(bool),
    Int(i64),
    /// A decimal number written as its text (a quantity: `2`, `0.5`).
    Decimal(String),
    Str(String),
    Array(Vec<Canonical>),
    Object(BTreeMap<&'static str, Canonical>),
}

impl Canonical {
    fn str(text: impl Into<String>) -> Canonical {
        Canonical::Str(text.into())
    }

    fn opt_str(text: Option<impl Into<String>>) -> Canonical {
        text.map_or(Canonical::Null, Canonical::str)
    }

    fn write(&self, out: &mut String) {
        match self {
            Canonical::Null => out.push_str("null"),
            Canonical::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Canonical::Int(value) => out.push_str(&value.to_string()),
            Canonical::Decimal(text) => out.push_str(text),
            Canonical::Str(text) => out.push_str(&serde_json::Value::String(text.clone()).to_string()),
            Canonical::Array(values) => {
                out.push('[');
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    value.write(out);
                }
                out.push(']');
            }
            Canonical::Object(fields) => {
                out.push('{');
                for (index, (key, value)) in fields.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    Canonical::Str((*key).to_string()).write(out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// The canonical text of an order (what [`order_hash`] hashes).
pub fn order_canonical_text(order: &Order) -> String {
    let mut items: Vec<_> = order.items.iter().collect();
    items.sort_by_key(|item| item.id);
    let items = items
        .into_iter()
        .map(|item| {
            Canonical::Object(BTreeMap::from([
                ("id", Canonical::str(item.id.to_string())),
                ("productId", Canonical::str(&item.sku)),
                ("productName", Canonical::str(&item.name)),
                ("quantity", Canonical::Decimal(item.quantity.to_string())),
                ("unitPrice", Canonical::Int(item.unit_price.minor())),
                ("voided", Canonical::Bool(item.voided)),
            ]))
        })
        .collect();
    let text = Canonical::Object(BTreeMap::from([
        ("kind", Canonical::str("order")),
        ("id", Canonical::str(order.id.to_string())),
        ("orderNumber", Canonical::str(&order.order_number)),
        ("currency", Canonical::str(order.currency.as_str())),
        ("taxRateBps", Canonical::Int(i64::from(order.tax_rate_bps))),
        ("items", Canonical::Array(items)),
        ("subtotal", Canonical::Int(order.subtotal.minor())),
        ("tax", Canonical::Int(order.tax.minor())),
        ("total", Canonical::Int(order.total.minor())),
        ("paymentMethod", Canonical::opt_str(order.payment.method.map(|m| m.as_str()))),
        ("paymentStatus", Canonical::str(order.payment.status.as_str())),
        ("paymentConfirmed", Canonical::Bool(order.payment.confirmed)),
        ("orderStatus", Canonical::str(order.status.as_str())),
        ("notes", Canonical::str(&order.notes)),
        ("createdAt", Canonical::Int(order.created_at.0)),
    ]));
    let mut out = String::new();
    text.write(&mut out);
    out
}

/// The canonical text of a transaction (what [`transaction_hash`] hashes).
pub fn transaction_canonical_text(transaction: &Transaction) -> String {
    let text = Canonical::Object(BTreeMap::from([
        ("kind", Canonical::str("transaction")),
        ("id", Canonical::str(transaction.id.to_string())),
        ("referenceNumber", Canonical::str(&transaction.reference_number)),
        ("orderId", Canonical::str(transaction.order_id.to_string())),
        ("amount", Canonical::Int(transaction.amount.minor())),
        ("currency", Canonical::str(transaction.currency.as_str())),
        ("paymentMethod", Canonical::str(transaction.payment_method.as_str())),
        ("status", Canonical::str(transaction.payment.status.as_str())),
        ("paymentConfirmed", Canonical::Bool(transaction.payment.confirmed)),
        ("cardLast4", Canonical::opt_str(transaction.card_last4.as_deref())),
        ("processorReference", Canonical::opt_str(transaction.processor_reference.as_deref())),
        ("createdAt", Canonical::Int(transaction.created_at.0)),
    ]));
    let mut out = String::new();
    text.write(&mut out);
    out
}

/// SHA-256 of the order's canonical text, as 64 lower-case hex characters.
pub fn order_hash(order: &Order) -> String {
    hex::encode(Sha256::digest(order_canonical_text(order).as_bytes()))
}

/// SHA-256 of the transaction's canonical text, as 64 lower-case hex characters.
pub fn transaction_hash(transaction: &Transaction) -> String {
    hex::encode(Sha256::digest(transaction_canonical_text(transaction).as_bytes()))
}
