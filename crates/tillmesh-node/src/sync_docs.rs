//! The store as the mesh core's [`Storage`] and the sync protocol's [`Documents`]: runs inside a
//! writer job, so every document a peer sends is validated, written with the indexes, and flushed
//! before the job is answered (the core's actions are carried out only then). Documents accepted
//! during one frame are written together, in one store transaction, by [`Storage::commit`];
//! until then reads see them from the batch and the index already counts them (a failed write
//! leaves the store failed, and the writer reads the index again from disk).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;

use automerge::{AutoCommit, ChangeHash, sync};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tillmesh_core::{SignedRosterEntry, Timestamp};
use tillmesh_mesh::{Introductions, KeptWrites, Storage};
use tillmesh_store::{Prepared, Quarantined, Store, StoreError};
use tillmesh_sync::{DocBody, DocId, Documents, Index, Refusal, Verdict};

use crate::sync_control::SyncStats;
use crate::writer::WriteContext;

/// The setting under which the known roster entries are kept.
pub(crate) const ROSTER_SETTING: &str = "roster";
/// The setting under which what each peer acknowledged of our credentials is kept.
pub(crate) const INTRODUCTIONS_SETTING: &str = "introductions";

/// A JSON setting of the store; its default when it is missing or does not parse (a roster or
/// introductions lost that way are presented again by peers).
pub(crate) fn stored_setting<T: DeserializeOwned + Default>(
    store: &Store,
    key: &str,
) -> Result<T, StoreError> {
    let bytes = store.setting(key)?;
    Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default())
}

/// Whole documents of a peer's frame, each loaded and checked as the store would keep it
/// ([`Store::receive`]) before the frame reaches the writer: a catch-up frame holds hundreds, and
/// loading them is most of the work of taking the frame in, so it is spread over every core
/// instead of running one after the other on the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Predecoded {
    decoded: HashMap<DocId, Decoded>,
    /// The ids of the documents loaded, by a hash of their bytes, for those sent without one (a
    /// compact frame's); the bytes themselves are compared when one is looked up.
    named: HashMap<u64, DocId>,
}

/// One whole document as [`Store::receive`] judged it: accepted with its heads and what the
/// store writes (the loaded document itself is dropped at once: it takes many times its saved
/// size in memory, and a frame brings hundreds), or refused.
#[derive(Debug)]
enum Decoded {
    Accepted(Vec<ChangeHash>, Prepared),
    Refused { bytes: Vec<u8>, reason: String },
}

impl Decoded {
    fn of(store: &Store, id: DocId, bytes: Vec<u8>) -> Decoded {
        let doc = match tillmesh_untrusted::load_document(&bytes) {
            Ok(doc) => doc,
            Err(error) => return Decoded::Refused { reason: tillmesh_sync::undecodable(&error), bytes },
        };
        match store.receive(id, doc, Some(bytes.clone())) {
            Ok((mut document, prepared)) => Decoded::Accepted(document.heads(), prepared),
            Err(reason) => Decoded::Refused { bytes, reason },
        }
    }

    /// A whole document sent without its id, accepted under the id its header gives, or why it
    /// is refused.
    fn unnamed(store: &Store, bytes: Vec<u8>) -> Result<(DocId, Decoded), String> {
        let doc =
            tillmesh_untrusted::load_document(&bytes).map_err(|error| tillmesh_sync::undecodable(&error))?;
        let (mut document, prepared) = store.receive_unnamed(doc, Some(bytes))?;
        Ok((document.id(), Decoded::Accepted(document.heads(), prepared)))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Decoded::Accepted(_, prepared) => prepared.bytes(),
            Decoded::Refused { bytes, .. } => bytes,
        }
    }
}

