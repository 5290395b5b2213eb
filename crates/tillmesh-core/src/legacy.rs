//! The legacy REST sync contract of the original system (`seed/000_7e5eaa4308e293f2.md`): its
//! JSON shapes with the seed's camelCase names, the content hash used for its conflict rules,
//! and the mapping between a legacy order and an order document.
//!
//! The edge is liberal, the inside strict, as `docs/API.md` ("Existing clients") describes:
//! - money is a JSON number (the client's double, `3.3000000000000003`) rounded once to the
//!   cent, half away from zero, from its exact digits ([`rounded_money`]) — how the original
//!   `DECIMAL(10,2)` columns stored it; inside it is an exact [`Amount`];
//! - status and method names are any 1–50 characters, kept as sent ([`Named`]) and mapped onto
//!   tillmesh's model by a case-insensitive table ([`LegacyNames`]);
//! - what kotlinx.serialization leaves out as a default value may be left out: `syncStatus`
//!   (`PENDING`), `syncVersion` (1), a record's `deviceId` (the sending device), an order's
//!   `items` (none), `tax` (0), `paymentMethod` (none), `paymentStatus` (`PENDING`) and
//!   `orderStatus` (`OPEN`); unknown fields are ignored.
//!
//! `createdAt`, `updatedAt`, `syncedAt` and `lastSyncTimestamp` are milliseconds since the Unix
//! epoch.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::edit::limits;
use crate::kind::DocKind;
use crate::money::{Amount, MoneyError};
use crate::order::Order;
use crate::payment::Transaction;
use crate::quantity::Quantity;
use crate::status::{OrderStatus, PaymentMethod, PaymentStatus, UnknownValue, wire_enum};
use crate::time::Timestamp;

/// The kind of a legacy record. The legacy API knows orders and transactions only: the other
/// documents the node holds (the menu) map to no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// An order.
    Order,
    /// A payment transaction.
    Transaction,
}

impl RecordKind {
    /// The record kind of a document kind; none for a document no legacy record stands for.
    pub const fn of(kind: DocKind) -> Option<RecordKind> {
        match kind {
            DocKind::Order => Some(RecordKind::Order),
            DocKind::Transaction => Some(RecordKind::Transaction),
            DocKind::Menu => None,
        }
    }

    /// The kind's name (the document kind's: `order`, `transaction`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Order => DocKind::Order.as_str(),
            RecordKind::Transaction => DocKind::Transaction.as_str(),
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

wire_enum! {
    /// Where a record stands in a legacy client's outbox (the seed's `SyncStatus`).
    SyncStatus, "syncStatus" {
        /// Waiting to be sent.
        Pending = "PENDING",
        /// Being sent.
        Syncing = "SYNCING",
        /// The server holds it as the client does.
        Synced = "SYNCED",
        /// The last attempt failed; retried later.
        Failed = "FAILED",
        /// Changed since it was synced.
        Modified = "MODIFIED",
        /// Deleted on the client; the server records the deletion.
        Deleted = "DELETED",
    }
}

wire_enum! {
    /// How the server settled a field on which client and server disagreed.
    Resolution, "resolution" {
        /// The server's value stands (the seed's default policy).
        ServerWins = "SERVER_WINS",
        /// The client's value was taken.
        ClientWins = "CLIENT_WINS",
        /// The server assigned a new value (a colliding `orderNumber`).
        ServerAssigned = "SERVER_ASSIGNED",
    }
}

/// One line of a legacy order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyItem {
    /// Product code.
    pub product_id: String,
    /// Product name.
    pub product_name: String,
    /// How many: whole pieces or a weight (`0.5`), rounded to the thousandth as sent.
    #[serde(deserialize_with = "Quantity::deserialize_rounded")]
    pub quantity: Quantity,
    /// Price of one.
    #[serde(deserialize_with = "rounded_money")]
    pub unit_price: Amount,
    /// `quantity × unitPrice` as the client computed it (a line discount may lower it).
    #[serde(deserialize_with = "rounded_money")]
    pub total_price: Amount,
}

/// A legacy order (the seed's `Order`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyOrder {
    /// The client's id for the order.
    pub id: String,
    /// The order number, unique across all devices.
    pub order_number: String,
    /// The lines (none when left out).
    #[serde(default)]
    pub items: Vec<LegacyItem>,
    /// Sum of the lines.
    #[serde(deserialize_with = "rounded_money")]
    pub subtotal: Amount,
    /// Tax on the subtotal (zero when left out).
    #[serde(default, deserialize_with = "rounded_money")]
    pub tax: Amount,
    /// `subtotal + tax`.
    #[serde(deserialize_with = "rounded_money")]
    pub total: Amount,
    /// How the guest pays (`null` before any payment).
    #[serde(default)]
    pub payment_method: Option<Named<PaymentMethod>>,
    /// The client's payment status (`PENDING`, `PAID`, `COMPLETED`, …; `PENDING` when left
    /// out); HQ's settlement (`CAPTURED`, `DECLINED`, `REFUNDED`) from the server.
    #[serde(default = "unpaid")]
    pub payment_status: Named<PaymentStatus>,
    /// Where the order is (`OPEN`, `COMPLETED`, `CANCELLED`, …; `OPEN` when left out).
    #[serde(default = "just_opened")]
    pub order_status: Named<OrderStatus>,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Its latest change.
    pub updated_at: Timestamp,
}

/// A legacy payment transaction (the seed's `Transaction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyTransaction {
    /// The client's id for the transaction.
    pub id: String,
    /// The payment's reference number, unique across all devices.
    pub reference_number: String,
    /// How much.
    #[serde(deserialize_with = "rounded_money")]
    pub amount: Amount,
    /// How.
    pub payment_method: Named<PaymentMethod>,
    /// The client's status (`PAID`, `COMPLETED`, `SUCCESS`, …); HQ's settlement from the
    /// server.
    pub status: Named<PaymentStatus>,
    /// The order paid: its `id` as the client knows it (or the server's id).
    pub order_id: String,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Its latest change.
    pub updated_at: Timestamp,
}

