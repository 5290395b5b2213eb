//! HQ's system of record for the legacy REST API: one [`Record`] per `localId` (an order or a
//! transaction, with its sync metadata and its Automerge document), a change feed for
//! `updates`, the order-number index, device tokens and the conflict log.
//!
//! [`RecordStore`] is the one storage interface; [`crate::sled_records`] (embedded, the default)
//! and [`crate::pg_records`] (PostgreSQL) implement it, and everything above is written once
//! against it. Writes happen in a [`RecordBatch`]: exclusive (no other batch, in this process or
//! another sharing the database, runs at the same time) and all-or-nothing.

use std::future::Future;

use serde::{Deserialize, Serialize};
use tillmesh_core::Timestamp;
use tillmesh_core::legacy::{FieldConflict, LegacyOrder, LegacyTransaction, RecordKind, Since};
use uuid::Uuid;

/// The legacy view of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordBody {
    /// An order, as legacy clients see it.
    Order(LegacyOrder),
    /// A transaction, as legacy clients see it.
    Transaction(LegacyTransaction),
}

impl RecordBody {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordBody::Order(_) => RecordKind::Order,
            RecordBody::Transaction(_) => RecordKind::Transaction,
        }
    }

    /// The unique number: `orderNumber` or `referenceNumber`.
    pub fn number(&self) -> &str {
        match self {
            RecordBody::Order(order) => &order.order_number,
            RecordBody::Transaction(transaction) => &transaction.reference_number,
        }
    }

    /// The client's `id` of the record.
    pub fn client_id(&self) -> &str {
        match self {
            RecordBody::Order(order) => &order.id,
            RecordBody::Transaction(transaction) => &transaction.id,
        }
    }

    /// The content hash (`serverHash`).
    pub fn content_hash(&self) -> String {
        match self {
            RecordBody::Order(order) => order.content_hash(),
            RecordBody::Transaction(transaction) => transaction.content_hash(),
        }
    }
}

/// One order or transaction as HQ holds it for legacy clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The device-made idempotency key; unique per kind.
    pub local_id: Uuid,
    /// The Automerge document's id (the REST `serverId`).
    pub doc_id: Uuid,
    /// The device that created it.
    pub device_id: String,
    /// The device of its latest change (`updates` never returns a device's own writes).
    pub written_by: String,
    /// HQ's version: the client's `syncVersion` when a client wins, one more on every change
    /// made elsewhere (a till, HQ's settlement).
    pub sync_version: i64,
    /// The content hash of `body`.
    pub server_hash: String,
    /// Hex of the document version `body` reflects ([`tillmesh_sync::ItemHash`]).
    pub heads: String,
    /// Deleted by its client (`syncStatus: DELETED`).
    pub deleted: bool,
    /// What legacy clients see.
    pub body: RecordBody,
    /// A payment conflict already logged for this record (so it is logged once).
    pub logged_conflict: Option<String>,
    /// When HQ last changed it.
    pub changed_at: Timestamp,
    /// Its position in the change feed, assigned by [`RecordBatch::put`].
    pub position: u64,
    /// The Automerge document's saved bytes.
    #[serde(skip)]
    pub document: Vec<u8>,
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        self.body.kind()
    }
}

/// A conflict HQ resolved, for its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictEntry {
    /// When.
    pub at: Timestamp,
    /// Which kind of record.
    pub kind: RecordKind,
    /// The record's `localId`.
    pub local_id: Uuid,
    /// The document (`serverId`).
    pub doc_id: Uuid,
    /// The device that wrote the change whose value lost (or was renumbered): the
    /// authenticated writer, which may not be the record's creator.
    pub device_id: String,
    /// The field, both values and who won.
    #[serde(flatten)]
    pub conflict: FieldConflict,
}

/// Conflict-log entries kept: older ones are dropped as new ones come, so that a device
/// resending stale copies in a loop cannot grow the log (and the disk) without bound.
pub const CONFLICTS_KEPT: u64 = 10_000;

/// What the record store holds, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordCounts {
    /// Order records.
    pub orders: u64,
    /// Transaction records.
    pub transactions: u64,
    /// Legacy devices whose token is valid (registered and not revoked).
    pub devices: u64,
    /// Conflict-log entries held (at most [`CONFLICTS_KEPT`]).
    pub conflicts: u64,
}

/// A legacy device, as HQ's back office lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyDevice {
    /// The device.
    pub device_id: String,
    /// When its current token was issued; `None` for a device the embedded store registered
    /// before it kept the time.
    pub added_at: Option<Timestamp>,
    /// When its token was revoked (refused since); `None` while the token is valid.
    pub revoked_at: Option<Timestamp>,
}

/// A record's document version, for reconciling the store with HQ's peer store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion {
    /// The record's kind.
    pub kind: RecordKind,
    /// Its `localId`.
    pub local_id: Uuid,
    /// Its document.
    pub doc_id: Uuid,
    /// Hex of the document version the record reflects.
    pub heads: String,
}