impl Predecoded {
    /// Loads the whole documents of `frame` (a peer's encoded frame) that are not held here on
    /// blocking threads, as many as the machine has cores (a document held here is merged by
    /// the writer, which loads both copies itself), and every one sent without its id (which
    /// loading names). Nothing for a frame with fewer than two (another thread gains nothing
    /// then) or one that does not decode (the mesh core reports it).
    pub(crate) async fn of(store: &Store, frame: &[u8]) -> Predecoded {
        let Ok(frame) = tillmesh_sync::decode(frame) else { return Predecoded::default() };
        // Documents sent without their ids are loaded whether held here or not: loading names
        // them.
        let mut whole: Vec<(Option<DocId>, Vec<u8>)> = frame
            .docs
            .into_iter()
            .filter_map(|message| match message.body {
                DocBody::Whole(bytes) if !matches!(store.item_hash(message.id), Ok(Some(_))) => {
                    Some((Some(message.id), bytes))
                }
                DocBody::Unnamed(bytes) => Some((None, bytes)),
                DocBody::Whole(_) | DocBody::Sync(_) => None,
            })
            .collect();
        if whole.len() < 2 {
            return Predecoded::default();
        }
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let per_task = whole.len().div_ceil(cores);
        let mut tasks = Vec::with_capacity(cores);
        while !whole.is_empty() {
            let rest = whole.split_off(per_task.min(whole.len()));
            let part = std::mem::replace(&mut whole, rest);
            let store = store.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .filter_map(|(id, bytes)| match id {
                        Some(id) => Some((id, Decoded::of(&store, id, bytes))),
                        // One that names no document is refused by the writer, which loads it
                        // again.
                        None => Decoded::unnamed(&store, bytes).ok(),
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut predecoded = Predecoded::default();
        for task in tasks {
            // A task that panicked leaves its documents to the writer, which loads them itself.
            if let Ok(part) = task.await {
                for (id, decoded) in part {
                    predecoded.keep(id, decoded);
                }
            }
        }
        predecoded
    }

    /// What was decoded for document `id` sent as exactly `bytes`.
    fn take(&mut self, id: DocId, bytes: &[u8]) -> Option<Decoded> {
        match self.decoded.remove(&id) {
            Some(decoded) if decoded.bytes() == bytes => Some(decoded),
            _ => None,
        }
    }

    /// The id that a document sent without one as exactly `bytes` gave itself, if loaded here.
    fn name(&self, bytes: &[u8]) -> Option<DocId> {
        let id = *self.named.get(&bytes_key(bytes))?;
        self.decoded.get(&id).is_some_and(|decoded| decoded.bytes() == bytes).then_some(id)
    }

    /// Keeps a document loaded (and named by its bytes) for the writer.
    fn keep(&mut self, id: DocId, decoded: Decoded) {
        self.named.insert(bytes_key(decoded.bytes()), id);
        self.decoded.insert(id, decoded);
    }
}

/// The key of a document's bytes in [`Predecoded`]'s names.
fn bytes_key(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(bytes)
}

/// The store, for one writer job of the mesh core.
#[derive(Debug)]
pub(crate) struct NodeStorage<'c, 'a> {
    context: &'c mut WriteContext<'a>,
    stats: &'c SyncStats,
    predecoded: Predecoded,
}

impl<'c, 'a> NodeStorage<'c, 'a> {
    pub(crate) fn new(
        context: &'c mut WriteContext<'a>,
        stats: &'c SyncStats,
        predecoded: Predecoded,
    ) -> Self {
        NodeStorage { context, stats, predecoded }
    }

    /// Passes a store call's result on; a failure leaves the store failed (refusing writes until
    /// it recovers), as any write job's would.
    fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            self.context.store.note_failure(error);
        }
        result
    }

    /// Keeps `value` as the JSON setting `key` ([`stored_setting`] reads it back). Rosters and
    /// introductions always serialise.
    fn save_setting(&self, key: &str, value: &impl Serialize) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.noted(self.context.store.set_setting(key, &bytes))
    }
}

