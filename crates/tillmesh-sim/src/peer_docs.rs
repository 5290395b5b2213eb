//! One peer's view of a node's documents, as the sync protocol's [`Documents`]: the node's
//! durable documents plus the Automerge sync states kept from earlier sessions with that peer.
//! The real node keeps both in its store and saves a session's states when the session ends
//! cleanly (`tillmesh-node`'s `save_states`); a crash loses the states of the sessions it kills.

use std::collections::BTreeMap;
use std::convert::Infallible;

use automerge::{AutoCommit, ChangeHash, sync};
use tillmesh_sync::{DocId, Documents, Index, MemoryDocuments, Verdict};

/// Sync states kept per document for one peer (encoded, as the store keeps them).
pub(crate) type SavedStates = BTreeMap<DocId, Vec<u8>>;

/// A node's documents as seen by its session with one peer.
#[derive(Debug)]
pub(crate) struct PeerDocuments<'a> {
    docs: &'a mut MemoryDocuments,
    states: Option<&'a SavedStates>,
}

impl<'a> PeerDocuments<'a> {
    /// The documents, with the states saved for this peer (if any).
    pub(crate) fn new(docs: &'a mut MemoryDocuments, states: Option<&'a SavedStates>) -> Self {
        PeerDocuments { docs, states }
    }
}

impl Documents for PeerDocuments<'_> {
    type Error = Infallible;

    fn index(&self) -> &Index {
        self.docs.index()
    }

    fn saved(&mut self, id: DocId) -> Result<Option<Vec<u8>>, Infallible> {
        self.docs.saved(id)
    }

    fn heads(&mut self, id: DocId) -> Result<Option<Vec<ChangeHash>>, Infallible> {
        self.docs.heads(id)
    }

    fn load(&mut self, id: DocId) -> Result<Option<AutoCommit>, Infallible> {
        self.docs.load(id)
    }

    fn store(&mut self, id: DocId, doc: AutoCommit, saved: Option<Vec<u8>>) -> Result<Verdict, Infallible> {
        self.docs.store(id, doc, saved)
    }

    fn sync_state(&mut self, id: DocId) -> Result<Option<sync::State>, Infallible> {
        Ok(self.states.and_then(|states| states.get(&id)).and_then(|bytes| sync::State::decode(bytes).ok()))
    }
}