/// An order with its sync metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncableOrder {
    /// The order.
    pub order: LegacyOrder,
    /// The device-made idempotency key (a UUID): the same order sent ten times is stored once.
    pub local_id: Uuid,
    /// Where it stands in the client's outbox; `DELETED` asks the server to delete it.
    /// `PENDING` when left out.
    #[serde(default = "pending")]
    pub sync_status: SyncStatus,
    /// Incremented by the client on each change; 1 when left out.
    #[serde(default = "first_version")]
    pub sync_version: i64,
    /// The device that created it; left out, the device that sends it.
    #[serde(default)]
    pub device_id: String,
    /// The server's content hash (in what the server sends; ignored in what it receives).
    #[serde(default)]
    pub server_hash: Option<String>,
}

/// A transaction with its sync metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncableTransaction {
    /// The transaction.
    pub transaction: LegacyTransaction,
    /// The device-made idempotency key (a UUID).
    pub local_id: Uuid,
    /// Where it stands in the client's outbox; `PENDING` when left out.
    #[serde(default = "pending")]
    pub sync_status: SyncStatus,
    /// Incremented by the client on each change; 1 when left out.
    #[serde(default = "first_version")]
    pub sync_version: i64,
    /// The device that created it; left out, the device that sends it.
    #[serde(default)]
    pub device_id: String,
    /// The server's content hash (in what the server sends).
    #[serde(default)]
    pub server_hash: Option<String>,
}

/// `POST /api/sync/batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSyncRequest {
    /// The submitting device; every record must carry the same.
    pub device_id: String,
    /// Orders to store.
    #[serde(default)]
    pub orders: Vec<SyncableOrder>,
    /// Transactions to store.
    #[serde(default)]
    pub transactions: Vec<SyncableTransaction>,
    /// Where the client's last sync ended: a timestamp or a `nextSyncToken`; the response's
    /// `serverUpdates` start there.
    #[serde(default)]
    pub last_sync_timestamp: Option<Since>,
}

/// A field on which the client's copy and the server's differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldConflict {
    /// The field's JSON name (`orderNumber`, `paymentStatus`, `items`, …).
    pub field: String,
    /// The client's value, as JSON text.
    pub client_value: Option<String>,
    /// The server's value, as JSON text.
    pub server_value: Option<String>,
    /// Which one stands.
    pub resolution: Resolution,
}

/// What the server did with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResponse {
    /// Whether the record is stored (or was already).
    pub success: bool,
    /// The server's id of the record.
    pub server_id: Option<String>,
    /// When the server handled it.
    pub synced_at: Timestamp,
    /// A human-readable note (why it failed, how a conflict was resolved).
    pub message: Option<String>,
    /// `null` when client and server agree, else the fields that differ and who won.
    pub conflicts: Option<Vec<FieldConflict>>,
    /// The server's `syncVersion` of the record after this request.
    pub server_version: i64,
    /// The server's content hash of the record after this request.
    pub server_hash: Option<String>,
}

/// What changed on other devices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerUpdates {
    /// Orders created or changed.
    pub orders: Vec<SyncableOrder>,
    /// Transactions created or changed.
    pub transactions: Vec<SyncableTransaction>,
    /// Ids (`order.id`) of deleted orders.
    pub deleted_order_ids: Vec<String>,
    /// Ids (`transaction.id`) of deleted transactions.
    pub deleted_transaction_ids: Vec<String>,
}

/// `POST /api/sync/batch`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSyncResponse {
    /// Whether every record was handled.
    pub success: bool,
    /// One answer per order, in request order.
    pub synced_orders: Vec<SyncResponse>,
    /// One answer per transaction, in request order.
    pub synced_transactions: Vec<SyncResponse>,
    /// What other devices changed since `lastSyncTimestamp`: everything when that is a time
    /// (or absent), one page when it is a `nextSyncToken`.
    pub server_updates: ServerUpdates,
    /// Pass as the next `lastSyncTimestamp` / `since` to continue exactly here.
    pub next_sync_token: String,
    /// Whether more changes wait after `serverUpdates` (only after a token: ask `updates`
    /// with `nextSyncToken`).
    #[serde(default)]
    pub has_more: bool,
}

/// `GET /api/sync/updates`'s answer: the seed's four lists, plus where to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatesResponse {
    /// Orders created or changed on other devices.
    pub orders: Vec<SyncableOrder>,
    /// Transactions created or changed on other devices.
    pub transactions: Vec<SyncableTransaction>,
    /// Ids of deleted orders.
    pub deleted_order_ids: Vec<String>,
    /// Ids of deleted transactions.
    pub deleted_transaction_ids: Vec<String>,
    /// Pass as the next `since` to continue exactly here.
    pub next_sync_token: String,
    /// Whether more changes wait (ask again with `nextSyncToken`).
    pub has_more: bool,
}

impl UpdatesResponse {
    /// Splits into the seed's four lists, the token and whether more wait.
    pub fn into_parts(self) -> (ServerUpdates, String, bool) {
        let updates = ServerUpdates {
            orders: self.orders,
            transactions: self.transactions,
            deleted_order_ids: self.deleted_order_ids,
            deleted_transaction_ids: self.deleted_transaction_ids,
        };
        (updates, self.next_sync_token, self.has_more)
    }
}