impl<'a> Storage for NodeStorage<'_, 'a> {
    type Error = StoreError;
    type Docs<'s>
        = StoreDocuments<'s, 'a>
    where
        Self: 's;

    fn documents<'s>(&'s mut self, remote: &'s str) -> StoreDocuments<'s, 'a> {
        StoreDocuments {
            context: self.context,
            remote,
            batch: BTreeMap::new(),
            predecoded: &mut self.predecoded,
        }
    }

    fn commit(docs: StoreDocuments<'_, 'a>) -> Result<Vec<DocId>, StoreError> {
        let store = docs.context.store;
        let written = docs.write();
        if let Err(error) = &written {
            store.note_failure(error);
        }
        written
    }

    fn index(&self) -> &Index {
        self.context.index
    }

    fn take_local_writes(&mut self) -> KeptWrites {
        self.context.take_local_writes()
    }

    fn mark_synced(&mut self, remote: &str, at: Timestamp) -> Result<(), StoreError> {
        let store = self.context.store;
        self.noted(store.mark_all_synced(remote).and_then(|()| store.record_sync(remote, at)))?;
        self.stats.marked_synced.send_modify(|marks| *marks += 1);
        Ok(())
    }

    /// Counts the refused messages, logs each with the peer that sent it and keeps it aside
    /// (once: the same bytes sent again are dropped unread, see [`Documents::refused_before`]).
    fn refused(
        &mut self,
        from: &str,
        refusals: Vec<Refusal>,
        repeated: usize,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let count = refusals.len() + repeated;
        self.stats.documents_refused.fetch_add(count as u64, Ordering::Relaxed);
        if repeated > 0 {
            tracing::debug!(peer = from, repeated, "documents refused before sent again: dropped unread");
        }
        for Refusal { id, reason, bytes } in refusals {
            tracing::warn!(peer = from, %id, %reason, bytes = bytes.len(), "document refused and kept aside");
            let entry = Quarantined { id, from: from.to_string(), reason, at_ms: at.0, bytes };
            self.noted(self.context.store.quarantine(&entry))?;
        }
        Ok(())
    }

    fn register_remote(&mut self, remote: &str) -> Result<(), StoreError> {
        self.noted(self.context.store.register_remote(remote))
    }

    fn forget_remotes(&mut self, remotes: Vec<String>) -> Result<Vec<String>, StoreError> {
        let mut forgotten = Vec::new();
        for remote in remotes {
            if self.noted(self.context.store.forget_remote(&remote))? {
                forgotten.push(remote);
            }
        }
        Ok(forgotten)
    }

    fn save_roster(&mut self, entries: Vec<SignedRosterEntry>) -> Result<(), StoreError> {
        self.save_setting(ROSTER_SETTING, &entries)
    }

    fn save_introductions(&mut self, introduced: &Introductions) -> Result<(), StoreError> {
        self.save_setting(INTRODUCTIONS_SETTING, introduced)
    }

    fn save_sync_states(&mut self, remote: &str, states: Vec<(DocId, Vec<u8>)>) -> Result<(), StoreError> {
        for (id, state) in states {
            self.noted(self.context.store.put_sync_state(remote, id, &state))?;
        }
        Ok(())
    }
}

/// One remote's view of the store, for one writer job.
#[derive(Debug)]
pub(crate) struct StoreDocuments<'c, 'a> {
    pub(crate) context: &'c mut WriteContext<'a>,
    /// The remote whose sync states are read.
    pub(crate) remote: &'c str,
    /// Documents accepted and not yet written, with their heads.
    pub(crate) batch: BTreeMap<DocId, (Vec<ChangeHash>, Prepared)>,
    /// Whole documents of the frame loaded ahead of time.
    predecoded: &'c mut Predecoded,
}

impl StoreDocuments<'_, '_> {
    /// Keeps an accepted document in the batch and counts it in the index.
    fn keep(&mut self, id: DocId, heads: Vec<ChangeHash>, prepared: Prepared) {
        self.context.index.insert(id, prepared.item_hash());
        self.batch.insert(id, (heads, prepared));
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
        if let Some((heads, _)) = self.batch.get(&id) {
            return Ok(Some(heads.clone()));
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
        let Some(bytes) = self.saved(id)? else { return Ok(None) };
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
        let (mut document, prepared) = match self.context.store.receive(id, doc, saved) {
            Ok(accepted) => accepted,
            Err(reason) => return Ok(Err(reason)),
        };
        self.keep(id, document.heads(), prepared);
        Ok(Ok(()))
    }

    fn store_whole(&mut self, id: DocId, bytes: &[u8]) -> Result<Verdict, StoreError> {
        let decoded = match self.predecoded.take(id, bytes) {
            Some(decoded) => decoded,
            None => Decoded::of(self.context.store, id, bytes.to_vec()),
        };
        match decoded {
            Decoded::Accepted(heads, prepared) => {
                self.keep(id, heads, prepared);
                Ok(Ok(()))
            }
            Decoded::Refused { reason, .. } => Ok(Err(reason)),
        }
    }

    fn name_whole(&mut self, bytes: &[u8]) -> Result<Result<DocId, String>, StoreError> {
        if let Some(id) = self.predecoded.name(bytes) {
            return Ok(Ok(id));
        }
        // Not loaded ahead (a frame of one document): loaded now, and kept for `store_whole`.
        Ok(Decoded::unnamed(self.context.store, bytes.to_vec()).map(|(id, decoded)| {
            self.predecoded.keep(id, decoded);
            id
        }))
    }

    fn sync_state(&mut self, id: DocId) -> Result<Option<sync::State>, StoreError> {
        Ok(self.context.store.sync_state(self.remote, id)?.and_then(|bytes| sync::State::decode(&bytes).ok()))
    }

    fn refused_before(&mut self, bytes: &[u8]) -> Result<bool, StoreError> {
        self.context.store.is_quarantined(bytes)
    }
}
