//! Sync bookkeeping per remote peer (another till, or HQ): each document's [`SyncStatus`] with
//! persistent counts, the last successful sync, and Automerge sync states.

use serde::Serialize;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use tillmesh_core::Timestamp;
use uuid::Uuid;

use crate::{Store, StoreError, keys};

/// Longest remote name in bytes.
pub const REMOTE_NAME_BYTES_MAX: usize = 128;

/// Where a document stands with one remote, after the legacy system's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    /// Never sent to this remote.
    Pending,
    /// Being sent.
    Syncing,
    /// The remote holds this version.
    Synced,
    /// The last attempt failed; it will be retried.
    Failed,
    /// Changed locally since the remote last had it.
    Modified,
    /// Deleted locally; the remote is yet to learn it.
    Deleted,
}

impl SyncStatus {
    /// Every status, in tag order.
    pub const ALL: [SyncStatus; 6] = [
        SyncStatus::Pending,
        SyncStatus::Syncing,
        SyncStatus::Synced,
        SyncStatus::Failed,
        SyncStatus::Modified,
        SyncStatus::Deleted,
    ];

    fn tag(self) -> u8 {
        self as u8
    }

    fn from_tag(tag: u8) -> Option<SyncStatus> {
        SyncStatus::ALL.get(usize::from(tag)).copied()
    }
}

/// How one remote stands: documents per status and the last successful sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteCounts {
    /// The remote's name.
    pub remote: String,
    /// Documents never sent.
    pub pending: u64,
    /// Documents being sent.
    pub syncing: u64,
    /// Documents the remote holds as they are here.
    pub synced: u64,
    /// Documents whose last attempt failed.
    pub failed: u64,
    /// Documents changed since the remote had them.
    pub modified: u64,
    /// Deletions not yet sent.
    pub deleted: u64,
    /// The last successful sync with this remote.
    pub last_sync_at: Option<Timestamp>,
}

fn check_remote(remote: &str) -> Result<&[u8], StoreError> {
    if remote.is_empty() || remote.len() > REMOTE_NAME_BYTES_MAX || remote.contains('\0') {
        return Err(StoreError::RemoteName { name: remote.chars().take(40).collect() });
    }
    Ok(remote.as_bytes())
}

fn abort(what: &'static str) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Corrupt { what })
}

/// Moves one document of one remote to `new`, keeping the counts right. SYNCED is stored as the
/// absence of an entry, so the entries of a remote are exactly its documents still to sync.
fn set_status(
    status: &TransactionalTree,
    counts: &TransactionalTree,
    remote: &[u8],
    doc: Uuid,
    new: SyncStatus,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let key = keys::remote(remote, doc.as_bytes());
    let old =
        if new == SyncStatus::Synced { status.remove(key)? } else { status.insert(key, &[new.tag()])? };
    let old = match old {
        Some(tag) => {
            tag.first().copied().and_then(SyncStatus::from_tag).ok_or_else(|| abort("sync status"))?
        }
        None => SyncStatus::Synced,
    };
    if old != new {
        add_count(counts, remote, old, -1)?;
        add_count(counts, remote, new, 1)?;
    }
    Ok(())
}

/// Adds `delta` to a remote's count of `status` (SYNCED is not counted: it is derived).
fn add_count(
    counts: &TransactionalTree,
    remote: &[u8],
    status: SyncStatus,
    delta: i64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if status == SyncStatus::Synced {
        return Ok(());
    }
    let key = keys::remote(remote, &[status.tag()]);
    let current = match counts.get(&key)? {
        Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| abort("sync count"))?,
        None => 0,
    };
    let next = current.checked_add_signed(delta).ok_or_else(|| abort("sync count"))?;
    counts.insert(key, &next.to_be_bytes())?;
    Ok(())
}

/// A local write: new documents become PENDING for the remote, synced ones MODIFIED; PENDING,
/// MODIFIED and FAILED stay as they are (they are still to be sent).
pub(crate) fn note_local_change(
    status: &TransactionalTree,
    counts: &TransactionalTree,
    remote: &[u8],
    doc: Uuid,
    is_new: bool,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let current = status.get(keys::remote(remote, doc.as_bytes()))?;
    match current.and_then(|tag| tag.first().copied()).and_then(SyncStatus::from_tag) {
        None if is_new => set_status(status, counts, remote, doc, SyncStatus::Pending),
        None | Some(SyncStatus::Syncing) => set_status(status, counts, remote, doc, SyncStatus::Modified),
        Some(_) => Ok(()),
    }
}

impl Store {
    /// Starts bookkeeping for a remote: until the first agreement with it
    /// ([`Store::mark_all_synced`] then [`Store::record_sync`]) every document counts as PENDING
    /// for it. Constant time however many documents there are; registering a known remote
    /// changes nothing.
    pub fn register_remote(&self, remote: &str) -> Result<(), StoreError> {
        let name = check_remote(remote)?;
        // Refused only when the remote is known already: then nothing changes.
        let _known = self.open_db()?.trees.remotes.compare_and_swap(
            name,
            None as Option<&[u8]>,
            Some(&[] as &[u8]),
        )?;
        Ok(())
    }

    /// Forgets a remote (a revoked till): its registration, sync status, counts and Automerge
    /// sync states, so that it no longer shows as a remote with documents pending. Returns
    /// whether it was known.
    pub fn forget_remote(&self, remote: &str) -> Result<bool, StoreError> {
        let name = check_remote(remote)?;
        let open = self.open_db()?;
        let known = open.trees.remotes.remove(name)?.is_some();
        let prefix = keys::remote(name, &[]);
        for tree in [&open.trees.sync_status, &open.trees.sync_counts, &open.trees.sync_states] {
            let mut batch = sled::Batch::default();
            for key in tree.scan_prefix(&prefix).keys() {
                batch.remove(key?);
            }
            tree.apply_batch(batch)?;
        }
        Ok(known)
    }

