//! Documents held in memory: for the simulator and tests. A validator decides which documents
//! are acceptable, as the real store's would.

use std::collections::BTreeMap;
use std::convert::Infallible;

use automerge::{AutoCommit, ChangeHash, sync};

use crate::index::{DocId, Index, ItemHash};
use crate::session::{Documents, Verdict};

/// Checks a document offered by a peer before it is kept.
pub type Validator = fn(DocId, &AutoCommit) -> Verdict;

/// An in-memory document set with its index.
#[derive(Debug, Clone)]
pub struct MemoryDocuments {
    docs: BTreeMap<DocId, AutoCommit>,
    index: Index,
    validator: Validator,
}

impl Default for MemoryDocuments {
    fn default() -> Self {
        MemoryDocuments { docs: BTreeMap::new(), index: Index::new(), validator: |_, _| Ok(()) }
    }
}

impl MemoryDocuments {
    /// An empty set that accepts any Automerge document.
    pub fn new() -> MemoryDocuments {
        MemoryDocuments::default()
    }

    /// An empty set that keeps only documents `validator` accepts.
    pub fn with_validator(validator: Validator) -> MemoryDocuments {
        MemoryDocuments { validator, ..MemoryDocuments::default() }
    }

    /// Keeps a document written locally.
    pub fn put(&mut self, id: DocId, mut doc: AutoCommit) {
        self.index.insert(id, ItemHash::of(id, &doc.get_heads()));
        self.docs.insert(id, doc);
    }

    /// A document.
    pub fn get(&self, id: &DocId) -> Option<&AutoCommit> {
        self.docs.get(id)
    }

    /// Forgets a document (a write undone).
    pub fn remove(&mut self, id: &DocId) -> Option<AutoCommit> {
        self.index.remove(id);
        self.docs.remove(id)
    }

    /// Every document.
    pub fn iter(&self) -> impl Iterator<Item = (&DocId, &AutoCommit)> {
        self.docs.iter()
    }
}

impl Documents for MemoryDocuments {
    type Error = Infallible;

    fn index(&self) -> &Index {
        &self.index
    }

    fn saved(&mut self, id: DocId) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.docs.get_mut(&id).map(AutoCommit::save))
    }

    fn heads(&mut self, id: DocId) -> Result<Option<Vec<ChangeHash>>, Infallible> {
        Ok(self.docs.get_mut(&id).map(AutoCommit::get_heads))
    }

    fn load(&mut self, id: DocId) -> Result<Option<AutoCommit>, Infallible> {
        Ok(self.docs.get(&id).cloned())
    }

    fn store(&mut self, id: DocId, doc: AutoCommit, _saved: Option<Vec<u8>>) -> Result<Verdict, Infallible> {
        if let Err(reason) = (self.validator)(id, &doc) {
            return Ok(Err(reason));
        }
        self.put(id, doc);
        Ok(Ok(()))
    }

    fn sync_state(&mut self, _id: DocId) -> Result<Option<sync::State>, Infallible> {
        Ok(None)
    }
}
