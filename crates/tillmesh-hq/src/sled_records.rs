//! The embedded [`RecordStore`]: trees in HQ's own sled database (the peer store's), so that
//! the default HQ needs no setup. Batches are exclusive through a lock and committed as one sled
//! transaction, then flushed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tillmesh_core::Timestamp;
use tillmesh_core::legacy::Since;
use tillmesh_store::Store;
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::records::{
    BatchKeys, CONFLICTS_KEPT, ConflictEntry, LegacyDevice, Record, RecordBatch, RecordCounts, RecordError,
    RecordStore, RecordVersion,
};
use tillmesh_core::legacy::RecordKind;

const POSITION: &[u8] = b"position";
const ASSIGNED: &[u8] = b"assigned";
const CONFLICTS: &[u8] = b"conflicts";
/// Order and transaction records held, kept by every batch so that `/metrics` never walks the
/// records (counted once, on the first open by a build that keeps them).
const ORDERS: &[u8] = b"orders";
const TRANSACTIONS: &[u8] = b"transactions";

/// Legacy records in sled.
#[derive(Debug)]
pub struct SledRecords {
    store: Store,
    lock: Mutex<()>,
}

#[derive(Debug, Clone)]
struct Trees {
    /// kind + localId → the record as JSON (without its document).
    records: sled::Tree,
    /// kind + localId → the document's bytes.
    documents: sled::Tree,
    /// kind + number → localId.
    numbers: sled::Tree,
    /// position → kind + localId.
    feed: sled::Tree,
    /// `token:` + the SHA-256 of a device's current token → device id; `id:` + device id →
    /// its [`DeviceEntry`].
    devices: sled::Tree,
    /// sequence → conflict entry as JSON.
    conflicts: sled::Tree,
    /// Counters.
    meta: sled::Tree,
}

impl SledRecords {
    /// Opens the records kept in `store`'s database.
    pub fn open(store: Store) -> Result<SledRecords, RecordError> {
        let records = SledRecords { store, lock: Mutex::new(()) };
        let trees = records.trees()?;
        if trees.meta.get(ORDERS)?.is_none() {
            let (mut orders, mut transactions) = (0u64, 0u64);
            for key in trees.records.iter().keys() {
                match key?.first() {
                    Some(&b'o') => orders += 1,
                    _ => transactions += 1,
                }
            }
            trees.meta.insert(ORDERS, &orders.to_be_bytes())?;
            trees.meta.insert(TRANSACTIONS, &transactions.to_be_bytes())?;
        }
        Ok(records)
    }

    /// The trees of the store's current opening, taken for each operation: the node reopens its
    /// database after a storage failure, which a tree held here would prevent.
    fn trees(&self) -> Result<Trees, RecordError> {
        let tree = |name: &str| self.store.extra_tree(&format!("hq/{name}"));
        Ok(Trees {
            records: tree("records")?,
            documents: tree("documents")?,
            numbers: tree("numbers")?,
            feed: tree("feed")?,
            devices: tree("devices")?,
            conflicts: tree("conflicts")?,
            meta: tree("meta")?,
        })
    }
}

fn key(kind: RecordKind, local_id: Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = kind_byte(kind);
    key[1..].copy_from_slice(local_id.as_bytes());
    key
}

const fn kind_byte(kind: RecordKind) -> u8 {
    match kind {
        RecordKind::Order => b'o',
        RecordKind::Transaction => b't',
    }
}

fn number_key(kind: RecordKind, number: &str) -> Vec<u8> {
    let mut key = vec![kind_byte(kind)];
    key.extend_from_slice(number.as_bytes());
    key
}

/// A legacy device's entry, as JSON under `id:` + its id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceEntry {
    token_sha256: String,
    added_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

const DEVICE_PREFIX: &str = "id:";

fn device_key(device_id: &str) -> String {
    format!("{DEVICE_PREFIX}{device_id}")
}

fn token_key(token_sha256: &str) -> String {
    format!("token:{token_sha256}")
}