    /// Whether a remote was registered but never agreed with: documents without an entry are
    /// then PENDING for it, not SYNCED.
    fn never_synced(&self, name: &[u8]) -> Result<bool, StoreError> {
        Ok(self.open_db()?.trees.remotes.get(name)?.is_some_and(|value| value.is_empty()))
    }

    /// The remotes known to this store.
    pub fn remotes(&self) -> Result<Vec<String>, StoreError> {
        self.open_db()?
            .trees
            .remotes
            .iter()
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect()
    }

    /// Sets where a document stands with a remote.
    pub fn set_sync_status(&self, remote: &str, doc: Uuid, new: SyncStatus) -> Result<(), StoreError> {
        let name = check_remote(remote)?;
        let open = self.open_db()?;
        let t = &open.trees;
        (&t.sync_status, &t.sync_counts)
            .transaction(|(status, counts)| set_status(status, counts, name, doc, new))
            .map_err(StoreError::from_transaction)
    }

    /// Where a document stands with a remote (`None` for an unknown remote or document).
    pub fn sync_status(&self, remote: &str, doc: Uuid) -> Result<Option<SyncStatus>, StoreError> {
        let name = check_remote(remote)?;
        match self.open_db()?.trees.sync_status.get(keys::remote(name, doc.as_bytes()))? {
            Some(tag) => tag
                .first()
                .copied()
                .and_then(SyncStatus::from_tag)
                .map(Some)
                .ok_or(StoreError::Corrupt { what: "sync status" }),
            None if self.open_db()?.trees.remotes.contains_key(name)?
                && self.open_db()?.trees.docs.contains_key(doc.as_bytes())? =>
            {
                Ok(Some(if self.never_synced(name)? { SyncStatus::Pending } else { SyncStatus::Synced }))
            }
            None => Ok(None),
        }
    }

    /// Marks every document SYNCED with a remote: the remote was found to hold exactly our set.
    pub fn mark_all_synced(&self, remote: &str) -> Result<(), StoreError> {
        let name = check_remote(remote)?;
        let prefix = keys::remote(name, &[]);
        let keys: Vec<sled::IVec> =
            self.open_db()?.trees.sync_status.scan_prefix(&prefix).keys().collect::<Result<_, _>>()?;
        let open = self.open_db()?;
        let t = &open.trees;
        (&t.sync_status, &t.sync_counts)
            .transaction(|(status, counts)| {
                for key in &keys {
                    status.remove(key)?;
                }
                for status in SyncStatus::ALL {
                    counts.remove(keys::remote(name, &[status.tag()]))?;
                }
                Ok(())
            })
            .map_err(StoreError::from_transaction)
    }

    /// Records a successful sync with a remote at `at`.
    pub fn record_sync(&self, remote: &str, at: Timestamp) -> Result<(), StoreError> {
        let name = check_remote(remote)?;
        self.open_db()?.trees.remotes.insert(name, &at.0.to_be_bytes())?;
        Ok(())
    }

    /// Counts per status and the last sync time of one remote.
    pub fn remote_counts(&self, remote: &str) -> Result<RemoteCounts, StoreError> {
        let name = check_remote(remote)?;
        let mut counts = [0u64; 6];
        for (index, status) in SyncStatus::ALL.iter().enumerate() {
            if let Some(bytes) = self.open_db()?.trees.sync_counts.get(keys::remote(name, &[status.tag()]))? {
                counts[index] = keys::decode_u64(&bytes).ok_or(StoreError::Corrupt { what: "sync count" })?;
            }
        }
        let documents = self.document_count() as u64;
        if self.never_synced(name)? {
            // Every document without another status is still to send.
            let other: u64 = counts
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != SyncStatus::Pending as usize)
                .map(|(_, n)| n)
                .sum();
            counts[SyncStatus::Pending as usize] = documents.saturating_sub(other);
        } else {
            let unsynced: u64 = counts.iter().sum();
            counts[SyncStatus::Synced as usize] = documents.saturating_sub(unsynced);
        }
        let last_sync_at = match self.open_db()?.trees.remotes.get(name)? {
            Some(bytes) if bytes.len() == 8 => keys::decode_u64(&bytes).map(|at| Timestamp(at as i64)),
            _ => None,
        };
        let [pending, syncing, synced, failed, modified, deleted] = counts;
        Ok(RemoteCounts {
            remote: remote.to_string(),
            pending,
            syncing,
            synced,
            failed,
            modified,
            deleted,
            last_sync_at,
        })
    }

    /// The saved Automerge sync state for one document with one remote.
    pub fn sync_state(&self, remote: &str, doc: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let name = check_remote(remote)?;
        Ok(self
            .open_db()?
            .trees
            .sync_states
            .get(keys::remote(name, doc.as_bytes()))?
            .map(|bytes| bytes.to_vec()))
    }

    /// Saves the Automerge sync state (`sync::State::encode`) for one document with one remote.
    pub fn put_sync_state(&self, remote: &str, doc: Uuid, state: &[u8]) -> Result<(), StoreError> {
        let name = check_remote(remote)?;
        self.open_db()?.trees.sync_states.insert(keys::remote(name, doc.as_bytes()), state)?;
        Ok(())
    }
}
