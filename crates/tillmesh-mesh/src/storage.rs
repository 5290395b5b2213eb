//! What the core needs of a node's store. Every call is synchronous and made inside one
//! [`crate::MeshCore::handle`]; the shell makes everything written durable before it carries out
//! the step's actions.

use automerge::{AutoCommit, ChangeHash, sync};
use tillmesh_core::{SignedRosterEntry, Timestamp};
use tillmesh_sync::{DocId, Documents, Index, Refusal, Verdict};

use crate::credentials::Introductions;
use crate::event::KeptWrites;

/// A node's store as the mesh core uses it.
pub trait Storage {
    /// A failure of the storage itself (disk full, I/O error), never of a peer's input.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The node's documents as the session with one remote sees them.
    type Docs<'s>: Documents<Error = Self::Error>
    where
        Self: 's;

    /// The documents, with the sync states kept for `remote` from earlier sessions. Documents a
    /// session accepts through it are part of [`Documents::index`] at once and kept by
    /// [`Storage::commit`].
    fn documents<'s>(&'s mut self, remote: &'s str) -> Self::Docs<'s>;

    /// Keeps what `docs` accepted; returns the ids of the documents written. On failure nothing
    /// of it counts: the index is as before.
    fn commit(docs: Self::Docs<'_>) -> Result<Vec<DocId>, Self::Error>;

    /// The reconciliation index of every document held.
    fn index(&self) -> &Index;

    /// This node's own writes made since the last call that [`Storage::index`] counts already,
    /// in the order made: the core pushes them before anything else in the step, so the
    /// fingerprint a push carries never counts a write that no push carries (the peer would
    /// answer it with differences); if it kept too many and dropped some, the core reconciles
    /// with every peer instead. None by default: a shell that tells every write in an
    /// [`crate::Event::LocalWrites`] before its index shows it.
    fn take_local_writes(&mut self) -> KeptWrites {
        KeptWrites::default()
    }

    /// Every document held is in step with `remote`, as of `at`.
    fn mark_synced(&mut self, remote: &str, at: Timestamp) -> Result<(), Self::Error>;

    /// Document messages `from` sent that were refused (kept aside, counted, reported), and how
    /// many arrived again after an earlier refusal (dropped unread).
    fn refused(
        &mut self,
        from: &str,
        refusals: Vec<Refusal>,
        repeated: usize,
        at: Timestamp,
    ) -> Result<(), Self::Error>;

    /// `remote` is an admitted peer: its pending documents are counted from now on.
    fn register_remote(&mut self, remote: &str) -> Result<(), Self::Error>;

    /// Drops the sync bookkeeping of remotes that are gone for good (revoked); returns those
    /// that were known.
    fn forget_remotes(&mut self, remotes: Vec<String>) -> Result<Vec<String>, Self::Error>;

    /// Keeps the roster entries known, for the next start.
    fn save_roster(&mut self, entries: Vec<SignedRosterEntry>) -> Result<(), Self::Error>;

    /// Keeps what each peer acknowledged of our credentials, for the next start.
    fn save_introductions(&mut self, introduced: &Introductions) -> Result<(), Self::Error>;

    /// Keeps a finished session's Automerge sync states for the next session with `remote`.
    fn save_sync_states(&mut self, remote: &str, states: Vec<(DocId, Vec<u8>)>) -> Result<(), Self::Error>;
}

/// The storage of a node whose store refuses every call (it failed and has not recovered): the
/// core still keeps its peers, flow control and roster in order, and answers nothing.
#[derive(Debug, Default)]
pub struct Unavailable {
    index: Index,
}

/// Why an [`Unavailable`] storage refused.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the store refuses writes until it recovers")]
pub struct StoreUnavailable;

impl Storage for Unavailable {
    type Error = StoreUnavailable;
    type Docs<'s> = NoDocuments<'s>;

    fn documents<'s>(&'s mut self, _remote: &'s str) -> NoDocuments<'s> {
        NoDocuments { index: &self.index }
    }

    fn commit(_docs: NoDocuments<'_>) -> Result<Vec<DocId>, StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn index(&self) -> &Index {
        &self.index
    }

    fn mark_synced(&mut self, _remote: &str, _at: Timestamp) -> Result<(), StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn refused(&mut self, _: &str, _: Vec<Refusal>, _: usize, _: Timestamp) -> Result<(), StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn register_remote(&mut self, _remote: &str) -> Result<(), StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn forget_remotes(&mut self, _remotes: Vec<String>) -> Result<Vec<String>, StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn save_roster(&mut self, _entries: Vec<SignedRosterEntry>) -> Result<(), StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn save_introductions(&mut self, _introduced: &Introductions) -> Result<(), StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn save_sync_states(&mut self, _: &str, _: Vec<(DocId, Vec<u8>)>) -> Result<(), StoreUnavailable> {
        Err(StoreUnavailable)
    }
}

/// The documents of an [`Unavailable`] storage: every read and write fails.
#[derive(Debug)]
pub struct NoDocuments<'s> {
    index: &'s Index,
}

impl Documents for NoDocuments<'_> {
    type Error = StoreUnavailable;

    fn index(&self) -> &Index {
        self.index
    }

    fn saved(&mut self, _id: DocId) -> Result<Option<Vec<u8>>, StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn heads(&mut self, _id: DocId) -> Result<Option<Vec<ChangeHash>>, StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn load(&mut self, _id: DocId) -> Result<Option<AutoCommit>, StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn store(&mut self, _: DocId, _: AutoCommit, _: Option<Vec<u8>>) -> Result<Verdict, StoreUnavailable> {
        Err(StoreUnavailable)
    }

    fn sync_state(&mut self, _id: DocId) -> Result<Option<sync::State>, StoreUnavailable> {
        Err(StoreUnavailable)
    }
}
