//! The durable outbox: every order and transaction this device saved, with where it stands in
//! the sync (the seed's `SyncStatus`), and the local copy of those other devices made.
//!
//! It is a sled database in its own directory with three trees: `orders` and `transactions`
//! (`localId` → [`Tracked`] as JSON) and `meta` (schema version, `nextSyncToken`, time of the
//! last successful sync). Every read-modify-write runs under one mutex, never held across an
//! `await`; saves are flushed to disk before they return.
//!
//! A record is `SYNCING` only while a sync has it in flight. A crash (or a cancelled sync)
//! leaves it `SYNCING` on disk: opening the outbox turns it back into what it was waiting as
//! (`PENDING`, `MODIFIED` or `DELETED`), and a sync also resends any `SYNCING` record it finds,
//! since none can be in flight while it holds the sync lock. HQ deduplicates by `localId`, so
//! sending again is always safe.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tillmesh_core::Timestamp;
use tillmesh_core::legacy::{LegacyOrder, LegacyTransaction, RecordKind, SyncResponse, SyncStatus};
use tillmesh_store::{DurableLog, open_waiting};
use uuid::Uuid;

use crate::error::ClientError;
use crate::record::{LegacyRecord, Tracked};
use crate::resolve::apply_conflicts;

/// The outbox's layout version, kept in `meta` under `schema`.
const SCHEMA_VERSION: &[u8] = b"1";

/// The `meta` keys.
const SCHEMA_KEY: &str = "schema";
const TOKEN_KEY: &str = "next_sync_token";
const LAST_SYNC_KEY: &str = "last_sync_ms";

/// sled's page cache: a till's outbox is small.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How long opening waits for a previous opening of the outbox to let go of it.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// An order or transaction another device (or HQ) changed, from `updates`.
#[derive(Debug, Clone)]
pub(crate) struct Remote<T> {
    pub(crate) record: T,
    pub(crate) local_id: Uuid,
    pub(crate) sync_version: i64,
    pub(crate) device_id: String,
    pub(crate) server_hash: Option<String>,
}

/// What applying HQ's answer for one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// HQ holds it as sent.
    Synced,
    /// HQ's values were taken for this many fields.
    Resolved(usize),
    /// HQ answered `success: false`: it judged the record and refused it (a fault of HQ fails
    /// the whole request instead), so it waits until it is saved with changes.
    Rejected,
    /// It changed here while in flight: the newer change stays queued.
    Superseded,
    /// It is no longer in the outbox.
    Gone,
}

/// Counts of one kind of record by sync state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KindCounts {
    pub(crate) pending: u64,
    pub(crate) synced: u64,
    pub(crate) failed: u64,
}

/// Client id → `localId`, per kind: finds the record a save of the same `id` means.
#[derive(Debug, Default)]
struct Index {
    orders: HashMap<String, Uuid>,
    transactions: HashMap<String, Uuid>,
}

impl Index {
    fn of(&mut self, kind: RecordKind) -> &mut HashMap<String, Uuid> {
        match kind {
            RecordKind::Order => &mut self.orders,
            RecordKind::Transaction => &mut self.transactions,
        }
    }

    fn note<T: LegacyRecord>(&mut self, tracked: &Tracked<T>) {
        let ids = self.of(T::KIND);
        ids.insert(tracked.record.client_id().to_string(), tracked.local_id);
        for former in &tracked.former_ids {
            ids.entry(former.clone()).or_insert(tracked.local_id);
        }
    }
}

