//! Why a till operation failed.

use tillmesh_core::{DocKind, EditError};
use tillmesh_store::StoreError;
use uuid::Uuid;

/// Why a till operation failed. A failed edit changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum TillError {
    /// The edit is not allowed (bad value, impossible transition, …).
    #[error(transparent)]
    Edit(#[from] EditError),
    /// No document with this id.
    #[error("no {kind} {id}")]
    NotFound {
        /// What was looked for.
        kind: DocKind,
        /// The id asked for.
        id: Uuid,
    },
    /// A document with this `localId` exists already (answered with that document).
    #[error("{id} was already created with this localId")]
    AlreadyExists {
        /// The existing document.
        id: Uuid,
    },
    /// The store failed; an edit that got this error was not acknowledged and may or may not be
    /// on disk.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The edit was written but the flush failed: it is not acknowledged and may be lost.
    #[error("the edit could not be made durable: {detail}")]
    NotDurable {
        /// The flush error.
        detail: String,
    },
    /// A bug in tillmesh: an invariant did not hold.
    #[error("internal error: {detail}")]
    Internal {
        /// Which invariant.
        detail: &'static str,
    },
    /// Only the HQ node, which holds HQ's signing key, settles payments and writes the menu.
    #[error("only HQ settles payments and writes the menu: this node does not hold HQ's signing key")]
    NotHq,
    /// The store refuses writes after an I/O error (a full disk): nothing was written. It tries
    /// again by itself every second and resumes once the disk takes writes.
    #[error("storage unavailable, nothing was written: {}", .0.reason)]
    StorageFailed(tillmesh_store::StorageFailure),
    /// The writer thread has stopped (the till is shutting down).
    #[error("the till is shutting down")]
    ShuttingDown,
}