/// Where a client's view of the server's changes ends: a time (milliseconds since the epoch,
/// the seed's `since`) or a `nextSyncToken` the server gave (exact).
///
/// A token is a decimal number, so a client that keeps it in a `Long` (as the seed's client
/// keeps its timestamps) can send it back as `since` or `lastSyncTimestamp`: the change-feed
/// position plus [`TOKEN_BASE`], far beyond any time in milliseconds. The older form `c42` is
/// still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Changes made after this time.
    Time(Timestamp),
    /// Changes after this position in the server's change feed.
    Token(u64),
}

/// Where sync tokens start: 4·10¹⁸, a time in milliseconds some 126 million years away, still
/// well inside a signed 64-bit `Long`.
pub const TOKEN_BASE: u64 = 4_000_000_000_000_000_000;

/// The prefix of the older sync tokens: `c` and the change feed position (`c1042`).
const TOKEN_PREFIX: char = 'c';

impl Since {
    /// The token for position `position` of the change feed: its decimal text.
    pub fn token(position: u64) -> String {
        TOKEN_BASE.saturating_add(position).to_string()
    }
}

impl fmt::Display for Since {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Since::Time(time) => write!(f, "{}", time.0),
            Since::Token(position) => f.write_str(&Since::token(*position)),
        }
    }
}

/// A `since` that is neither a time nor a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("since: expected milliseconds since the epoch or a nextSyncToken, got {text:?}")]
pub struct BadSince {
    /// The rejected text, cut to 40 characters.
    pub text: String,
}

impl FromStr for Since {
    type Err = BadSince;
    fn from_str(text: &str) -> Result<Since, BadSince> {
        let bad = || BadSince { text: text.chars().take(40).collect() };
        let number = |digits: &str| -> Result<u64, BadSince> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            digits.parse().map_err(|_| bad())
        };
        match text.strip_prefix(TOKEN_PREFIX) {
            Some(position) => number(position).map(Since::Token),
            None => {
                let value = number(text)?;
                if value >= TOKEN_BASE {
                    Ok(Since::Token(value - TOKEN_BASE))
                } else {
                    i64::try_from(value).map(|ms| Since::Time(Timestamp(ms))).map_err(|_| bad())
                }
            }
        }
    }
}

impl Serialize for Since {
    /// A JSON number: the time, or the token's number.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Since::Time(time) => serializer.serialize_i64(time.0),
            Since::Token(position) => serializer.serialize_u64(TOKEN_BASE.saturating_add(*position)),
        }
    }
}

impl<'de> Deserialize<'de> for Since {
    /// A JSON number or a string: a time or a token.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(number) => number.as_str().parse(),
            serde_json::Value::String(text) => text.parse(),
            other => Err(BadSince { text: other.to_string().chars().take(40).collect() }),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// The largest amount a legacy field holds: the original server's `DECIMAL(10,2)` columns.
pub const LEGACY_AMOUNT_MAX: Amount = Amount::from_minor(9_999_999_999);

/// Reads a legacy money field: a JSON number (or decimal string) rounded to the cent, half away
/// from zero, from its exact digits ([`Amount::parse_rounded`]); what is not a finite number is
/// refused. Sign and range ([`LEGACY_AMOUNT_MAX`]) are checked by the record's rules, which
/// name the field.
pub fn rounded_money<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(number) => Amount::parse_rounded(number.as_str()),
        serde_json::Value::String(text) => Amount::parse_rounded(&text),
        other => Err(MoneyError::Invalid { text: other.to_string().chars().take(40).collect() }),
    }
    .map_err(serde::de::Error::custom)
}

/// An amount a legacy field may hold: not negative, at most [`LEGACY_AMOUNT_MAX`].
fn legacy_amount(field: &str, amount: Amount) -> Result<Amount, LegacyError> {
    let refused = |source| LegacyError::Money { field: field.to_string(), source };
    amount.non_negative().map_err(refused)?;
    if amount > LEGACY_AMOUNT_MAX {
        return Err(LegacyError::Range { field: field.to_string(), amount });
    }
    Ok(amount)
}

fn pending() -> SyncStatus {
    SyncStatus::Pending
}

const fn first_version() -> i64 {
    1
}

fn unpaid() -> Named<PaymentStatus> {
    PaymentStatus::Pending.into()
}

fn just_opened() -> Named<OrderStatus> {
    OrderStatus::Open.into()
}

/// A model value (status or method) that legacy clients name in their own words. The table
/// is case-insensitive and reads `-` and spaces as `_` (`Credit card` is `CREDIT_CARD`); a name
/// it does not know maps to [`LegacyNames::UNKNOWN`]. `docs/API.md` lists it.
pub trait LegacyNames: Copy + PartialEq + Serialize {
    /// What an unknown name means.
    const UNKNOWN: Self;
    /// The model value for a normalised (upper-case, `_`-separated) name, if the table knows it.
    fn from_normal_name(name: &str) -> Option<Self>;
    /// tillmesh's own name of the value (`CLOSED`).
    fn model_name(self) -> &'static str;
}

impl LegacyNames for OrderStatus {
    const UNKNOWN: Self = OrderStatus::Open;
    fn from_normal_name(name: &str) -> Option<Self> {
        Some(match name {
            "OPEN" | "NEW" | "PENDING" | "CREATED" | "DRAFT" | "ON_HOLD" => OrderStatus::Open,
            "SENT" | "IN_PROGRESS" | "PROCESSING" | "PREPARING" | "CONFIRMED" | "ACCEPTED" => {
                OrderStatus::Sent
            }
            "READY" => OrderStatus::Ready,
            "SERVED" | "DELIVERED" => OrderStatus::Served,
            "CLOSED" | "COMPLETED" | "COMPLETE" | "DONE" | "FINISHED" | "PAID" => OrderStatus::Closed,
            "VOIDED" | "VOID" | "CANCELLED" | "CANCELED" | "DELETED" => OrderStatus::Voided,
            _ => return None,
        })
    }
    fn model_name(self) -> &'static str {
        self.as_str()
    }
}

