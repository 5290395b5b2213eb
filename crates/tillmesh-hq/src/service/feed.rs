//! The change feed as `updates` lists it: a record as listed ([`Listed`]) and where a pass over
//! the feed is ([`FeedCursor`]).

use tillmesh_core::legacy::{Since, SyncStatus, SyncableOrder, SyncableTransaction};

use crate::records::{Record, RecordBody};

/// A record as `updates` lists it.
#[derive(Debug, Clone)]
pub enum Listed {
    /// An order created or changed.
    Order(SyncableOrder),
    /// A transaction created or changed.
    Transaction(SyncableTransaction),
    /// The client's `id` of a deleted order.
    DeletedOrder(String),
    /// The client's `id` of a deleted transaction.
    DeletedTransaction(String),
}

impl Listed {
    pub(super) fn of(record: Record) -> Listed {
        let sync_status = if record.deleted { SyncStatus::Deleted } else { SyncStatus::Synced };
        match record.body {
            RecordBody::Order(order) if record.deleted => Listed::DeletedOrder(order.id),
            RecordBody::Transaction(transaction) if record.deleted => {
                Listed::DeletedTransaction(transaction.id)
            }
            RecordBody::Order(order) => Listed::Order(SyncableOrder {
                order,
                local_id: record.local_id,
                sync_status,
                sync_version: record.sync_version,
                device_id: record.device_id,
                server_hash: Some(record.server_hash),
            }),
            RecordBody::Transaction(transaction) => Listed::Transaction(SyncableTransaction {
                transaction,
                local_id: record.local_id,
                sync_status,
                sync_version: record.sync_version,
                device_id: record.device_id,
                server_hash: Some(record.server_hash),
            }),
        }
    }
}

/// Where a pass over the change feed is: after `after`, up to position `end` (changes
/// committed later wait for the next call).
#[derive(Debug, Clone, Copy)]
pub struct FeedCursor {
    pub(super) after: Since,
    pub(super) end: u64,
    pub(super) done: bool,
}

impl FeedCursor {
    /// A pass over the changes after `after` up to position `end`.
    pub const fn new(after: Since, end: u64) -> FeedCursor {
        FeedCursor { after, end, done: false }
    }

    /// The position of the last change read, or the token it started from; `None` when it
    /// started from a time and read nothing.
    pub const fn position(&self) -> Option<u64> {
        match self.after {
            Since::Token(position) => Some(position),
            Since::Time(_) => None,
        }
    }
}