/// The outbox (see the module docs).
pub(crate) struct Outbox {
    path: PathBuf,
    db: sled::Db,
    /// sled's log, made durable after every flush.
    log: Arc<DurableLog>,
    orders: sled::Tree,
    transactions: sled::Tree,
    meta: sled::Tree,
    /// Serializes every read-modify-write and guards the id index.
    index: Mutex<Index>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (or creates) the outbox in `path` and puts back every record a crash left
    /// `SYNCING`.
    pub(crate) fn open(path: &Path) -> Result<Outbox, ClientError> {
        let store = |error| ClientError::store(path, error);
        // A client that restarts may find its previous opening still closing.
        let config = sled::Config::new().path(path).cache_capacity(CACHE_BYTES);
        let db = open_waiting(&config, LOCK_WAIT).map_err(store)?;
        let outbox = Outbox {
            path: path.to_path_buf(),
            orders: db.open_tree("orders").map_err(store)?,
            transactions: db.open_tree("transactions").map_err(store)?,
            meta: db.open_tree("meta").map_err(store)?,
            log: Arc::new(DurableLog::of(path).map_err(store)?),
            db,
            index: Mutex::new(Index::default()),
        };
        match outbox.meta.get(SCHEMA_KEY).map_err(store)? {
            None => {
                outbox.meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(store)?;
            }
            Some(version) if version.as_ref() == SCHEMA_VERSION => {}
            Some(version) => {
                return Err(ClientError::Corrupt {
                    what: format!("outbox {}", path.display()),
                    detail: format!(
                        "layout version {:?}; this build reads {:?}",
                        String::from_utf8_lossy(&version),
                        String::from_utf8_lossy(SCHEMA_VERSION)
                    ),
                });
            }
        }
        let recovered = outbox.recover::<LegacyOrder>()? + outbox.recover::<LegacyTransaction>()?;
        if recovered > 0 {
            tracing::info!(recovered, "records left in flight by an interrupted sync are queued again");
        }
        outbox.log.flush(&outbox.db).map_err(store)?;
        Ok(outbox)
    }