impl LegacyNames for PaymentStatus {
    const UNKNOWN: Self = PaymentStatus::Pending;
    fn from_normal_name(name: &str) -> Option<Self> {
        Some(match name {
            "PENDING" | "UNPAID" | "NEW" | "PROCESSING" | "FAILED" | "ERROR" | "REJECTED" => {
                PaymentStatus::Pending
            }
            "PAID" | "COMPLETED" | "COMPLETE" | "SUCCESS" | "SUCCEEDED" | "APPROVED" => PaymentStatus::Paid,
            "CAPTURED" => PaymentStatus::Captured,
            "DECLINED" => PaymentStatus::Declined,
            "REFUNDED" => PaymentStatus::Refunded,
            _ => return None,
        })
    }
    fn model_name(self) -> &'static str {
        self.as_str()
    }
}

impl LegacyNames for PaymentMethod {
    const UNKNOWN: Self = PaymentMethod::Other;
    fn from_normal_name(name: &str) -> Option<Self> {
        Some(match name {
            "CASH" => PaymentMethod::Cash,
            "CARD" | "CREDIT_CARD" | "DEBIT_CARD" | "CREDIT" | "DEBIT" | "CONTACTLESS" => PaymentMethod::Card,
            "MOBILE" | "MOBILE_PAYMENT" | "WALLET" | "APPLE_PAY" | "GOOGLE_PAY" | "QR" => {
                PaymentMethod::Mobile
            }
            "VOUCHER" | "GIFT_CARD" | "COUPON" => PaymentMethod::Voucher,
            "OTHER" => PaymentMethod::Other,
            _ => return None,
        })
    }
    fn model_name(self) -> &'static str {
        self.as_str()
    }
}

/// A status or method as a legacy client named it: the name exactly as sent (1 to
/// [`IDENTIFIER_CHARS_MAX`] characters, what the seed's `VARCHAR(50)` columns hold) and the
/// model value it maps to. Written back as sent; equal when the names are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Named<T> {
    name: String,
    value: T,
}

impl<T: LegacyNames> Named<T> {
    /// Reads a client's name; refused only when empty, too long or holding control characters.
    pub fn parse(field: &'static str, name: &str) -> Result<Named<T>, LegacyError> {
        check_identifier(field, name)?;
        let normal: String = name
            .trim()
            .chars()
            .map(|c| if c == '-' || c == ' ' { '_' } else { c.to_ascii_uppercase() })
            .collect();
        Ok(Named { name: name.to_string(), value: T::from_normal_name(&normal).unwrap_or(T::UNKNOWN) })
    }

    /// The model value.
    pub fn value(&self) -> T {
        self.value
    }

    /// The name as the client sent it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T: LegacyNames> From<T> for Named<T> {
    /// A model value under tillmesh's own name.
    fn from(value: T) -> Named<T> {
        Named { name: value.model_name().to_string(), value }
    }
}

impl<T: LegacyNames> PartialEq<T> for Named<T> {
    fn eq(&self, other: &T) -> bool {
        self.value == *other
    }
}

impl<T> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de, T: LegacyNames> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Named::parse("name", &name).map_err(serde::de::Error::custom)
    }
}

