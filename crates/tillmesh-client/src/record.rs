//! What the outbox keeps: [`Tracked`] records (an order or a transaction with its sync
//! metadata) and the [`LegacyRecord`] trait that lets one outbox hold both kinds.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tillmesh_core::legacy::{LegacyError, LegacyOrder, LegacyTransaction, RecordKind, SyncStatus};
use tillmesh_core::{OrderStatus, Timestamp};
use uuid::Uuid;

mod sealed {
    pub trait Sealed {}
    impl Sealed for tillmesh_core::legacy::LegacyOrder {}
    impl Sealed for tillmesh_core::legacy::LegacyTransaction {}
}

/// What the outbox keeps: [`LegacyOrder`] or [`LegacyTransaction`] (sealed).
pub trait LegacyRecord:
    sealed::Sealed + Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Send + Sync + 'static
{
    /// Which kind.
    const KIND: RecordKind;
    /// The client's `id`.
    fn client_id(&self) -> &str;
    /// Replaces the client's `id`.
    fn set_client_id(&mut self, id: String);
    /// The content hash HQ reports as `serverHash`.
    fn content_hash(&self) -> String;
    /// Checks the record as HQ will (identifiers, amounts).
    fn check(&self) -> Result<(), LegacyError>;
    /// Makes the content say "deleted" as HQ records a deletion: an order is voided; a
    /// transaction keeps its content.
    fn mark_deleted(&mut self, at: Timestamp);
    /// Whether this (server) content shows a deletion that took: an order must be voided (HQ
    /// cannot void a closed order); a transaction's deletion always takes.
    fn deletion_taken(&self) -> bool;
}

impl LegacyRecord for LegacyOrder {
    const KIND: RecordKind = RecordKind::Order;
    fn client_id(&self) -> &str {
        &self.id
    }
    fn set_client_id(&mut self, id: String) {
        self.id = id;
    }
    fn content_hash(&self) -> String {
        LegacyOrder::content_hash(self)
    }
    fn check(&self) -> Result<(), LegacyError> {
        LegacyOrder::check(self)
    }
    fn mark_deleted(&mut self, at: Timestamp) {
        self.order_status = OrderStatus::Voided.into();
        self.updated_at = at;
    }
    fn deletion_taken(&self) -> bool {
        self.order_status == OrderStatus::Voided
    }
}

impl LegacyRecord for LegacyTransaction {
    const KIND: RecordKind = RecordKind::Transaction;
    fn client_id(&self) -> &str {
        &self.id
    }
    fn set_client_id(&mut self, id: String) {
        self.id = id;
    }
    fn content_hash(&self) -> String {
        LegacyTransaction::content_hash(self)
    }
    fn check(&self) -> Result<(), LegacyError> {
        LegacyTransaction::check(self)
    }
    fn mark_deleted(&mut self, at: Timestamp) {
        self.updated_at = at;
    }
    fn deletion_taken(&self) -> bool {
        true
    }
}

/// A record in the outbox: the order or transaction as this device shows it, and its sync
/// metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracked<T> {
    /// The idempotency key HQ deduplicates by; never changes.
    pub local_id: Uuid,
    /// The order or transaction: this device's content, with HQ's values for the fields HQ kept.
    pub record: T,
    /// The device that created it (only that device may change it on HQ).
    pub device_id: String,
    /// Where it stands: `PENDING` (new), `MODIFIED` (changed since sent), `DELETED` (deletion
    /// to send), `SYNCING` (in flight), `SYNCED` (HQ holds it as shown), `FAILED` (last attempt
    /// failed; retried unless `rejected`).
    pub sync_status: SyncStatus,
    /// Incremented on every local change; raised to HQ's version when HQ's copy stands.
    pub sync_version: i64,
    /// Deleted (here, or on the server). Deleted records are not listed.
    pub deleted: bool,
    /// HQ's id of the record, once HQ answered.
    #[serde(default)]
    pub server_id: Option<String>,
    /// HQ's `syncVersion` in its last answer or update.
    #[serde(default)]
    pub server_version: Option<i64>,
    /// HQ's content hash in its last answer or update.
    #[serde(default)]
    pub server_hash: Option<String>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed (or what HQ said when it kept the record from changing).
    #[serde(default)]
    pub last_error: Option<String>,
    /// HQ refused this content as invalid: not sent again until it is saved with changes.
    #[serde(default)]
    pub rejected: bool,
    /// Client ids the record had before HQ assigned another (`SERVER_ASSIGNED` `id`): saving
    /// under an old id still finds it.
    #[serde(default)]
    pub former_ids: Vec<String>,
}

/// A [`Tracked`] order.
pub type TrackedOrder = Tracked<LegacyOrder>;
/// A [`Tracked`] transaction.
pub type TrackedTransaction = Tracked<LegacyTransaction>;

impl<T: LegacyRecord> Tracked<T> {
    /// A record new on this device: `PENDING` at version 1, unknown to HQ.
    pub(crate) fn new(local_id: Uuid, record: T, device_id: String) -> Tracked<T> {
        Tracked {
            local_id,
            record,
            device_id,
            sync_status: SyncStatus::Pending,
            sync_version: 1,
            deleted: false,
            server_id: None,
            server_version: None,
            server_hash: None,
            attempts: 0,
            last_error: None,
            rejected: false,
            former_ids: Vec::new(),
        }
    }

    /// Whether the record waits to be sent (`PENDING`, `MODIFIED`, `DELETED`, or `SYNCING`
    /// left over from an interrupted sync).
    pub fn is_pending(&self) -> bool {
        matches!(
            self.sync_status,
            SyncStatus::Pending | SyncStatus::Modified | SyncStatus::Deleted | SyncStatus::Syncing
        )
    }

    /// Whether a sync sends it: pending, or failed and not refused as invalid.
    pub fn is_sendable(&self) -> bool {
        self.is_pending() || (self.sync_status == SyncStatus::Failed && !self.rejected)
    }

    /// The status the record is sent with: `DELETED`, else `MODIFIED` once HQ knew it, else
    /// `PENDING`.
    pub fn wire_status(&self) -> SyncStatus {
        if self.deleted {
            SyncStatus::Deleted
        } else if self.server_version.is_some() {
            SyncStatus::Modified
        } else {
            SyncStatus::Pending
        }
    }

    /// Whether the local content is HQ's as of HQ's last answer.
    pub fn matches_server(&self) -> bool {
        self.server_hash.as_deref() == Some(self.record.content_hash().as_str())
    }

    /// Records that `old` was the client id before a change to the current one.
    pub(crate) fn remember_id(&mut self, old: &str) {
        if old != self.record.client_id() && !self.former_ids.iter().any(|id| id == old) {
            self.former_ids.push(old.to_string());
        }
    }

    /// The same local change as `sent`: nothing saved since it was sent.
    pub(crate) fn unchanged_since(&self, sent: &Tracked<T>) -> bool {
        self.sync_version == sent.sync_version
            && self.deleted == sent.deleted
            && self.record.content_hash() == sent.record.content_hash()
    }
}