    /// Rebuilds the index of `T` and turns `SYNCING` records back into what they waited as.
    fn recover<T: LegacyRecord>(&self) -> Result<usize, ClientError> {
        let mut index = self.lock();
        let mut recovered = 0;
        for mut tracked in self.scan::<T>()? {
            index.note(&tracked);
            if tracked.sync_status == SyncStatus::Syncing {
                tracked.sync_status = tracked.wire_status();
                self.put(&tracked)?;
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves no half-written record (each put is one sled
        // insert), so the index is still usable.
        self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tree(&self, kind: RecordKind) -> &sled::Tree {
        match kind {
            RecordKind::Order => &self.orders,
            RecordKind::Transaction => &self.transactions,
        }
    }

    fn store_error(&self, error: sled::Error) -> ClientError {
        ClientError::store(&self.path, error)
    }

    fn decode<T: LegacyRecord>(key: &[u8], bytes: &[u8]) -> Result<Tracked<T>, ClientError> {
        serde_json::from_slice(bytes).map_err(|error| ClientError::Corrupt {
            what: format!(
                "{} {}",
                T::KIND,
                Uuid::from_slice(key).map_or_else(|_| "?".into(), |id| id.to_string())
            ),
            detail: error.to_string(),
        })
    }

    fn put<T: LegacyRecord>(&self, tracked: &Tracked<T>) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(tracked).map_err(|error| ClientError::Corrupt {
            what: format!("{} {}", T::KIND, tracked.local_id),
            detail: error.to_string(),
        })?;
        self.tree(T::KIND).insert(tracked.local_id.as_bytes(), bytes).map_err(|e| self.store_error(e))?;
        Ok(())
    }

    /// The record `local_id` of kind `T`.
    pub(crate) fn get<T: LegacyRecord>(&self, local_id: Uuid) -> Result<Option<Tracked<T>>, ClientError> {
        let key = local_id.as_bytes();
        match self.tree(T::KIND).get(key).map_err(|e| self.store_error(e))? {
            Some(bytes) => Ok(Some(Self::decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every record of kind `T`, deleted ones included, in `localId` order.
    pub(crate) fn scan<T: LegacyRecord>(&self) -> Result<Vec<Tracked<T>>, ClientError> {
        self.tree(T::KIND)
            .iter()
            .map(|entry| {
                let (key, bytes) = entry.map_err(|e| self.store_error(e))?;
                Self::decode(&key, &bytes)
            })
            .collect()
    }

    /// Saves `record` as this device's (`device_id`): a new record is `PENDING` at version 1
    /// (`local_id`, or a new UUID); a known one (by `local_id`, else by its client `id`) with
    /// other content becomes `MODIFIED` at the next version; the same content changes nothing.
    pub(crate) fn save<T: LegacyRecord>(
        &self,
        device_id: &str,
        local_id: Option<Uuid>,
        mut record: T,
    ) -> Result<Tracked<T>, ClientError> {
        record.check().map_err(|source| ClientError::Invalid { kind: T::KIND, source })?;
        let mut index = self.lock();
        let local_id = local_id.or_else(|| index.of(T::KIND).get(record.client_id()).copied());
        let existing = match local_id {
            Some(local_id) => self.get::<T>(local_id)?,
            None => None,
        };
        let tracked = match existing {
            None => Tracked::new(local_id.unwrap_or_else(Uuid::new_v4), record, device_id.to_string()),
            Some(mut tracked) => {
                let kind = T::KIND;
                if tracked.device_id != device_id {
                    return Err(ClientError::NotOwned {
                        kind,
                        local_id: tracked.local_id,
                        owner: tracked.device_id,
                    });
                }
                if tracked.deleted {
                    return Err(ClientError::Deleted { kind, local_id: tracked.local_id });
                }
                // An id HQ replaced stays replaced: the caller may still hold the old one.
                if tracked.former_ids.iter().any(|id| id == record.client_id()) {
                    record.set_client_id(tracked.record.client_id().to_string());
                }
                if record.content_hash() == tracked.record.content_hash() {
                    return Ok(tracked);
                }
                let old_id = tracked.record.client_id().to_string();
                tracked.record = record;
                tracked.remember_id(&old_id);
                tracked.sync_version += 1;
                tracked.sync_status = SyncStatus::Modified;
                tracked.attempts = 0;
                tracked.last_error = None;
                tracked.rejected = false;
                tracked
            }
        };
        self.put(&tracked)?;
        index.note(&tracked);
        Ok(tracked)
    }

    /// Deletes this device's record `local_id`: `DELETED` at the next version, its content
    /// marked as HQ will record it. Deleting a deleted record changes nothing.
    pub(crate) fn delete<T: LegacyRecord>(
        &self,
        device_id: &str,
        local_id: Uuid,
        now: Timestamp,
    ) -> Result<Tracked<T>, ClientError> {
        let _index = self.lock();
        let kind = T::KIND;
        let mut tracked = self.get::<T>(local_id)?.ok_or(ClientError::NotFound { kind, local_id })?;
        if tracked.device_id != device_id {
            return Err(ClientError::NotOwned { kind, local_id, owner: tracked.device_id });
        }
        if tracked.deleted {
            return Ok(tracked);
        }
        tracked.record.mark_deleted(now);
        tracked.deleted = true;
        tracked.sync_version += 1;
        tracked.sync_status = SyncStatus::Deleted;
        tracked.attempts = 0;
        tracked.last_error = None;
        tracked.rejected = false;
        self.put(&tracked)?;
        Ok(tracked)
    }

    /// Every record of kind `T` a sync should send.
    pub(crate) fn sendable<T: LegacyRecord>(&self) -> Result<Vec<Tracked<T>>, ClientError> {
        Ok(self.scan::<T>()?.into_iter().filter(Tracked::is_sendable).collect())
    }

    /// Marks `sent` as in flight; returns them as stored now (a save may have come between),
    /// leaving out any that no longer wait (HQ's updates deleted them meanwhile).
    pub(crate) fn mark_syncing<T: LegacyRecord>(
        &self,
        sent: &[Tracked<T>],
    ) -> Result<Vec<Tracked<T>>, ClientError> {
        let _index = self.lock();
        let mut marked = Vec::with_capacity(sent.len());
        for record in sent {
            if let Some(mut current) = self.get::<T>(record.local_id)?
                && current.is_sendable()
            {
                current.sync_status = SyncStatus::Syncing;
                self.put(&current)?;
                marked.push(current);
            }
        }
        Ok(marked)
    }

    /// Applies HQ's answer for `sent` (see [`Applied`]).
    pub(crate) fn answered<T: LegacyRecord>(
        &self,
        sent: &Tracked<T>,
        answer: &SyncResponse,
    ) -> Result<Applied, ClientError> {
        let mut index = self.lock();
        let Some(mut current) = self.get::<T>(sent.local_id)? else {
            return Ok(Applied::Gone);
        };
        if answer.server_id.is_some() {
            current.server_id.clone_from(&answer.server_id);
        }
        if !current.unchanged_since(sent) {
            // Saved again while in flight: that change stays queued and HQ decides on it.
            current.server_version = Some(answer.server_version);
            current.server_hash.clone_from(&answer.server_hash);
            self.put(&current)?;
            return Ok(Applied::Superseded);
        }
        if !answer.success {
            current.sync_status = SyncStatus::Failed;
            current.rejected = true;
            current.attempts = current.attempts.saturating_add(1);
            current.last_error = Some(answer.message.clone().unwrap_or_else(|| "HQ did not store it".into()));
            self.put(&current)?;
            return Ok(Applied::Rejected);
        }
        let conflicts = answer.conflicts.as_deref().unwrap_or_default();
        let mut applied = Applied::Synced;
        if !conflicts.is_empty() {
            let (resolved, unapplied) = apply_conflicts(&current.record, conflicts);
            for skipped in &unapplied {
                tracing::warn!(
                    kind = %T::KIND, local_id = %current.local_id, field = %skipped.field,
                    reason = %skipped.reason, "HQ's value for a conflicting field cannot be applied"
                );
            }
            let old_id = current.record.client_id().to_string();
            current.record = resolved;
            current.remember_id(&old_id);
            applied = Applied::Resolved(conflicts.len() - unapplied.len());
        }
        current.sync_version = current.sync_version.max(answer.server_version);
        current.server_version = Some(answer.server_version);
        current.server_hash.clone_from(&answer.server_hash);
        current.sync_status = SyncStatus::Synced;
        current.attempts = 0;
        current.last_error = None;
        current.rejected = false;
        if current.deleted && answer.server_id.is_some() && !current.record.deletion_taken() {
            // HQ kept the record (a closed order is refunded, not voided).
            current.deleted = false;
            current.last_error =
                Some(answer.message.clone().unwrap_or_else(|| "HQ did not delete it".into()));
        }
        if !current.deleted && current.server_hash.is_some() && !current.matches_server() {
            tracing::debug!(
                kind = %T::KIND, local_id = %current.local_id,
                "the local copy differs from HQ's in fields HQ did not list"
            );
        }
        self.put(&current)?;
        index.note(&current);
        Ok(applied)
    }

    /// Marks `sent` as failed with `error`; `rejected`: HQ refused the content, so it waits
    /// for a change. Records saved again meanwhile keep their newer state.
    pub(crate) fn failed<T: LegacyRecord>(
        &self,
        sent: &[Tracked<T>],
        error: &str,
        rejected: bool,
    ) -> Result<(), ClientError> {
        let _index = self.lock();
        for record in sent {
            let Some(mut current) = self.get::<T>(record.local_id)? else { continue };
            current.attempts = current.attempts.saturating_add(1);
            current.last_error = Some(error.to_string());
            if current.unchanged_since(record) {
                current.sync_status = SyncStatus::Failed;
                current.rejected = rejected;
            } else if current.sync_status == SyncStatus::Syncing {
                current.sync_status = current.wire_status();
            }
            self.put(&current)?;
        }
        Ok(())
    }

    /// Stores what another device (or HQ) changed, unless the local copy has changes of its
    /// own not yet sent (HQ settles those on the next push) or is deleted. Returns whether the
    /// local copy changed.
    pub(crate) fn received<T: LegacyRecord>(&self, remote: Remote<T>) -> Result<bool, ClientError> {
        let mut index = self.lock();
        let tracked = match self.get::<T>(remote.local_id)? {
            None => Tracked {
                sync_status: SyncStatus::Synced,
                sync_version: remote.sync_version,
                server_version: Some(remote.sync_version),
                server_hash: remote.server_hash,
                ..Tracked::new(remote.local_id, remote.record, remote.device_id)
            },
            Some(current) if current.deleted => return Ok(false),
            Some(mut current) if current.sync_status != SyncStatus::Synced => {
                current.server_version = Some(remote.sync_version);
                current.server_hash = remote.server_hash;
                self.put(&current)?;
                return Ok(false);
            }
            Some(mut current) => {
                if current.sync_version == remote.sync_version
                    && current.record.content_hash() == remote.record.content_hash()
                {
                    return Ok(false);
                }
                let old_id = current.record.client_id().to_string();
                current.record = remote.record;
                current.remember_id(&old_id);
                current.sync_version = remote.sync_version;
                current.server_version = Some(remote.sync_version);
                current.server_hash = remote.server_hash;
                current.last_error = None;
                current
            }
        };
        self.put(&tracked)?;
        index.note(&tracked);
        Ok(true)
    }

    /// Marks the records HQ deleted (by client `id`) as deleted and synced: a deletion on HQ is
    /// final, so local changes not yet sent are dropped. Returns how many changed.
    pub(crate) fn deleted_remotely<T: LegacyRecord>(
        &self,
        client_ids: &[String],
        now: Timestamp,
    ) -> Result<usize, ClientError> {
        let mut index = self.lock();
        let mut changed = 0;
        for client_id in client_ids {
            let Some(local_id) = index.of(T::KIND).get(client_id).copied() else { continue };
            let Some(mut tracked) = self.get::<T>(local_id)? else { continue };
            if tracked.deleted && tracked.sync_status == SyncStatus::Synced {
                continue;
            }
            if !tracked.deleted {
                tracked.record.mark_deleted(now);
            }
            tracked.deleted = true;
            tracked.sync_status = SyncStatus::Synced;
            tracked.attempts = 0;
            tracked.last_error = None;
            tracked.rejected = false;
            self.put(&tracked)?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Pending, synced and failed counts of kind `T` (see [`crate::SyncStats`]).
    pub(crate) fn counts<T: LegacyRecord>(&self) -> Result<KindCounts, ClientError> {
        let mut counts = KindCounts::default();
        for tracked in self.scan::<T>()? {
            if tracked.is_pending() {
                counts.pending += 1;
            } else if tracked.sync_status == SyncStatus::Failed {
                counts.failed += 1;
            } else if !tracked.deleted {
                counts.synced += 1;
            }
        }
        Ok(counts)
    }

    /// The `nextSyncToken` of the last page applied.
    pub(crate) fn token(&self) -> Result<Option<String>, ClientError> {
        let value = self.meta.get(TOKEN_KEY).map_err(|e| self.store_error(e))?;
        Ok(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Keeps `token` as where the next `updates` starts.
    pub(crate) fn set_token(&self, token: &str) -> Result<(), ClientError> {
        self.meta.insert(TOKEN_KEY, token.as_bytes()).map_err(|e| self.store_error(e))?;
        Ok(())
    }

    /// When the last sync succeeded.
    pub(crate) fn last_sync(&self) -> Result<Option<Timestamp>, ClientError> {
        let value = self.meta.get(LAST_SYNC_KEY).map_err(|e| self.store_error(e))?;
        Ok(value
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map(|b| Timestamp(i64::from_be_bytes(b))))
    }

    /// Records a successful sync at `at`.
    pub(crate) fn set_last_sync(&self, at: Timestamp) -> Result<(), ClientError> {
        self.meta.insert(LAST_SYNC_KEY, &at.0.to_be_bytes()).map_err(|e| self.store_error(e))?;
        Ok(())
    }

    /// Writes everything to disk, durably.
    pub(crate) async fn flush(&self) -> Result<(), ClientError> {
        self.db.flush_async().await.map_err(|e| self.store_error(e))?;
        let log = Arc::clone(&self.log);
        let synced = tokio::task::spawn_blocking(move || log.sync()).await.unwrap_or_else(|_| {
            Err(sled::Error::Io(std::io::Error::other("the outbox's fdatasync was cancelled")))
        });
        synced.map_err(|e| self.store_error(e))
    }
}

#[cfg(test)]
mod tests {
    use tillmesh_core::legacy::{LegacyItem, Resolution};
    use tillmesh_core::{Amount, OrderStatus, PaymentMethod, PaymentStatus, Quantity};

    use super::*;

    fn order(id: &str, quantity: i64) -> LegacyOrder {
        let price = Amount::from_minor(250);
        let total = price.checked_mul(quantity).expect("total");
        LegacyOrder {
            id: id.into(),
            order_number: "POS-1".into(),
            items: vec![LegacyItem {
                product_id: "tea".into(),
                product_name: "Tea".into(),
                quantity: Quantity::pieces(quantity),
                unit_price: price,
                total_price: total,
            }],
            subtotal: total,
            tax: Amount::ZERO,
            total,
            payment_method: Some(PaymentMethod::Cash.into()),
            payment_status: PaymentStatus::Pending.into(),
            order_status: OrderStatus::Open.into(),
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
        }
    }

    fn answer(version: i64, hash: Option<String>) -> SyncResponse {
        SyncResponse {
            success: true,
            server_id: Some("server-1".into()),
            synced_at: Timestamp(5),
            message: None,
            conflicts: None,
            server_version: version,
            server_hash: hash,
        }
    }

    #[test]
    fn saves_follow_the_seeds_statuses() {
        let dir = tempfile::tempdir().expect("directory");
        let outbox = Outbox::open(dir.path()).expect("open");
        let first = outbox.save("pos", None, order("o-1", 1)).expect("save");
        assert_eq!((first.sync_status, first.sync_version), (SyncStatus::Pending, 1));
        let mut later = order("o-1", 1);
        later.updated_at = Timestamp(99);
        let same = outbox.save("pos", None, later).expect("save");
        assert_eq!((same.local_id, same.sync_version), (first.local_id, 1), "only updatedAt changed");
        let changed = outbox.save("pos", None, order("o-1", 2)).expect("save");
        assert_eq!(
            (changed.local_id, changed.sync_status, changed.sync_version),
            (first.local_id, SyncStatus::Modified, 2)
        );
        assert!(matches!(outbox.save("other", None, order("o-1", 3)), Err(ClientError::NotOwned { .. })));
        let deleted = outbox.delete::<LegacyOrder>("pos", first.local_id, Timestamp(7)).expect("delete");
        assert_eq!(
            (deleted.sync_status, deleted.sync_version, deleted.deleted),
            (SyncStatus::Deleted, 3, true)
        );
        assert_eq!(deleted.record.order_status, OrderStatus::Voided);
        assert!(matches!(outbox.save("pos", None, order("o-1", 3)), Err(ClientError::Deleted { .. })));
        let unknown = Uuid::new_v4();
        assert!(matches!(
            outbox.delete::<LegacyOrder>("pos", unknown, Timestamp(7)),
            Err(ClientError::NotFound { .. })
        ));
    }

    #[test]
    fn a_crash_while_syncing_queues_the_records_again() {
        let dir = tempfile::tempdir().expect("directory");
        let (new, synced, deleted) = {
            let outbox = Outbox::open(dir.path()).expect("open");
            let new = outbox.save("pos", None, order("new", 1)).expect("save");
            let synced = outbox.save("pos", None, order("synced", 1)).expect("save");
            let sent = outbox.mark_syncing(std::slice::from_ref(&synced)).expect("mark");
            outbox.answered(&sent[0], &answer(1, Some(synced.record.content_hash()))).expect("answer");
            let synced = outbox.save("pos", None, order("synced", 2)).expect("modify");
            let deleted = outbox.save("pos", None, order("deleted", 1)).expect("save");
            let deleted =
                outbox.delete::<LegacyOrder>("pos", deleted.local_id, Timestamp(3)).expect("delete");
            let marked = outbox.mark_syncing(&[new.clone(), synced.clone(), deleted.clone()]).expect("mark");
            assert!(marked.iter().all(|tracked| tracked.sync_status == SyncStatus::Syncing));
            (new.local_id, synced.local_id, deleted.local_id)
        };
        let outbox = Outbox::open(dir.path()).expect("reopen");
        let status = |id| outbox.get::<LegacyOrder>(id).expect("get").expect("kept").sync_status;
        assert_eq!(status(new), SyncStatus::Pending);
        assert_eq!(status(synced), SyncStatus::Modified);
        assert_eq!(status(deleted), SyncStatus::Deleted);
        assert_eq!(outbox.sendable::<LegacyOrder>().expect("sendable").len(), 3);
    }

    #[test]
    fn answers_apply_conflicts_but_never_overwrite_a_newer_save() {
        let dir = tempfile::tempdir().expect("directory");
        let outbox = Outbox::open(dir.path()).expect("open");
        let saved = outbox.save("pos", None, order("o-1", 1)).expect("save");
        let sent = outbox.mark_syncing(&[saved]).expect("mark").remove(0);
        // Saved again while in flight: the answer records HQ's state, the change stays queued.
        outbox.save("pos", None, order("o-1", 2)).expect("save during flight");
        assert_eq!(
            outbox.answered(&sent, &answer(1, Some("h".into()))).expect("answer"),
            Applied::Superseded
        );
        let current = outbox.get::<LegacyOrder>(sent.local_id).expect("get").expect("kept");
        assert_eq!((current.sync_status, current.sync_version), (SyncStatus::Modified, 2));
        assert_eq!(current.server_version, Some(1));

        // HQ's copy stands: its values are taken and its version becomes ours.
        let sent = outbox.mark_syncing(&[current]).expect("mark").remove(0);
        let mut server = sent.record.clone();
        server.payment_status = PaymentStatus::Declined.into();
        let mut response = answer(4, Some(server.content_hash()));
        response.conflicts = Some(sent.record.differences(&server, Resolution::ServerWins));
        assert_eq!(outbox.answered(&sent, &response).expect("answer"), Applied::Resolved(1));
        let resolved = outbox.get::<LegacyOrder>(sent.local_id).expect("get").expect("kept");
        assert_eq!((resolved.sync_status, resolved.sync_version), (SyncStatus::Synced, 4));
        assert!(resolved.matches_server());
    }

    #[test]
    fn updates_keep_unsent_changes_and_deletions_are_final() {
        let dir = tempfile::tempdir().expect("directory");
        let outbox = Outbox::open(dir.path()).expect("open");
        let mine = outbox.save("pos", None, order("mine", 1)).expect("save");
        let remote = |record: LegacyOrder, local_id, version| Remote {
            server_hash: Some(record.content_hash()),
            record,
            local_id,
            sync_version: version,
            device_id: "pos".into(),
        };
        assert!(!outbox.received(remote(order("mine", 5), mine.local_id, 2)).expect("received"));
        let kept = outbox.get::<LegacyOrder>(mine.local_id).expect("get").expect("kept");
        assert_eq!(
            (kept.record.items[0].quantity, kept.sync_status),
            (Quantity::pieces(1), SyncStatus::Pending)
        );

        let theirs = Uuid::new_v4();
        let mut other = remote(order("theirs", 1), theirs, 3);
        other.device_id = "pos-b".into();
        assert!(outbox.received(other).expect("received"));
        let stored = outbox.get::<LegacyOrder>(theirs).expect("get").expect("stored");
        assert_eq!(
            (stored.sync_status, stored.sync_version, stored.device_id.as_str()),
            (SyncStatus::Synced, 3, "pos-b")
        );

        let ids = vec!["mine".to_string(), "theirs".to_string(), "unknown".to_string()];
        assert_eq!(outbox.deleted_remotely::<LegacyOrder>(&ids, Timestamp(9)).expect("deleted"), 2);
        let gone = outbox.get::<LegacyOrder>(mine.local_id).expect("get").expect("tombstone");
        assert_eq!((gone.deleted, gone.sync_status), (true, SyncStatus::Synced));
        let counts = outbox.counts::<LegacyOrder>().expect("counts");
        assert_eq!(counts, KindCounts::default(), "tombstones are not counted");
    }
}