/// Why a legacy order or transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    /// A money field is wrong.
    #[error("{field}: {source}")]
    Money {
        /// The field.
        field: String,
        /// What is wrong.
        source: MoneyError,
    },
    /// Beyond what the original `DECIMAL(10,2)` columns hold.
    #[error("{field}: {amount} is beyond DECIMAL(10,2) (at most {max})", max = LEGACY_AMOUNT_MAX)]
    Range {
        /// The field.
        field: String,
        /// The amount sent.
        amount: Amount,
    },
    /// A text field is empty or too long.
    #[error("{field}: {problem}")]
    Text {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Longest `id`, `orderNumber`, `referenceNumber` or `deviceId` (the seed's VARCHAR(50)).
pub const IDENTIFIER_CHARS_MAX: usize = 50;

/// Checks an identifier: 1 to [`IDENTIFIER_CHARS_MAX`] characters, no control characters.
pub fn check_identifier(field: &'static str, text: &str) -> Result<(), LegacyError> {
    let chars = text.chars().count();
    let problem = if chars == 0 {
        Some("must not be empty".to_string())
    } else if chars > IDENTIFIER_CHARS_MAX {
        Some(format!("{chars} characters, at most {IDENTIFIER_CHARS_MAX}"))
    } else if text.chars().any(char::is_control) {
        Some("must not contain control characters".to_string())
    } else {
        None
    };
    problem.map_or(Ok(()), |problem| Err(LegacyError::Text { field, problem }))
}

/// How an order's document prices a legacy order ([`LegacyOrder::pricing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pricing {
    /// The order's tax rate in basis points.
    pub tax_rate_bps: u32,
    /// The client's total minus the priced lines and tax.
    pub adjustment: Amount,
}

impl LegacyOrder {
    /// Checks the identifiers and that every amount is non-negative and within
    /// `DECIMAL(10,2)`. Amounts that do not add up are not refused: the documents price the
    /// lines themselves ([`LegacyOrder::pricing`]) and the client's total stands through the
    /// order's adjustment; what differs goes back to the client as conflicts.
    pub fn check(&self) -> Result<(), LegacyError> {
        check_identifier("id", &self.id)?;
        check_identifier("orderNumber", &self.order_number)?;
        for (index, item) in self.items.iter().enumerate() {
            legacy_amount(&format!("items[{index}].unitPrice"), item.unit_price)?;
            legacy_amount(&format!("items[{index}].totalPrice"), item.total_price)?;
        }
        legacy_amount("subtotal", self.subtotal)?;
        legacy_amount("tax", self.tax)?;
        legacy_amount("total", self.total)?;
        Ok(())
    }

    /// How the order's document prices it: each line `quantity × unitPrice` rounded once to
    /// the cent, the tax rate that gives the client's `tax` on their sum (the shop's
    /// `default_bps` whenever it does, so later edits are taxed as a till would), and the
    /// adjustment that keeps the client's `total`: a discount (below zero: a line or order
    /// discount, a VAT-inclusive price) or a surcharge (above: a service charge). When no rate
    /// gives the client's tax exactly, the nearest is taken and the adjustment holds the cents.
    pub fn pricing(&self, default_bps: u32) -> Result<Pricing, LegacyError> {
        let money = |field: String| move |source| LegacyError::Money { field, source };
        let mut subtotal = Amount::ZERO;
        for (index, item) in self.items.iter().enumerate() {
            let field = format!("items[{index}].totalPrice");
            let line = item.quantity.price(item.unit_price).map_err(money(field.clone()))?;
            subtotal = subtotal.checked_add(line).map_err(money(field))?;
        }
        let tax_at = |bps: u32| subtotal.mul_ratio_round_half_up(i64::from(bps), 10_000);
        let tax_rate_bps = if tax_at(default_bps) == Ok(self.tax) || subtotal == Amount::ZERO {
            default_bps
        } else {
            let max = i128::from(limits::TAX_RATE_BPS_MAX);
            let numerator = i128::from(self.tax.minor()) * 10_000;
            let denominator = i128::from(subtotal.minor());
            let nearest = ((numerator + denominator / 2) / denominator).clamp(0, max);
            // Rounding to the cent lets several rates give the same tax: the exact one nearest
            // the estimate, looking both ways, else the estimate itself.
            (0..=200)
                .flat_map(|step| [nearest + step, nearest - step])
                .filter(|bps| (0..=max).contains(bps))
                .filter_map(|bps| u32::try_from(bps).ok())
                .find(|bps| tax_at(*bps) == Ok(self.tax))
                .unwrap_or(u32::try_from(nearest).unwrap_or(default_bps))
        };
        let tax = tax_at(tax_rate_bps).map_err(money("tax".into()))?;
        let adjustment = Amount::from_minor(self.total.minor() - subtotal.minor() - tax.minor());
        Ok(Pricing { tax_rate_bps, adjustment })
    }

    /// The order as a legacy client sees it: lines not voided; `id` is the document's id
    /// unless the record keeps a client's own; a status or method under the legacy device's
    /// own name where the document keeps one that still means its value.
    pub fn from_view(order: &Order) -> LegacyOrder {
        LegacyOrder {
            id: order.id.to_string(),
            order_number: order.order_number.clone(),
            items: order
                .items
                .iter()
                .filter(|item| !item.voided)
                .map(|item| LegacyItem {
                    product_id: item.sku.clone(),
                    product_name: item.name.clone(),
                    quantity: item.quantity,
                    unit_price: item.unit_price,
                    total_price: item.line_total,
                })
                .collect(),
            subtotal: order.subtotal,
            tax: order.tax,
            total: order.total,
            payment_method: legacy_name(&order.legacy_names, "paymentMethod", order.payment.method)
                .or_else(|| order.payment.method.map(Named::from)),
            payment_status: legacy_name(&order.legacy_names, "paymentStatus", Some(order.payment.status))
                .unwrap_or_else(|| order.payment.status.into()),
            order_status: legacy_name(&order.legacy_names, "orderStatus", Some(order.status))
                .unwrap_or_else(|| order.status.into()),
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }

    /// The legacy device's names of the status and payment (by legacy field), as an order
    /// document keeps them.
    pub fn names(&self) -> BTreeMap<String, String> {
        let mut names = BTreeMap::from([
            ("orderStatus".to_string(), self.order_status.name().to_string()),
            ("paymentStatus".to_string(), self.payment_status.name().to_string()),
        ]);
        if let Some(method) = &self.payment_method {
            names.insert("paymentMethod".to_string(), method.name().to_string());
        }
        names
    }

    /// The content hash the REST API reports as `serverHash` and compares for "same hash → in
    /// sync": SHA-256 over the order's JSON with `updatedAt` left out and the items in a fixed
    /// order, so a client can compute it too.
    pub fn content_hash(&self) -> String {
        let mut normal = self.clone();
        normal.updated_at = Timestamp(0);
        normal.items = self.sorted_items();
        sha256_json(&normal)
    }

    /// The fields whose values differ between `self` (the client's) and `server`.
    pub fn differences(&self, server: &LegacyOrder, resolution: Resolution) -> Vec<FieldConflict> {
        let mut conflicts = Vec::new();
        let mut field = |name: &str, client: String, server: String| {
            if client != server {
                conflicts.push(FieldConflict {
                    field: name.to_string(),
                    client_value: Some(client),
                    server_value: Some(server),
                    resolution,
                });
            }
        };
        field("orderNumber", json_text(&self.order_number), json_text(&server.order_number));
        field("items", json_text(&self.sorted_items()), json_text(&server.sorted_items()));
        field("subtotal", json_text(&self.subtotal), json_text(&server.subtotal));
        field("tax", json_text(&self.tax), json_text(&server.tax));
        field("total", json_text(&self.total), json_text(&server.total));
        field("paymentMethod", json_text(&self.payment_method), json_text(&server.payment_method));
        field("paymentStatus", json_text(&self.payment_status), json_text(&server.payment_status));
        field("orderStatus", json_text(&self.order_status), json_text(&server.order_status));
        conflicts
    }

    /// The items in a fixed order (the order of lines carries no meaning).
    fn sorted_items(&self) -> Vec<LegacyItem> {
        let mut items = self.items.clone();
        items.sort_by(|a, b| {
            let key = |item: &LegacyItem| {
                (item.product_id.clone(), item.product_name.clone(), item.unit_price, item.quantity)
            };
            key(a).cmp(&key(b))
        });
        items
    }
}

impl LegacyTransaction {
    /// Checks the identifiers and that the amount is not negative.
    pub fn check(&self) -> Result<(), LegacyError> {
        check_identifier("id", &self.id)?;
        check_identifier("referenceNumber", &self.reference_number)?;
        check_identifier("orderId", &self.order_id)?;
        legacy_amount("amount", self.amount)?;
        Ok(())
    }

    /// The transaction as a legacy client sees it; `orderId` is the order document's id unless
    /// the caller substitutes a client's own.
    pub fn from_view(transaction: &Transaction) -> LegacyTransaction {
        LegacyTransaction {
            id: transaction.id.to_string(),
            reference_number: transaction.reference_number.clone(),
            amount: transaction.amount,
            payment_method: legacy_name(
                &transaction.legacy_names,
                "paymentMethod",
                Some(transaction.payment_method),
            )
            .unwrap_or_else(|| transaction.payment_method.into()),
            status: legacy_name(&transaction.legacy_names, "status", Some(transaction.payment.status))
                .unwrap_or_else(|| transaction.payment.status.into()),
            order_id: transaction.order_id.to_string(),
            created_at: transaction.created_at,
            updated_at: transaction.updated_at,
        }
    }

    /// The legacy device's names of the status and method (by legacy field), as a transaction
    /// document keeps them.
    pub fn names(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("paymentMethod".to_string(), self.payment_method.name().to_string()),
            ("status".to_string(), self.status.name().to_string()),
        ])
    }

    /// Takes the client's own names of the status and method where the server's values mean
    /// the same.
    pub fn keep_names_of(&mut self, client: &LegacyTransaction) {
        keep_name(&mut self.status, &client.status);
        keep_name(&mut self.payment_method, &client.payment_method);
    }

    /// The content hash (`serverHash`): SHA-256 of the JSON without `updatedAt`.
    pub fn content_hash(&self) -> String {
        let mut normal = self.clone();
        normal.updated_at = Timestamp(0);
        sha256_json(&normal)
    }

    /// The fields whose values differ between `self` (the client's) and `server`.
    pub fn differences(&self, server: &LegacyTransaction, resolution: Resolution) -> Vec<FieldConflict> {
        let mut conflicts = Vec::new();
        let mut field = |name: &str, client: String, server: String| {
            if client != server {
                conflicts.push(FieldConflict {
                    field: name.to_string(),
                    client_value: Some(client),
                    server_value: Some(server),
                    resolution,
                });
            }
        };
        field("referenceNumber", json_text(&self.reference_number), json_text(&server.reference_number));
        field("amount", json_text(&self.amount), json_text(&server.amount));
        field("paymentMethod", json_text(&self.payment_method), json_text(&server.payment_method));
        field("status", json_text(&self.status), json_text(&server.status));
        field("orderId", json_text(&self.order_id), json_text(&server.order_id));
        conflicts
    }
}

