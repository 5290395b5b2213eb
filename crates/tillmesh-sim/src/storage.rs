//! A node's durable state as the mesh core's [`Storage`]: its documents, the sync states kept
//! per remote and its roster. A step's writes can fail (a storage fault drawn for the step):
//! then nothing of them is kept, as on a disk that refused the write.

use std::collections::BTreeMap;
use std::convert::Infallible;

use automerge::{AutoCommit, ChangeHash, sync};
use tillmesh_core::{Document, SignedRosterEntry, Timestamp};
use tillmesh_mesh::{Introductions, Storage};
use tillmesh_sync::{DocId, Documents, Index, MemoryDocuments, Refusal, Verdict};

/// Sync states kept per document for one remote (encoded, as the store keeps them).
pub(crate) type SavedStates = BTreeMap<DocId, Vec<u8>>;

/// The disk refused a write.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("simulated storage fault: the write was refused")]
pub(crate) struct StorageFault;

/// What one step did to the storage, for the simulator's checks and counters.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Documents a peer sent that were kept.
    pub(crate) kept: u64,
    /// Whether a write failed (the step's storage fault struck).
    pub(crate) faulted: bool,
    /// Remotes every document was marked synced with.
    pub(crate) marked: Vec<String>,
    /// Document messages refused (a valid peer never sends one).
    pub(crate) refused: Vec<(String, Refusal)>,
}

/// A node's durable state, for one step of its core.
#[derive(Debug)]
pub(crate) struct SimStorage<'n> {
    pub(crate) docs: &'n mut MemoryDocuments,
    pub(crate) states: &'n mut BTreeMap<String, SavedStates>,
    pub(crate) roster: &'n mut Vec<SignedRosterEntry>,
    pub(crate) introduced: &'n mut Introductions,
    /// Whether this step's writes fail.
    pub(crate) failing: bool,
    pub(crate) effects: Effects,
}

impl Storage for SimStorage<'_> {
    type Error = StorageFault;
    type Docs<'s>
        = PeerDocuments<'s>
    where
        Self: 's;

    fn documents<'s>(&'s mut self, remote: &'s str) -> PeerDocuments<'s> {
        PeerDocuments {
            docs: self.docs,
            states: self.states.get(remote),
            undo: Vec::new(),
            failing: self.failing,
            effects: &mut self.effects,
        }
    }

    fn commit(docs: PeerDocuments<'_>) -> Result<Vec<DocId>, StorageFault> {
        if docs.failing && !docs.undo.is_empty() {
            docs.effects.faulted = true;
            for (id, before) in docs.undo.into_iter().rev() {
                match before {
                    Some(doc) => docs.docs.put(id, doc),
                    None => {
                        docs.docs.remove(&id);
                    }
                }
            }
            return Err(StorageFault);
        }
        let mut ids: Vec<DocId> = docs.undo.into_iter().map(|(id, _)| id).collect();
        ids.sort();
        ids.dedup();
        docs.effects.kept += ids.len() as u64;
        Ok(ids)
    }

    fn index(&self) -> &Index {
        self.docs.index()
    }

    fn mark_synced(&mut self, remote: &str, _at: Timestamp) -> Result<(), StorageFault> {
        self.effects.marked.push(remote.to_string());
        Ok(())
    }

    fn refused(
        &mut self,
        from: &str,
        refusals: Vec<Refusal>,
        _: usize,
        _: Timestamp,
    ) -> Result<(), StorageFault> {
        self.effects.refused.extend(refusals.into_iter().map(|refusal| (from.to_string(), refusal)));
        Ok(())
    }

    fn register_remote(&mut self, _remote: &str) -> Result<(), StorageFault> {
        Ok(())
    }

    fn forget_remotes(&mut self, remotes: Vec<String>) -> Result<Vec<String>, StorageFault> {
        Ok(remotes.into_iter().filter(|remote| self.states.remove(remote).is_some()).collect())
    }

    fn save_roster(&mut self, entries: Vec<SignedRosterEntry>) -> Result<(), StorageFault> {
        *self.roster = entries;
        Ok(())
    }

    fn save_introductions(&mut self, introduced: &Introductions) -> Result<(), StorageFault> {
        self.introduced.clone_from(introduced);
        Ok(())
    }

    fn save_sync_states(&mut self, remote: &str, states: Vec<(DocId, Vec<u8>)>) -> Result<(), StorageFault> {
        self.states.entry(remote.to_string()).or_default().extend(states);
        Ok(())
    }
}

/// A node's documents as seen by its session with one remote: the sync states kept for it, and
/// an undo log of what this view accepted, for a write that fails.
#[derive(Debug)]
pub(crate) struct PeerDocuments<'s> {
    docs: &'s mut MemoryDocuments,
    states: Option<&'s SavedStates>,
    undo: Vec<(DocId, Option<AutoCommit>)>,
    failing: bool,
    effects: &'s mut Effects,
}

impl Documents for PeerDocuments<'_> {
    type Error = StorageFault;

    fn index(&self) -> &Index {
        self.docs.index()
    }

    fn saved(&mut self, id: DocId) -> Result<Option<Vec<u8>>, StorageFault> {
        infallible(self.docs.saved(id))
    }

    fn heads(&mut self, id: DocId) -> Result<Option<Vec<ChangeHash>>, StorageFault> {
        infallible(self.docs.heads(id))
    }

    fn load(&mut self, id: DocId) -> Result<Option<AutoCommit>, StorageFault> {
        infallible(self.docs.load(id))
    }

    fn store(&mut self, id: DocId, doc: AutoCommit, saved: Option<Vec<u8>>) -> Result<Verdict, StorageFault> {
        let before = self.docs.get(&id).cloned();
        let verdict = infallible(self.docs.store(id, doc, saved))?;
        if verdict.is_ok() {
            self.undo.push((id, before));
        }
        Ok(verdict)
    }

    fn name_whole(&mut self, bytes: &[u8]) -> Result<Result<DocId, String>, StorageFault> {
        Ok(Document::load(bytes)
            .map(|document| document.id())
            .map_err(|error| format!("not a tillmesh document: {error}")))
    }

    fn sync_state(&mut self, id: DocId) -> Result<Option<sync::State>, StorageFault> {
        Ok(self.states.and_then(|states| states.get(&id)).and_then(|bytes| sync::State::decode(bytes).ok()))
    }
}

/// The result of an in-memory read or write, which cannot fail.
fn infallible<T>(result: Result<T, Infallible>) -> Result<T, StorageFault> {
    result.map_err(|never| match never {})
}