impl DeviceEntry {
    /// An entry as stored: JSON, or the token's SHA-256 alone as builds that kept no times
    /// wrote it.
    fn decode(bytes: &[u8]) -> Result<DeviceEntry, RecordError> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes).map_err(|error| corrupt(format!("device: {error}")));
        }
        let token_sha256 = String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("device token hash"))?;
        Ok(DeviceEntry { token_sha256, added_at: None, revoked_at: None })
    }

    fn encode(&self) -> Result<Vec<u8>, RecordError> {
        serde_json::to_vec(self).map_err(|error| corrupt(format!("device: {error}")))
    }

    fn listed(&self, device_id: String) -> LegacyDevice {
        LegacyDevice { device_id, added_at: self.added_at, revoked_at: self.revoked_at }
    }
}

fn corrupt(what: impl Into<String>) -> RecordError {
    RecordError::Corrupt { what: what.into() }
}

fn counter(tree: &sled::Tree, name: &[u8]) -> Result<u64, RecordError> {
    match tree.get(name)? {
        None => Ok(0),
        Some(bytes) => {
            let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| corrupt("counter"))?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

fn decode_record(json: &[u8], document: Option<sled::IVec>) -> Result<Record, RecordError> {
    let mut record: Record =
        serde_json::from_slice(json).map_err(|error| corrupt(format!("record: {error}")))?;
    record.document = document.map(|bytes| bytes.to_vec()).unwrap_or_default();
    Ok(record)
}

impl Trees {
    fn record(
        &self,
        kind: RecordKind,
        local_id: Uuid,
        with_document: bool,
    ) -> Result<Option<Record>, RecordError> {
        let key = key(kind, local_id);
        let Some(json) = self.records.get(key)? else { return Ok(None) };
        let document = if with_document { self.documents.get(key)? } else { None };
        decode_record(&json, document).map(Some)
    }

    fn device_entry(&self, device_id: &str) -> Result<Option<DeviceEntry>, RecordError> {
        self.devices.get(device_key(device_id))?.map(|bytes| DeviceEntry::decode(&bytes)).transpose()
    }

    fn devices(&self) -> Result<Vec<LegacyDevice>, RecordError> {
        self.devices
            .scan_prefix(DEVICE_PREFIX)
            .map(|entry| {
                let (key, value) = entry?;
                let device_id = String::from_utf8(key[DEVICE_PREFIX.len()..].to_vec())
                    .map_err(|_| corrupt("device id"))?;
                Ok(DeviceEntry::decode(&value)?.listed(device_id))
            })
            .collect()
    }
}

impl RecordStore for SledRecords {
    type Batch<'a> = SledBatch<'a>;

    async fn begin(&self) -> Result<SledBatch<'_>, RecordError> {
        let guard = self.lock.lock().await;
        Ok(SledBatch {
            owner: self,
            _guard: guard,
            records: BTreeMap::new(),
            numbers: BTreeMap::new(),
            conflicts: Vec::new(),
            position: counter(&self.trees()?.meta, POSITION)?,
            assigned: counter(&self.trees()?.meta, ASSIGNED)?,
            conflict_count: counter(&self.trees()?.meta, CONFLICTS)?,
            stale_feed: Vec::new(),
        })
    }

    async fn get(&self, kind: RecordKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        self.trees()?.record(kind, local_id, true)
    }

    async fn changes(&self, since: Since, limit: usize) -> Result<Vec<Record>, RecordError> {
        let start = match since {
            Since::Token(position) => position.saturating_add(1),
            Since::Time(_) => 0,
        };
        let mut found = Vec::new();
        for entry in self.trees()?.feed.range(start.to_be_bytes()..) {
            if found.len() >= limit {
                break;
            }
            let (_, key) = entry?;
            let json =
                self.trees()?.records.get(&key)?.ok_or_else(|| corrupt("feed entry without record"))?;
            let record = decode_record(&json, None)?;
            if let Since::Time(time) = since
                && record.changed_at <= time
            {
                continue;
            }
            found.push(record);
        }
        Ok(found)
    }

    async fn last_position(&self) -> Result<u64, RecordError> {
        counter(&self.trees()?.meta, POSITION)
    }

    async fn versions(&self) -> Result<Vec<RecordVersion>, RecordError> {
        self.trees()?
            .records
            .iter()
            .values()
            .map(|json| {
                let record = decode_record(&json?, None)?;
                Ok(RecordVersion {
                    kind: record.kind(),
                    local_id: record.local_id,
                    doc_id: record.doc_id,
                    heads: record.heads,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<RecordCounts, RecordError> {
        let trees = self.trees()?;
        Ok(RecordCounts {
            orders: counter(&trees.meta, ORDERS)?,
            transactions: counter(&trees.meta, TRANSACTIONS)?,
            devices: trees.devices()?.iter().filter(|device| device.revoked_at.is_none()).count() as u64,
            conflicts: counter(&trees.meta, CONFLICTS)?.min(CONFLICTS_KEPT),
        })
    }

    async fn add_device(
        &self,
        device_id: &str,
        token_sha256: &str,
        at: Timestamp,
    ) -> Result<(), RecordError> {
        let _guard = self.lock.lock().await;
        let trees = self.trees()?;
        let mut batch = sled::Batch::default();
        match trees.device_entry(device_id)? {
            Some(entry) if entry.revoked_at.is_none() => {
                return Err(RecordError::DeviceExists { device_id: device_id.to_string() });
            }
            Some(revoked) => batch.remove(token_key(&revoked.token_sha256).as_bytes()),
            None => {}
        }
        let entry =
            DeviceEntry { token_sha256: token_sha256.to_string(), added_at: Some(at), revoked_at: None };
        batch.insert(token_key(token_sha256).as_bytes(), device_id.as_bytes());
        batch.insert(device_key(device_id).as_bytes(), entry.encode()?);
        trees.devices.apply_batch(batch)?;
        self.store.flush()?;
        Ok(())
    }

    async fn revoke_device(&self, device_id: &str, at: Timestamp) -> Result<LegacyDevice, RecordError> {
        let _guard = self.lock.lock().await;
        let trees = self.trees()?;
        let mut entry = trees
            .device_entry(device_id)?
            .ok_or_else(|| RecordError::UnknownDevice { device_id: device_id.to_string() })?;
        if entry.revoked_at.is_none() {
            entry.revoked_at = Some(at);
            trees.devices.insert(device_key(device_id), entry.encode()?)?;
            self.store.flush()?;
        }
        Ok(entry.listed(device_id.to_string()))
    }

    async fn devices(&self) -> Result<Vec<LegacyDevice>, RecordError> {
        self.trees()?.devices()
    }

    async fn device(&self, device_id: &str) -> Result<Option<LegacyDevice>, RecordError> {
        Ok(self.trees()?.device_entry(device_id)?.map(|entry| entry.listed(device_id.to_string())))
    }

    async fn device_of(&self, token_sha256: &str) -> Result<Option<LegacyDevice>, RecordError> {
        let trees = self.trees()?;
        let Some(device_id) = trees.devices.get(token_key(token_sha256))? else { return Ok(None) };
        let device_id = String::from_utf8(device_id.to_vec()).map_err(|_| corrupt("device id"))?;
        let entry = trees.device_entry(&device_id)?.ok_or_else(|| corrupt("device token without entry"))?;
        Ok(Some(entry.listed(device_id)))
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, RecordError> {
        self.trees()?
            .conflicts
            .iter()
            .values()
            .rev()
            .take(limit)
            .map(|json| serde_json::from_slice(&json?).map_err(|error| corrupt(format!("conflict: {error}"))))
            .collect()
    }
}

/// A batch over [`SledRecords`]: writes wait in memory until [`RecordBatch::commit`].
#[derive(Debug)]
pub struct SledBatch<'a> {
    owner: &'a SledRecords,
    _guard: MutexGuard<'a, ()>,
    records: BTreeMap<[u8; 17], Record>,
    numbers: BTreeMap<Vec<u8>, Uuid>,
    conflicts: Vec<ConflictEntry>,
    position: u64,
    assigned: u64,
    conflict_count: u64,
    /// Feed positions replaced by newer ones.
    stale_feed: Vec<u64>,
}

impl RecordBatch for SledBatch<'_> {
    async fn read_ahead(&mut self, _keys: &BatchKeys) -> Result<(), RecordError> {
        Ok(())
    }

    async fn get(&mut self, kind: RecordKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        match self.records.get(&key(kind, local_id)) {
            Some(record) => Ok(Some(record.clone())),
            None => self.owner.trees()?.record(kind, local_id, true),
        }
    }

    async fn number_owner(&mut self, kind: RecordKind, number: &str) -> Result<Option<Uuid>, RecordError> {
        let key = number_key(kind, number);
        if let Some(owner) = self.numbers.get(&key) {
            return Ok(Some(*owner));
        }
        match self.owner.trees()?.numbers.get(&key)? {
            None => Ok(None),
            Some(bytes) => Uuid::from_slice(&bytes).map(Some).map_err(|_| corrupt("number index")),
        }
    }

    fn last_assigned_number(&self) -> u64 {
        self.assigned
    }

    async fn next_assigned_number(&mut self) -> Result<u64, RecordError> {
        self.assigned += 1;
        Ok(self.assigned)
    }

    async fn put(&mut self, mut record: Record) -> Result<Record, RecordError> {
        let kind = record.kind();
        if let Some(previous) = self.get(kind, record.local_id).await? {
            self.stale_feed.push(previous.position);
        }
        self.position += 1;
        record.position = self.position;
        self.numbers.insert(number_key(kind, record.body.number()), record.local_id);
        self.records.insert(key(kind, record.local_id), record.clone());
        Ok(record)
    }

    async fn log_conflict(&mut self, entry: ConflictEntry) -> Result<(), RecordError> {
        self.conflicts.push(entry);
        Ok(())
    }

    async fn commit(self) -> Result<(), RecordError> {
        let t = &self.owner.trees()?;
        let mut rows = Vec::with_capacity(self.records.len());
        for (key, record) in &self.records {
            let json = serde_json::to_vec(record).map_err(|error| corrupt(format!("record: {error}")))?;
            rows.push((key, json, record));
        }
        let mut conflicts = Vec::with_capacity(self.conflicts.len());
        for (offset, entry) in self.conflicts.iter().enumerate() {
            let json = serde_json::to_vec(entry).map_err(|error| corrupt(format!("conflict: {error}")))?;
            conflicts.push(((self.conflict_count + 1 + offset as u64).to_be_bytes(), json));
        }
        let conflict_count = self.conflict_count + conflicts.len() as u64;
        (&t.records, &t.documents, &t.numbers, &t.feed, &t.conflicts, &t.meta)
            .transaction(|(records, documents, numbers, feed, conflict_tree, meta)| {
                for stale in &self.stale_feed {
                    feed.remove(&stale.to_be_bytes())?;
                }
                let (mut orders, mut transactions) = (0u64, 0u64);
                for (key, json, record) in &rows {
                    if records.insert(&key[..], json.as_slice())?.is_none() {
                        match key[0] {
                            b'o' => orders += 1,
                            _ => transactions += 1,
                        }
                    }
                    documents.insert(&key[..], record.document.as_slice())?;
                    feed.insert(&record.position.to_be_bytes(), &key[..])?;
                }
                for (number, local_id) in &self.numbers {
                    numbers.insert(number.as_slice(), local_id.as_bytes())?;
                }
                for (sequence, json) in &conflicts {
                    conflict_tree.insert(&sequence[..], json.as_slice())?;
                    if let Some(dropped) = u64::from_be_bytes(*sequence).checked_sub(CONFLICTS_KEPT) {
                        conflict_tree.remove(&dropped.to_be_bytes())?;
                    }
                }
                meta.insert(POSITION, &self.position.to_be_bytes())?;
                meta.insert(ASSIGNED, &self.assigned.to_be_bytes())?;
                meta.insert(CONFLICTS, &conflict_count.to_be_bytes())?;
                for (name, added) in [(ORDERS, orders), (TRANSACTIONS, transactions)] {
                    if added > 0 {
                        let held = meta.get(name)?.and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok());
                        let held = held.map_or(0, u64::from_be_bytes);
                        meta.insert(name, &(held + added).to_be_bytes())?;
                    }
                }
                Ok::<(), ConflictableTransactionError<RecordError>>(())
            })
            .map_err(|error| match error {
                TransactionError::Abort(error) => error,
                TransactionError::Storage(error) => RecordError::Sled(error),
            })?;
        self.owner.store.flush()?;
        Ok(())
    }
}