/// The legacy device's name a document keeps for `field` (in its `legacyNames`), where it still
/// means `value` (or where the document records no value: a method without a payment claim).
fn legacy_name<T: LegacyNames>(
    names: &BTreeMap<String, String>,
    field: &'static str,
    value: Option<T>,
) -> Option<Named<T>> {
    let named = Named::<T>::parse(field, names.get(field)?).ok()?;
    value.is_none_or(|value| named.value() == value).then_some(named)
}

fn keep_name<T: LegacyNames>(server: &mut Named<T>, client: &Named<T>) {
    if server.value() == client.value() {
        server.clone_from(client);
    }
}

/// The document id for a legacy record whose client `id` is `client_id`: that id when it is a
/// UUID (as the seed's clients make them), else one derived from it. Either way a transaction's
/// `orderId` leads to its order's document without a lookup.
pub fn document_id(kind: &str, client_id: &str) -> Uuid {
    Uuid::parse_str(client_id)
        .unwrap_or_else(|_| Uuid::new_v5(&LEGACY_NAMESPACE, format!("{kind}/{client_id}").as_bytes()))
}

/// The document id for a record whose client `id` another record holds already.
pub fn fallback_document_id(kind: &str, local_id: Uuid) -> Uuid {
    Uuid::new_v5(&LEGACY_NAMESPACE, format!("{kind}/local/{local_id}").as_bytes())
}

/// The id of the `index`-th item added to document `doc` by change `version` of a legacy order.
pub fn item_id(doc: Uuid, version: i64, index: usize) -> Uuid {
    Uuid::new_v5(&doc, format!("item/{version}/{index}").as_bytes())
}

/// The namespace of ids HQ derives for legacy records.
const LEGACY_NAMESPACE: Uuid = Uuid::from_u128(0x7e5e_aa43_08e2_93f2_8c1d_4b9e_2a6f_0d51);

/// A value as the JSON text conflicts carry in `clientValue` / `serverValue`.
pub fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| format!("<{error}>"))
}

