//! The store as the sync protocol's [`Documents`]: runs inside a writer job, so every document a
//! peer sends is validated, written with the indexes, and flushed before the job is answered.
//! Documents accepted during one frame are written together, in one store transaction, by
//! [`StoreDocuments::write`]; until then reads see them from the batch and the index already
//! counts them.

use std::collections::BTreeMap;

use automerge::{AutoCommit, ChangeHash, sync};
use tillmesh_core::Document;
use tillmesh_store::{Prepared, StoreError};
use tillmesh_sync::{DocId, Documents, Index, Verdict};

use crate::writer::WriteContext;

/// One remote's view of the store, for one writer job.
#[derive(Debug)]
pub(crate) struct StoreDocuments<'c, 'a> {
    pub(crate) context: &'c mut WriteContext<'a>,
    /// The remote whose sync states are read.
    pub(crate) remote: &'c str,
    /// Documents accepted and not yet written.
    pub(crate) batch: BTreeMap<DocId, (Document, Prepared)>,
}

impl<'c, 'a> StoreDocuments<'c, 'a> {
    /// A view of the store for `remote`.
    pub(crate) fn new(context: &'c mut WriteContext<'a>, remote: &'c str) -> Self {
        StoreDocuments { context, remote, batch: BTreeMap::new() }
    }

    /// Writes the accepted documents in one transaction; returns their ids.
    pub(crate) fn write(mut self) -> Result<Vec<DocId>, StoreError> {
        let prepared: Vec<Prepared> = std::mem::take(&mut self.batch).into_values().map(|(_, p)| p).collect();
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        self.context.put_prepared(&prepared, Some(self.remote))
    }
}

impl Documents for StoreDocuments<'_, '_> {
    type Error = StoreError;

    fn index(&self) -> &Index {
        self.context.index
    }

    fn heads(&mut self, id: DocId) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        if let Some((document, _)) = self.batch.get_mut(&id) {
            return Ok(Some(document.heads()));
        }
        Ok(self.load(id)?.map(|mut doc| doc.get_heads()))
    }

    fn saved(&mut self, id: DocId) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some((_, prepared)) = self.batch.get(&id) {
            return Ok(Some(prepared.bytes().to_vec()));
        }
        self.context.store.get_bytes(id)
    }

    fn load(&mut self, id: DocId) -> Result<Option<AutoCommit>, StoreError> {
        if let Some((document, _)) = self.batch.get_mut(&id) {
            return Ok(Some(document.automerge().clone()));
        }
        let Some(bytes) = self.context.store.get_bytes(id)? else { return Ok(None) };
        match tillmesh_untrusted::load_document(&bytes) {
            Ok(doc) => Ok(Some(doc)),
            // Held here but no longer loadable: set aside, so that sync goes on without it (and
            // a peer's copy can take its place).
            Err(error) => {
                self.context.set_aside(id, &error.to_string())?;
                Ok(None)
            }
        }
    }

    fn store(&mut self, id: DocId, doc: AutoCommit, saved: Option<Vec<u8>>) -> Result<Verdict, StoreError> {
        let (document, prepared) = match self.context.store.receive(id, doc, saved) {
            Ok(accepted) => accepted,
            Err(reason) => return Ok(Err(reason)),
        };
        self.context.index.insert(id, prepared.item_hash());
        self.batch.insert(id, (document, prepared));
        Ok(Ok(()))
    }

    fn sync_state(&mut self, id: DocId) -> Result<Option<sync::State>, StoreError> {
        Ok(self.context.store.sync_state(self.remote, id)?.and_then(|bytes| sync::State::decode(&bytes).ok()))
    }

    fn refused_before(&mut self, bytes: &[u8]) -> Result<bool, StoreError> {
        self.context.store.is_quarantined(bytes)
    }
}
