//! Why a store operation failed.

use std::path::PathBuf;

use sled::transaction::TransactionError;
use uuid::Uuid;

/// Why a store operation failed. A failed write changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (missing permissions, another process holds it, …).
    #[error("cannot open the store in {dir}: {source}")]
    Open {
        /// The store's directory.
        dir: PathBuf,
        /// sled's reason.
        #[source]
        source: sled::Error,
    },
    /// The disk or sled failed; whether the last unflushed writes survive is unknown.
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// Written by a newer tillmesh.
    #[error("the store in {dir} has layout {found}; this build reads up to {supported}: upgrade tillmesh")]
    NewerStore {
        /// The store's directory.
        dir: PathBuf,
        /// The store's layout version.
        found: u64,
        /// This build's.
        supported: u64,
    },
    /// The store belongs to another till.
    #[error("this data directory belongs to till {stored}, not {given}")]
    OtherTill {
        /// The till the store was made for.
        stored: String,
        /// The till asked for.
        given: String,
    },
    /// The store is being opened again after a storage failure: try again shortly.
    #[error("the store is reopening after a storage failure")]
    Reopening,
    /// A stored document does not load.
    #[error("document {id}: {source}")]
    Document {
        /// The document.
        id: Uuid,
        /// Why it does not load.
        #[source]
        source: tillmesh_core::DocumentError,
    },
    /// An index or counter holds bytes this build did not write.
    #[error("store corrupt: unreadable {what}")]
    Corrupt {
        /// Which record.
        what: &'static str,
    },
    /// A remote peer's name is empty, too long or holds a NUL byte.
    #[error("invalid remote name {name:?}")]
    RemoteName {
        /// The refused name.
        name: String,
    },
    /// A paging cursor this store did not hand out.
    #[error("invalid cursor")]
    Cursor,
}

impl StoreError {
    /// Whether the disk or the device failed (a full disk, an I/O error), as opposed to a bad
    /// input or a bug: what puts a store in the failed state.
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Sled(sled::Error::Io(_)))
    }

    /// Whether the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sled(sled::Error::Io(error)) => {
                error.kind() == std::io::ErrorKind::StorageFull || error.raw_os_error() == Some(28)
            }
            _ => false,
        }
    }

    pub(crate) fn from_transaction(error: TransactionError<StoreError>) -> StoreError {
        match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => StoreError::Sled(error),
        }
    }
}