fn sha256_json<T: Serialize>(value: &T) -> String {
    hex::encode(Sha256::digest(json_text(value).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(quantity: &str, price: &str) -> LegacyItem {
        let unit_price: Amount = price.parse().expect("price");
        let quantity: Quantity = quantity.parse().expect("quantity");
        LegacyItem {
            product_id: "P1".into(),
            product_name: "Burger".into(),
            quantity,
            unit_price,
            total_price: quantity.price(unit_price).expect("total"),
        }
    }

    fn order(items: Vec<LegacyItem>, tax: &str) -> LegacyOrder {
        let subtotal =
            items.iter().fold(Amount::ZERO, |sum, item| sum.checked_add(item.total_price).expect("sum"));
        let tax: Amount = tax.parse().expect("tax");
        LegacyOrder {
            id: "order-123".into(),
            order_number: "ORD-1001".into(),
            items,
            subtotal,
            tax,
            total: subtotal.checked_add(tax).expect("total"),
            payment_method: Some(PaymentMethod::Card.into()),
            payment_status: PaymentStatus::Pending.into(),
            order_status: OrderStatus::Open.into(),
            created_at: Timestamp(1_704_067_200_000),
            updated_at: Timestamp(1_704_067_200_000),
        }
    }

    #[test]
    fn the_seeds_json_parses_exactly() {
        let text = r#"{"deviceId":"device-abc-123","orders":[{"order":{"id":"order-123","orderNumber":"ORD-1001",
            "items":[{"productId":"p","productName":"Cake","quantity":1,"unitPrice":45.99,"totalPrice":45.99}],
            "subtotal":45.99,"tax":0,"total":45.99,"paymentMethod":"CARD","paymentStatus":"PAID",
            "orderStatus":"OPEN","createdAt":1704067200000,"updatedAt":1704067200000,"extra":1},
            "localId":"4b0c5f8e-3c1d-4e56-9a0b-1c2d3e4f5a6b","syncStatus":"PENDING","syncVersion":1,
            "deviceId":"device-abc-123"}],"transactions":[],"lastSyncTimestamp":1704067200000}"#;
        let request: BatchSyncRequest = serde_json::from_str(text).expect("the seed's request");
        let order = &request.orders[0].order;
        assert_eq!(order.total, Amount::from_minor(4599));
        order.check().expect("adds up");
        assert_eq!(request.last_sync_timestamp, Some(Since::Time(Timestamp(1_704_067_200_000))));
        let written = serde_json::to_string(order).expect("json");
        assert!(written.contains(r#""total":45.99"#), "{written}");
    }

    #[test]
    fn a_kotlin_clients_record_is_read_as_it_is() {
        // Doubles, its own names, defaults left out (kotlinx.serialization omits them).
        let text = r#"{"order":{"id":"o-1","orderNumber":"1001","items":[{"productId":"5449000000996",
            "productName":"Cola","quantity":3,"unitPrice":1.1,"totalPrice":3.3000000000000003}],
            "subtotal":3.3000000000000003,"tax":0.30000000000000004,"total":3.6000000000000005,
            "paymentMethod":"credit_card","paymentStatus":"COMPLETED","orderStatus":"Completed",
            "createdAt":1736899200000,"updatedAt":1736899200000},
            "localId":"4b0c5f8e-3c1d-4e56-9a0b-1c2d3e4f5a6b","deviceId":"register-A"}"#;
        let record: SyncableOrder = serde_json::from_str(text).expect("a Kotlin client's record");
        assert_eq!((record.sync_status, record.sync_version), (SyncStatus::Pending, 1));
        let order = &record.order;
        assert_eq!(order.items[0].total_price, Amount::from_minor(330));
        assert_eq!(
            (order.subtotal, order.tax, order.total),
            (Amount::from_minor(330), Amount::from_minor(30), Amount::from_minor(360))
        );
        order.check().expect("adds up once rounded");
        assert_eq!(order.order_status, OrderStatus::Closed);
        assert_eq!(order.payment_status, PaymentStatus::Paid);
        assert_eq!(order.payment_method.as_ref().map(Named::value), Some(PaymentMethod::Card));
        let written = serde_json::to_string(order).expect("json");
        assert!(written.contains(r#""orderStatus":"Completed""#), "names go back as sent: {written}");
        assert!(written.contains(r#""total":3.60"#), "the stored value goes back: {written}");
    }

    #[test]
    fn what_kotlinx_leaves_out_has_its_default() {
        let text = r#"{"order":{"id":"o-2","orderNumber":"1002","subtotal":0,"total":0,
            "createdAt":1736899200000,"updatedAt":1736899200000},
            "localId":"4b0c5f8e-3c1d-4e56-9a0b-1c2d3e4f5a6b"}"#;
        let record: SyncableOrder = serde_json::from_str(text).expect("defaults left out");
        assert_eq!(record.device_id, "", "the sender's, filled in by HQ");
        let order = &record.order;
        assert_eq!((order.items.len(), order.tax, order.payment_method.is_none()), (0, Amount::ZERO, true));
        assert_eq!((order.order_status.name(), order.payment_status.name()), ("OPEN", "PENDING"));
    }

    #[test]
    fn names_map_case_insensitively_and_unknown_ones_are_kept() {
        let status = |name: &str| Named::<OrderStatus>::parse("orderStatus", name).expect("a name").value();
        assert_eq!(status("cancelled"), OrderStatus::Voided);
        assert_eq!(status("In-Progress"), OrderStatus::Sent);
        assert_eq!(status("EATEN"), OrderStatus::Open);
        let payment = |name: &str| Named::<PaymentStatus>::parse("status", name).expect("a name").value();
        assert_eq!(payment("SUCCESS"), PaymentStatus::Paid);
        assert_eq!(payment("failed"), PaymentStatus::Pending);
        assert_eq!(payment("UNPAID"), PaymentStatus::Pending);
        let method =
            |name: &str| Named::<PaymentMethod>::parse("paymentMethod", name).expect("a name").value();
        assert_eq!(method("Credit Card"), PaymentMethod::Card);
        assert_eq!(method("BITCOIN"), PaymentMethod::Other);
        assert!(Named::<OrderStatus>::parse("orderStatus", "").is_err());
        assert!(Named::<OrderStatus>::parse("orderStatus", &"X".repeat(51)).is_err());
        for bad in [r#""""#, "3", "null"] {
            assert!(serde_json::from_str::<Named<OrderStatus>>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_beyond_decimal_10_2_or_not_finite_is_refused() {
        #[derive(Debug, Deserialize)]
        struct Field {
            #[serde(deserialize_with = "rounded_money")]
            amount: Amount,
        }
        let read =
            |text: &str| serde_json::from_str::<Field>(&format!(r#"{{"amount":{text}}}"#)).map(|f| f.amount);
        for good in ["99999999.99", "0.004", "\"12.345\""] {
            assert!(read(good).is_ok_and(|amount| legacy_amount("amount", amount).is_ok()), "{good}");
        }
        for beyond in ["100000000", "99999999.995", "-0.01"] {
            let amount = read(beyond).expect("a number");
            assert!(legacy_amount("amount", amount).is_err(), "{beyond}");
        }
        for bad in ["\"NaN\"", "true", "\"1,5\""] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_total_stands_whatever_its_parts_add_up_to() {
        let pricing = |order: &LegacyOrder| order.pricing(0).expect("priced");
        let plain = order(vec![item("2", "4.50")], "0.74");
        assert_eq!(pricing(&plain), Pricing { tax_rate_bps: 822, adjustment: Amount::ZERO });
        // An order discount, a line discount, a subtotal that is not the lines' sum: the
        // document prices the lines and the adjustment keeps the client's total.
        let mut discounted = plain.clone();
        discounted.total = Amount::from_minor(874);
        assert_eq!(pricing(&discounted).adjustment, Amount::from_minor(-100));
        let mut line_discount = plain.clone();
        line_discount.items[0].total_price = Amount::from_minor(800);
        line_discount.subtotal = Amount::from_minor(800);
        line_discount.total = Amount::from_minor(866);
        line_discount.check().expect("a line discount is taken");
        assert_eq!(
            pricing(&line_discount),
            Pricing { tax_rate_bps: 822, adjustment: Amount::from_minor(-108) }
        );
        // Weighed goods: 0.5 × 12.99 = 6.495, rounded once to 6.50.
        let weighed = order(vec![item("0.5", "12.99"), item("1.25", "2.00")], "0");
        assert_eq!(weighed.subtotal, Amount::from_minor(900));
        assert_eq!(pricing(&weighed).adjustment, Amount::ZERO);
        for bad in [order(vec![item("1", "-1.00")], "0"), order(vec![item("1", "100000000.00")], "0")] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_tax_rate_is_recovered_or_the_nearest_taken() {
        let rate =
            |order: LegacyOrder, default_bps: u32| order.pricing(default_bps).expect("priced").tax_rate_bps;
        assert_eq!(rate(order(vec![item("2", "4.50")], "0.74"), 0), 822);
        assert_eq!(rate(order(vec![item("1", "100.00")], "8.25"), 0), 825);
        assert_eq!(rate(order(vec![], "0"), 700), 700);
        // 0.25 on 3.00 is 8.25 % as well as 8.33 %: the shop's rate is kept.
        assert_eq!(rate(order(vec![item("1", "3.00")], "0.25"), 825), 825);
        assert_eq!(rate(order(vec![item("1", "3.00")], "0.25"), 0), 833);
        // Tax rounded line by line (3 × 0.08) is still a rate of the sum; a tax above the
        // subtotal is not: the nearest rate is taken, the rest is in the adjustment.
        let mut per_line = order(vec![item("1", "0.99"), item("1", "0.99"), item("1", "0.99")], "0.24");
        per_line.total = Amount::from_minor(321);
        let pricing = per_line.pricing(0).expect("priced");
        assert_eq!((pricing.tax_rate_bps, pricing.adjustment), (808, Amount::ZERO));
        let heavy = order(vec![item("1", "1.00")], "5.00");
        let pricing = heavy.pricing(0).expect("priced");
        assert_eq!(pricing.tax_rate_bps, limits::TAX_RATE_BPS_MAX);
        assert_eq!(pricing.adjustment, Amount::from_minor(400));
    }

    #[test]
    fn content_hash_ignores_update_time_and_item_order() {
        let a = order(vec![item("1", "1.00"), item("2", "3.00")], "0");
        let mut b = order(vec![item("2", "3.00"), item("1", "1.00")], "0");
        b.updated_at = Timestamp(5);
        assert_eq!(a.content_hash(), b.content_hash());
        b.order_status = OrderStatus::Sent.into();
        assert_ne!(a.content_hash(), b.content_hash());
        let differences = a.differences(&b, Resolution::ServerWins);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].field, "orderStatus");
    }

    #[test]
    fn since_takes_a_time_or_a_token() {
        assert_eq!("1704067200000".parse(), Ok(Since::Time(Timestamp(1_704_067_200_000))));
        assert_eq!("c42".parse(), Ok(Since::Token(42)));
        let token = Since::Token(42).to_string();
        assert_eq!(token, "4000000000000000042");
        // A Long holds it, and it reads back as the same position, as text or as a number.
        assert!(token.parse::<i64>().is_ok());
        assert_eq!(token.parse(), Ok(Since::Token(42)));
        let as_number: Since = serde_json::from_str(&token).expect("a JSON number");
        assert_eq!(as_number, Since::Token(42));
        assert_eq!(serde_json::to_string(&Since::Token(42)).expect("json"), token);
        for bad in ["", "c", "c-1", "x42", "12a", "-5", "99999999999999999999999"] {
            assert!(bad.parse::<Since>().is_err(), "{bad}");
        }
    }
}
