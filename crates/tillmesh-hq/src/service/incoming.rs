//! What a client sends, read and checked before any store is touched: the batch's top level
//! ([`IncomingBatch`]), each record read on its own ([`read_record`]), and each record's fields
//! held to the documents' limits and HQ's clock.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tillmesh_core::Timestamp;
use tillmesh_core::edit::{check_device_id, limits};
use tillmesh_core::legacy::{LegacyError, Since, SyncableOrder, SyncableTransaction};

/// `POST /api/sync/batch` as it arrives: the top level is checked as a whole; each record is
/// still JSON, to be read and judged on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingBatch {
    /// The submitting device: the writer of every change in the batch.
    pub device_id: String,
    /// Orders (`SyncableOrder`s).
    #[serde(default)]
    pub orders: Vec<serde_json::Value>,
    /// Transactions (`SyncableTransaction`s).
    #[serde(default)]
    pub transactions: Vec<serde_json::Value>,
    /// Where the client's last sync ended: a time or a `nextSyncToken`.
    #[serde(default)]
    pub last_sync_timestamp: Option<Since>,
}

/// A record as read from its JSON, or why it cannot be (the field and what is wrong).
pub(super) type Judged<T> = Result<T, String>;

/// Reads one record; a failure names the field's path (`order.items[0].quantity: …`).
pub fn read_record<T: DeserializeOwned>(value: serde_json::Value) -> Judged<T> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." { inner.to_string() } else { format!("{path}: {inner}") }
    })
}

/// The times a legacy record may carry: from 2000-01-01 to HQ's now plus the clock skew allowed.
/// An order created in year 9999 would top every till's list forever.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimeRange {
    earliest: i64,
    latest: i64,
}
impl TimeRange {
    /// 2000-01-01T00:00:00Z in milliseconds.
    const EARLIEST_MS: i64 = 946_684_800_000;

    pub(super) fn around(now: Timestamp, skew_max_ms: i64) -> TimeRange {
        TimeRange { earliest: TimeRange::EARLIEST_MS, latest: now.0.saturating_add(skew_max_ms) }
    }

    pub(super) fn check(self, what: &str, created_at: Timestamp, updated_at: Timestamp) -> Judged<()> {
        for (field, time) in [("createdAt", created_at), ("updatedAt", updated_at)] {
            if !(self.earliest..=self.latest).contains(&time.0) {
                return Err(format!(
                    "{what}.{field}: {} is outside 2000-01-01 ({}) to HQ's clock plus the skew allowed ({})",
                    time.0, self.earliest, self.latest
                ));
            }
        }
        Ok(())
    }
}

/// Checks a record's metadata: its creator is a well-formed device id, its version not negative.
fn check_common(creator: &str, version: i64) -> Judged<()> {
    check_device_id(creator).map_err(|error| format!("deviceId: {error}"))?;
    if version < 0 {
        return Err(format!("syncVersion: {version} is negative"));
    }
    Ok(())
}

pub(super) fn check_order(order: &SyncableOrder, default_tax_bps: u32) -> Judged<()> {
    check_common(&order.device_id, order.sync_version)?;
    let client = &order.order;
    // What the order's document keeps as text is held to the documents' rules (no card number).
    limits::ORDER_NUMBER.check(&client.order_number).map_err(|error| format!("order.{error}"))?;
    for (field, name) in client.names() {
        limits::LEGACY_NAME.check(&name).map_err(|error| format!("order.{field}: {error}"))?;
    }
    if client.items.len() > limits::ITEMS_MAX {
        return Err(format!("order.items: at most {}", limits::ITEMS_MAX));
    }
    for (index, item) in client.items.iter().enumerate() {
        let problem = |detail: String| format!("order.items[{index}].{detail}");
        limits::SKU.check(&item.product_id).map_err(|error| problem(error.to_string()))?;
        limits::ITEM_NAME.check(&item.product_name).map_err(|error| problem(error.to_string()))?;
        if !(limits::QUANTITY_MIN..=limits::QUANTITY_MAX).contains(&item.quantity) {
            return Err(problem(format!(
                "quantity: {} is not within {}..={}",
                item.quantity,
                limits::QUANTITY_MIN,
                limits::QUANTITY_MAX
            )));
        }
        if item.unit_price > limits::UNIT_PRICE_MAX {
            return Err(problem(format!("unitPrice: at most {}", limits::UNIT_PRICE_MAX)));
        }
    }
    let refused = |error: LegacyError| format!("order.{error}");
    client.check().map_err(refused)?;
    client.pricing(default_tax_bps).map_err(refused)?;
    Ok(())
}

pub(super) fn check_transaction(transaction: &SyncableTransaction) -> Judged<()> {
    check_common(&transaction.device_id, transaction.sync_version)?;
    transaction.transaction.check().map_err(|error| format!("transaction.{error}"))?;
    limits::REFERENCE
        .check(&transaction.transaction.reference_number)
        .map_err(|error| format!("transaction.{error}"))?;
    for (field, name) in transaction.transaction.names() {
        limits::LEGACY_NAME.check(&name).map_err(|error| format!("transaction.{field}: {error}"))?;
    }
    if transaction.transaction.amount > limits::TRANSACTION_AMOUNT_MAX {
        return Err(format!("transaction.amount: at most {}", limits::TRANSACTION_AMOUNT_MAX));
    }
    Ok(())
}