/// Why the record store failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The embedded store failed.
    #[error("record store: {0}")]
    Sled(#[from] sled::Error),
    /// The peer store failed.
    #[error(transparent)]
    Store(#[from] tillmesh_store::StoreError),
    /// PostgreSQL failed or is unreachable.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("PostgreSQL migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored bytes that this build did not write.
    #[error("record store corrupt: {what}")]
    Corrupt {
        /// What could not be read.
        what: String,
    },
    /// A device id is registered already and not revoked (tokens are issued once per device,
    /// again only after a revocation).
    #[error("device {device_id} already has a token")]
    DeviceExists {
        /// The device.
        device_id: String,
    },
    /// No device with this id was ever registered.
    #[error("no device {device_id} is registered")]
    UnknownDevice {
        /// The device.
        device_id: String,
    },
}

/// Storage for legacy records: sled or PostgreSQL.
pub trait RecordStore: Send + Sync + 'static {
    /// An exclusive, all-or-nothing batch of writes.
    type Batch<'a>: RecordBatch + 'a
    where
        Self: 'a;

    /// Starts a batch; waits while another batch (of any process sharing the store) runs.
    fn begin(&self) -> impl Future<Output = Result<Self::Batch<'_>, RecordError>> + Send;

    /// The record of `kind` with `local_id`, with its document.
    fn get(
        &self,
        kind: RecordKind,
        local_id: Uuid,
    ) -> impl Future<Output = Result<Option<Record>, RecordError>> + Send;

    /// Up to `limit` records changed after `since`, in change-feed order, without documents.
    fn changes(
        &self,
        since: Since,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Record>, RecordError>> + Send;

    /// The newest change-feed position (0 when empty).
    fn last_position(&self) -> impl Future<Output = Result<u64, RecordError>> + Send;

    /// Every record's document version.
    fn versions(&self) -> impl Future<Output = Result<Vec<RecordVersion>, RecordError>> + Send;

    /// How many records, devices and conflicts.
    fn counts(&self) -> impl Future<Output = Result<RecordCounts, RecordError>> + Send;

    /// Registers a legacy device with the SHA-256 (hex) of its bearer token, issued `at`. A
    /// revoked device is registered afresh with this token (its old one stays refused); one
    /// whose token is valid is [`RecordError::DeviceExists`].
    fn add_device(
        &self,
        device_id: &str,
        token_sha256: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), RecordError>> + Send;

    /// Revokes a device's token `at` and returns the device. A device revoked already keeps its
    /// first revocation time; an unknown one is [`RecordError::UnknownDevice`].
    fn revoke_device(
        &self,
        device_id: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<LegacyDevice, RecordError>> + Send;

    /// Every legacy device, revoked or not, by device id.
    fn devices(&self) -> impl Future<Output = Result<Vec<LegacyDevice>, RecordError>> + Send;

    /// The device registered as `device_id`.
    fn device(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Option<LegacyDevice>, RecordError>> + Send;

    /// The device whose current token has this SHA-256 (hex), revoked or not.
    fn device_of(
        &self,
        token_sha256: &str,
    ) -> impl Future<Output = Result<Option<LegacyDevice>, RecordError>> + Send;

    /// The newest `limit` conflicts, newest first.
    fn conflicts(&self, limit: usize)
    -> impl Future<Output = Result<Vec<ConflictEntry>, RecordError>> + Send;
}

/// The keys a batch is about to look up ([`RecordBatch::read_ahead`]): records by kind and
/// `localId`, numbers by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchKeys {
    /// For [`RecordBatch::get`].
    pub local_ids: Vec<(RecordKind, Uuid)>,
    /// For [`RecordBatch::number_owner`].
    pub numbers: Vec<(RecordKind, String)>,
}

impl BatchKeys {
    /// Adds a record's keys: its `localId` and its number.
    pub fn add(&mut self, kind: RecordKind, local_id: Uuid, number: &str) {
        self.local_ids.push((kind, local_id));
        self.numbers.push((kind, number.to_string()));
    }
}

/// Writes that become visible together on [`RecordBatch::commit`]; dropping the batch discards
/// them. Reads see the batch's own writes.
pub trait RecordBatch: Send {
    /// Reads at once what the batch is about to look up, so that [`RecordBatch::get`] and
    /// [`RecordBatch::number_owner`] answer for those keys without a round trip each (PostgreSQL
    /// reads them in one statement; sled, whose lookups are local, reads nothing ahead). Other
    /// keys may still be looked up.
    fn read_ahead(&mut self, keys: &BatchKeys) -> impl Future<Output = Result<(), RecordError>> + Send;

    /// The record of `kind` with `local_id`, with its document.
    fn get(
        &mut self,
        kind: RecordKind,
        local_id: Uuid,
    ) -> impl Future<Output = Result<Option<Record>, RecordError>> + Send;

    /// The `localId` of the record of `kind` that holds `number`.
    fn number_owner(
        &mut self,
        kind: RecordKind,
        number: &str,
    ) -> impl Future<Output = Result<Option<Uuid>, RecordError>> + Send;

    /// The last number of HQ's own sequence given out (0 before the first): the next ones
    /// follow it, so a batch can read ahead the numbers it may give.
    fn last_assigned_number(&self) -> u64;

    /// The next number of HQ's own sequence (for renumbered orders), from 1.
    fn next_assigned_number(&mut self) -> impl Future<Output = Result<u64, RecordError>> + Send;

    /// Inserts or replaces the record (by kind and `localId`), gives it the next change-feed
    /// position and returns it. Its number must be free or its own.
    fn put(&mut self, record: Record) -> impl Future<Output = Result<Record, RecordError>> + Send;

    /// Logs a resolved conflict.
    fn log_conflict(&mut self, entry: ConflictEntry) -> impl Future<Output = Result<(), RecordError>> + Send;

    /// Makes every write of the batch visible and durable.
    fn commit(self) -> impl Future<Output = Result<(), RecordError>> + Send;
}
